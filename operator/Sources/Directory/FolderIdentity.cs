using Skiff.State;

namespace Skiff.Sources.Directory;

/// <summary>
/// Who a folder source is: the <c>dev.skiff.source</c> label on everything it creates, so that it
/// prunes and changes only its own stacks. By default the folder's canonical real path (absolute,
/// symbolic links resolved, no trailing slash), so <c>--path /srv/res/</c>, a relative path and a link
/// to the folder are one source; <c>--source-name</c> names it instead, so it survives a move.
/// </summary>
/// <remarks>
/// # Guarantees
/// - For a path given as a canonical absolute path the id is the one every earlier Skiff gave it.
/// - A name is hashed exactly like a path: <c>--source-name /old/path</c> is the source that ran with
///   <c>--path /old/path</c>, which is how a folder that moved keeps its stacks.
/// </remarks>
public static class FolderIdentity
{
    private const int MaxLinks = 40;

    /// <summary>The label value of the folder source with this canonical path, or with this name when given.</summary>
    public static string SourceId(string canonicalPath, string? sourceName) => StateStore.SourceId("folder", sourceName ?? canonicalPath);

    /// <summary>What is wrong with a <c>--source-name</c>, or null when it is usable.</summary>
    public static string? CheckName(string name)
    {
        if (name.Length == 0)
        {
            return "must not be empty: a name such as prod-vps1, or the folder's old path";
        }

        if (name.Length > 4096)
        {
            return $"must be at most 4096 characters, got {name.Length}";
        }

        if (name.Trim() != name || name.Any(char.IsControl))
        {
            return "must not start or end with spaces nor hold control characters";
        }

        return null;
    }

    /// <summary>
    /// The canonical real path of <paramref name="path"/>, like realpath(3): absolute (relative to the
    /// working directory), every symbolic link resolved, no "." or "..", no trailing slash. Parts that do
    /// not exist are kept as written. Throws <see cref="IOException"/> on a loop of links.
    /// </summary>
    public static string CanonicalPath(string path)
    {
        var absolute = System.IO.Path.IsPathRooted(path) ? path : System.IO.Path.Combine(Environment.CurrentDirectory, path);
        var pending = new LinkedList<string>(Parts(absolute));
        var resolved = new List<string>();
        var links = 0;
        while (pending.First is { } first)
        {
            var part = first.Value;
            pending.RemoveFirst();
            if (part == ".")
            {
                continue;
            }

            if (part == "..")
            {
                if (resolved.Count > 0)
                {
                    resolved.RemoveAt(resolved.Count - 1);
                }

                continue;
            }

            var candidate = Join([.. resolved, part]);
            string? target;
            try
            {
                target = new FileInfo(candidate).LinkTarget;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                target = null;
            }

            if (target is null)
            {
                resolved.Add(part);
                continue;
            }

            if (++links > MaxLinks)
            {
                throw new IOException($"{path}: too many levels of symbolic links");
            }

            // The link's target replaces it: an absolute one from the root, a relative one from the link's folder.
            if (System.IO.Path.IsPathRooted(target))
            {
                resolved.Clear();
            }

            foreach (var p in Enumerable.Reverse(Parts(target)))
            {
                pending.AddFirst(p);
            }
        }

        return Join(resolved);
    }

    private static string[] Parts(string path) => path.Split(System.IO.Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries);

    private static string Join(IEnumerable<string> parts) => System.IO.Path.DirectorySeparatorChar + string.Join(System.IO.Path.DirectorySeparatorChar, parts);
}
