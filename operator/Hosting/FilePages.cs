using System.Globalization;
using System.Runtime.InteropServices;
using Skiff.Runtime;

namespace Skiff.Hosting;

/// <summary>
/// Hands back to the kernel the pages of the operator's executable and libraries that are resident only because the
/// start (or a burst of work) once read them: the code, type data and unwind tables of paths a steady operator no
/// longer runs.
/// </summary>
/// <remarks>
/// # Why
/// A page of a mapped file, once read, stays in the process's resident set until the kernel needs the memory, and the
/// kernel maps its neighbours with it (read-ahead and fault-around). The native build's executable is 68 MB; 60 s after
/// a restart on 200 converged stacks, 42.3 MiB of it were resident, of which 10.5 MiB were read again in the next 30 s
/// of steady work (the kernel's referenced bits, <c>/proc/PID/clear_refs</c> and <c>smaps</c>). The rest counts in the
/// RSS, in <c>docker stats</c> and in the container's cgroup, on hosts that are small.
///
/// # What it does
/// For each private mapping of a regular file: <c>madvise(MADV_RANDOM)</c>, so that a page read again later comes
/// alone rather than with its neighbours, then <c>madvise(MADV_PAGEOUT)</c> (Linux 5.4) over the runs of pages that
/// are resident, backed by the file and mapped by this process only (<c>/proc/self/pagemap</c>). Pages the process
/// wrote (copies on write) and pages other processes map (the C library) are left alone, and so is anything else:
/// a page given back is read from the file again the next time it is used, which costs time and never data.
/// </remarks>
public static class FilePages
{
    private const int MadvRandom = 1;
    private const int MadvPageout = 21;

    /// <summary>One mapping of <c>/proc/self/maps</c>.</summary>
    /// <param name="Start">First address.</param>
    /// <param name="End">Address after the last byte.</param>
    /// <param name="Permissions">As the kernel writes them (<c>r-xp</c>).</param>
    /// <param name="Path">The mapped file, or the kernel's name for an anonymous mapping (<c>[heap]</c>), or empty.</param>
    public readonly record struct Mapping(ulong Start, ulong End, string Permissions, string Path)
    {
        /// <summary>A private (copy-on-write) mapping of a file on a disk: what can be read again from the file.</summary>
        public bool IsPrivateFile =>
            Permissions.Length == 4 && Permissions[3] == 'p' && Path.StartsWith('/') && !Path.StartsWith("/dev/", StringComparison.Ordinal)
            && !Path.EndsWith(" (deleted)", StringComparison.Ordinal);
    }

    /// <summary>What one release did.</summary>
    /// <param name="Mappings">Private file mappings looked at.</param>
    /// <param name="Bytes">Resident file pages handed to the kernel.</param>
    /// <param name="ResidentBefore">The process's resident set before (<c>/proc/self/statm</c>).</param>
    /// <param name="ResidentAfter">And after.</param>
    public readonly record struct Result(int Mappings, long Bytes, long ResidentBefore, long ResidentAfter);

    /// <summary>Parses <c>/proc/self/maps</c>.</summary>
    public static IReadOnlyList<Mapping> ParseMaps(IEnumerable<string> lines)
    {
        var mappings = new List<Mapping>();
        foreach (var line in lines)
        {
            // 00400000-00405000 r--p 00000000 fe:00 5325345    /usr/local/bin/skiff
            var parts = line.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length < 5)
            {
                continue;
            }

            var dash = parts[0].IndexOf('-', StringComparison.Ordinal);
            if (dash < 0
                || !ulong.TryParse(parts[0].AsSpan(0, dash), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var start)
                || !ulong.TryParse(parts[0].AsSpan(dash + 1), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var end))
            {
                continue;
            }

            mappings.Add(new Mapping(start, end, parts[1], parts.Length == 6 ? parts[5].Trim() : ""));
        }

        return mappings;
    }

    /// <summary>
    /// The runs of pages, among <paramref name="entries"/> (<c>/proc/self/pagemap</c>, one per page from
    /// <paramref name="start"/>), that are resident, backed by a file and mapped by this process only: as
    /// (address, length) pairs.
    /// </summary>
    public static IEnumerable<(ulong Address, ulong Length)> ReleasableRuns(ReadOnlyMemory<ulong> entries, ulong start, int pageSize)
    {
        const ulong present = 1UL << 63, file = 1UL << 61, exclusive = 1UL << 56;
        const ulong wanted = present | file | exclusive;
        var runStart = -1;
        for (var i = 0; i <= entries.Length; i++)
        {
            var releasable = i < entries.Length && (entries.Span[i] & wanted) == wanted;
            if (releasable && runStart < 0)
            {
                runStart = i;
            }
            else if (!releasable && runStart >= 0)
            {
                yield return (start + (ulong)runStart * (ulong)pageSize, (ulong)(i - runStart) * (ulong)pageSize);
                runStart = -1;
            }
        }
    }

    /// <summary>
    /// Releases the resident, unshared file pages of this process's private file mappings whose path
    /// <paramref name="include"/> accepts (all of them unless given). Null where the system does not offer it (not
    /// Linux, or a kernel before 5.4).
    /// </summary>
    public static Result? Release(Func<string, bool>? include = null)
    {
        if (!OperatingSystem.IsLinux())
        {
            return null;
        }

        var pageSize = Environment.SystemPageSize;
        var before = ResidentBytes();
        var mappings = ParseMaps(File.ReadLines("/proc/self/maps"))
            .Where(m => m.IsPrivateFile && (include is null || include(m.Path)))
            .ToList();
        long bytes = 0;
        using (var pagemap = OpenPagemap())
        {
            foreach (var mapping in mappings)
            {
                var entries = ReadPagemap(pagemap, mapping.Start, mapping.End - mapping.Start);
                Libc.Madvise((nint)mapping.Start, (nuint)(mapping.End - mapping.Start), MadvRandom);
                foreach (var (address, length) in ReleasableRuns(entries, mapping.Start, pageSize))
                {
                    if (Libc.Madvise((nint)address, (nuint)length, MadvPageout) != 0)
                    {
                        // EINVAL: a kernel without MADV_PAGEOUT. Nothing was changed but the read-ahead.
                        return Marshal.GetLastPInvokeError() == 22 ? null : new Result(mappings.Count, bytes, before, ResidentBytes());
                    }

                    bytes += (long)length;
                }
            }
        }

        return new Result(mappings.Count, bytes, before, ResidentBytes());
    }

    /// <summary>How many of the pages from <paramref name="start"/> over <paramref name="length"/> bytes of this
    /// process's memory are resident.</summary>
    public static int ResidentPages(ulong start, ulong length)
    {
        using var pagemap = OpenPagemap();
        return ReadPagemap(pagemap, start, length).Count(e => (e & (1UL << 63)) != 0);
    }

    private static FileStream OpenPagemap() => new("/proc/self/pagemap", FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1);

    /// <summary>The pagemap entries, one per page, from <paramref name="start"/> (page-aligned) over
    /// <paramref name="length"/> bytes.</summary>
    private static ulong[] ReadPagemap(FileStream pagemap, ulong start, ulong length)
    {
        var pageSize = (ulong)Environment.SystemPageSize;
        var raw = new byte[checked((int)(length / pageSize) * sizeof(ulong))];
        pagemap.Seek((long)(start / pageSize * sizeof(ulong)), SeekOrigin.Begin);
        pagemap.ReadExactly(raw);
        return MemoryMarshal.Cast<byte, ulong>(raw).ToArray();
    }

    /// <summary>This process's resident set (<c>/proc/self/statm</c>, second field).</summary>
    public static long ResidentBytes()
    {
        var fields = File.ReadAllText("/proc/self/statm").Split(' ');
        return long.Parse(fields[1], CultureInfo.InvariantCulture) * Environment.SystemPageSize;
    }
}
