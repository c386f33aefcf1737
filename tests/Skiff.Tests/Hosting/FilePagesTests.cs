using System.IO.MemoryMappedFiles;
using Skiff.Hosting;

namespace Skiff.Tests.Hosting;

public class FilePagesTests
{
    [Fact]
    public void Maps_lines_are_parsed_and_only_private_mappings_of_files_qualify()
    {
        var mappings = FilePages.ParseMaps([
            "00400000-00405000 r--p 00000000 fe:00 5325345                            /usr/local/bin/skiff",
            "02762000-04493000 rw-p 02361000 fe:00 5325345                            /usr/local/bin/skiff",
            "04493000-045b1000 rw-p 00000000 00:00 0 ",
            "0a000000-0a021000 rw-p 00000000 00:00 0                                  [heap]",
            "7f0000000000-7f0000001000 rw-s 00000000 00:05 42                         /dev/shm/data",
            "7f0000001000-7f0000002000 r--s 00000000 fe:00 77                         /var/lib/app/shared.bin",
            "7f0000002000-7f0000003000 r--p 00000000 fe:00 78                         /tmp/old library.so (deleted)",
            "7f0000003000-7f0000004000 r-xp 00000000 fe:00 79                         /opt/with space/lib.so",
            "7ffc00000000-7ffc00002000 r-xp 00000000 00:00 0                          [vdso]",
            "not a mapping",
        ]);

        Assert.Equal(9, mappings.Count);
        Assert.Equal(new FilePages.Mapping(0x400000, 0x405000, "r--p", "/usr/local/bin/skiff"), mappings[0]);
        Assert.Equal("", mappings[2].Path);
        Assert.Equal("/opt/with space/lib.so", mappings[7].Path);
        Assert.Equal(
            ["/usr/local/bin/skiff", "/usr/local/bin/skiff", "/opt/with space/lib.so"],
            mappings.Where(m => m.IsPrivateFile).Select(m => m.Path));
    }

    [Fact]
    public void Only_resident_unshared_file_pages_are_released_in_runs()
    {
        const ulong present = 1UL << 63, file = 1UL << 61, exclusive = 1UL << 56;
        const ulong mine = present | file | exclusive;
        ulong[] entries =
        [
            mine, mine, // a run of two
            present | exclusive, // written by the process: a private copy, not the file's
            mine,
            present | file, // mapped by another process too
            file | exclusive, // not resident
            0,
            mine, mine, mine, // a run at the end
        ];

        var runs = FilePages.ReleasableRuns(entries, 0x10000, 4096).ToList();

        Assert.Equal([(0x10000UL, 2 * 4096UL), (0x10000UL + 3 * 4096, 4096UL), (0x10000UL + 7 * 4096, 3 * 4096UL)], runs);
        Assert.Empty(FilePages.ReleasableRuns(Array.Empty<ulong>(), 0x10000, 4096));
    }

    [Fact]
    public void Pages_read_from_a_mapped_file_are_given_back_and_pages_written_keep_their_data()
    {
        var path = Path.Combine(Path.GetTempPath(), $"skiff-filepages-{Guid.NewGuid():N}.bin");
        const int pages = 256; // 1 MiB
        var pageSize = Environment.SystemPageSize;
        try
        {
            using (var file = new FileStream(path, FileMode.CreateNew))
            {
                var page = new byte[pageSize];
                for (var i = 0; i < pages; i++)
                {
                    page[0] = (byte)i;
                    file.Write(page);
                }

                file.Flush(flushToDisk: true); // clean pages: the kernel can drop them without writing
            }

            using var mapped = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.CopyOnWrite);
            using var view = mapped.CreateViewAccessor(0, pages * pageSize, MemoryMappedFileAccess.CopyOnWrite);
            var start = (ulong)(view.SafeMemoryMappedViewHandle.DangerousGetHandle() + (nint)view.PointerOffset);
            for (var i = 0; i < pages; i++)
            {
                Assert.Equal((byte)i, view.ReadByte((long)i * pageSize));
            }

            view.Write(5L * pageSize + 1, (byte)0xAB); // page 5 is now the process's own copy
            Assert.Equal(pages, FilePages.ResidentPages(start, (ulong)(pages * pageSize)));

            var result = FilePages.Release(p => p == path);

            Assert.NotNull(result);
            Assert.Equal(1, result.Value.Mappings);
            Assert.Equal((long)(pages - 1) * pageSize, result.Value.Bytes);
            Assert.True(FilePages.ResidentPages(start, (ulong)(pages * pageSize)) <= 1,
                $"{FilePages.ResidentPages(start, (ulong)(pages * pageSize))} of {pages} pages still resident");

            // Read again from the file, the written page as written.
            for (var i = 0; i < pages; i++)
            {
                Assert.Equal((byte)i, view.ReadByte((long)i * pageSize));
            }

            Assert.Equal((byte)0xAB, view.ReadByte(5L * pageSize + 1));
        }
        finally
        {
            File.Delete(path);
        }
    }
}
