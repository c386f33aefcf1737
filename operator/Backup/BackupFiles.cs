using System.Globalization;
using Skiff.Reconcile;

namespace Skiff.Backup;

/// <summary>A finished backup file of a stack.</summary>
/// <param name="Path">Its full path.</param>
/// <param name="Time">When it was taken (from its name).</param>
/// <param name="Bytes">Its size.</param>
public sealed record BackupFile(string Path, DateTimeOffset Time, long Bytes);

/// <summary>
/// The backup folder's naming: <c>NAMESPACE_NAME_TIME.dump</c> (and <c>.rdb</c> for the cache) once complete and verified,
/// <c>.NAMESPACE_NAME_TIME.dump.partial</c> while being written. <c>_</c> cannot occur in Kubernetes names, so the prefix
/// <c>NAMESPACE_NAME_</c> belongs to one stack only; a partial file never looks complete.
/// </summary>
public static class BackupFiles
{
    public const string TimeFormat = "yyyyMMdd'T'HHmmss'Z'";
    public const string DumpExtension = "dump";
    public const string RdbExtension = "rdb";
    public const string PartialSuffix = ".partial";

    /// <summary>The stack's complete files of one kind, newest first.</summary>
    public static IReadOnlyList<BackupFile> List(string folder, StackNames names, string extension = DumpExtension)
    {
        if (!Directory.Exists(folder))
        {
            return [];
        }

        var prefix = $"{names.Namespace}_{names.Name}_";
        var suffix = "." + extension;
        var files = new List<BackupFile>();
        foreach (var path in Directory.EnumerateFiles(folder, prefix + "*" + suffix))
        {
            var name = System.IO.Path.GetFileName(path);
            var stamp = name[prefix.Length..^suffix.Length];
            if (DateTime.TryParseExact(stamp, TimeFormat, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out var time))
            {
                files.Add(new BackupFile(path, new DateTimeOffset(time, TimeSpan.Zero), new FileInfo(path).Length));
            }
        }

        return [.. files.OrderByDescending(f => f.Time)];
    }

    /// <summary>The temporary name a file is written under until it is complete and verified.</summary>
    public static string Partial(string folder, string finalName) => System.IO.Path.Combine(folder, "." + finalName + PartialSuffix);

    /// <summary>Removes the stack's partial files (left by a backup that crashed or was killed); returns how many.</summary>
    public static int RemovePartials(string folder, StackNames names)
    {
        if (!Directory.Exists(folder))
        {
            return 0;
        }

        var removed = 0;
        foreach (var path in Directory.EnumerateFiles(folder, $".{names.Namespace}_{names.Name}_*{PartialSuffix}"))
        {
            File.Delete(path);
            removed++;
        }

        return removed;
    }

    /// <summary>Keeps the newest <paramref name="retain"/> files of the kind; returns the paths removed.</summary>
    public static IReadOnlyList<string> Prune(string folder, StackNames names, int retain, string extension = DumpExtension)
    {
        var removed = new List<string>();
        foreach (var old in List(folder, names, extension).Skip(retain))
        {
            File.Delete(old.Path);
            removed.Add(old.Path);
        }

        return removed;
    }

    /// <summary>Moves a finished partial file to its final name, durably (the data, then the folder entry, reach the disk).</summary>
    public static void Complete(string partial, string final)
    {
        using (var stream = new FileStream(partial, FileMode.Open, FileAccess.ReadWrite, FileShare.Read))
        {
            stream.Flush(flushToDisk: true);
        }

        File.Move(partial, final, overwrite: false);
    }
}
