namespace Skiff.State;

/// <summary>
/// The one way Skiff writes a file that must never be seen half-written (status records, generated
/// secrets, image first-seen times, GC reports): a temporary file in the same folder, flushed to
/// disk, then renamed over the target.
/// </summary>
/// <remarks>
/// <b>Guarantees.</b> A crash leaves the old file or the new one, never part of either; each call
/// uses its own temporary name, so two writers of one path in one process cannot interleave their
/// bytes (the last rename wins). A temporary file left by a failed write is removed.
/// </remarks>
internal static class AtomicFile
{
    /// <summary>Writes <paramref name="bytes"/> to <paramref name="path"/>; <paramref name="ownerOnly"/> creates it with mode 0600.</summary>
    public static void Write(string path, ReadOnlySpan<byte> bytes, bool ownerOnly = false)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var temp = $"{path}.tmp-{Environment.ProcessId}-{Guid.NewGuid():N}";
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
        if (ownerOnly && !OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        try
        {
            using (var stream = new FileStream(temp, options))
            {
                stream.Write(bytes);
                stream.Flush(flushToDisk: true);
            }

            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }
}
