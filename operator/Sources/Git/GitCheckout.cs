using System.Formats.Tar;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;

namespace Skiff.Sources.Git;

/// <summary>
/// The Git source's files in the state folder, one folder per source (<c>git/&lt;source id&gt;/</c>): a bare repository
/// that fetches only the followed branch (<c>repo.git</c>), one folder per materialized commit (<c>commits/&lt;sha&gt;/</c>),
/// and <c>current</c>, a symbolic link to the commit being served, switched with one rename.
/// </summary>
/// <remarks>
/// # Guarantees
/// - A commit's folder is complete before <c>current</c> points to it (written beside it, then renamed into place), and
///   <c>current</c> changes with one rename(2): a reader sees the old commit or the new one, never a mix.
/// - Force-pushes and rewritten history are followed: the fetch refspec is forced (<c>+</c>), and the commit served is
///   always the remote branch's, never a merge.
/// - The remote's URL is given on each fetch and never written to the repository's config (no credential at rest).
/// </remarks>
public sealed partial class GitCheckout(string root, GitRemote remote, string? branch, GitCli git)
{
    private const string TrackingRef = "refs/skiff/followed";

    public string Root { get; } = root;

    public string Repository => Path.Combine(Root, "repo.git");

    public string CommitsDir => Path.Combine(Root, "commits");

    /// <summary>The symbolic link to the commit being served.</summary>
    public string Current => Path.Combine(Root, "current");

    /// <summary>The commit <c>current</c> points to, or null when there is none yet.</summary>
    public string? CurrentCommit()
    {
        try
        {
            var target = new FileInfo(Current).LinkTarget;
            var name = target is null ? null : Path.GetFileName(target.TrimEnd('/'));
            return name is not null && IsCommitId(name) && System.IO.Directory.Exists(Path.Combine(CommitsDir, name)) ? name : null;
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>Fetches the followed branch (the remote's default branch when none is given); returns the commit it is at.</summary>
    public async Task<string> FetchAsync(CancellationToken ct)
    {
        if (!File.Exists(Path.Combine(Repository, "HEAD")))
        {
            System.IO.Directory.CreateDirectory(Root);
            var temp = Repository + ".tmp";
            if (System.IO.Directory.Exists(temp))
            {
                System.IO.Directory.Delete(temp, recursive: true);
            }

            await git.RunAsync(["init", "--bare", "--quiet", temp], ct);
            System.IO.Directory.Move(temp, Repository);
        }

        var source = branch is null ? "HEAD" : "refs/heads/" + branch;
        await git.RunAsync(
            ["--git-dir", Repository, "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--no-recurse-submodules", "--", remote.FetchUrl, $"+{source}:{TrackingRef}"],
            ct);
        return await git.RunAsync(["--git-dir", Repository, "rev-parse", "--verify", "--quiet", TrackingRef + "^{commit}"], ct);
    }

    /// <summary>The commit's one-line subject, for the log (empty when it cannot be read).</summary>
    public async Task<string> SubjectAsync(string commit, CancellationToken ct)
    {
        try
        {
            return await git.RunAsync(["--git-dir", Repository, "log", "-1", "--format=%s", commit], ct);
        }
        catch (GitException)
        {
            return "";
        }
    }

    /// <summary>Writes the commit's tree into its own folder (once); returns the folder.</summary>
    public async Task<string> MaterializeAsync(string commit, CancellationToken ct)
    {
        if (!IsCommitId(commit))
        {
            throw new GitException($"git rev-parse answered \"{commit}\", not a commit id", 0);
        }

        var folder = Path.Combine(CommitsDir, commit);
        if (System.IO.Directory.Exists(folder))
        {
            return folder;
        }

        var temp = Path.Combine(CommitsDir, "." + commit + ".tmp");
        if (System.IO.Directory.Exists(temp))
        {
            System.IO.Directory.Delete(temp, recursive: true);
        }

        System.IO.Directory.CreateDirectory(temp);
        try
        {
            // git archive: the commit's tree as plain files, no .git, no worktree bookkeeping. .NET's extractor refuses
            // entries and links that would land outside the folder.
            await git.StreamAsync(
                ["--git-dir", Repository, "archive", "--format=tar", commit],
                (stream, token) => TarFile.ExtractToDirectoryAsync(stream, temp, overwriteFiles: false, token),
                ct);
            System.IO.Directory.Move(temp, folder);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }

        return folder;
    }

    /// <summary>
    /// The id of the tree at <paramref name="path"/> in <paramref name="commit"/> (<c>.</c> or empty: the root), read
    /// from the repository itself, so a switch that deletes the commit's folder meanwhile does not matter.
    /// </summary>
    public async Task<string> TreeIdAsync(string commit, string path, CancellationToken ct)
    {
        var folder = Folder(path);
        if (folder.Length == 0)
        {
            return await git.RunAsync(["--git-dir", Repository, "rev-parse", "--verify", "--quiet", commit + "^{tree}"], ct);
        }

        // "040000 tree ID\tPATH" when the commit has that folder; nothing otherwise (a file is a blob, not a tree).
        var entry = await git.RunAsync(["--git-dir", Repository, "ls-tree", "-d", commit, "--", folder], ct);
        var fields = entry.Split('\t')[0].Split(' ');
        return fields is [_, "tree", var id] && entry.EndsWith("\t" + folder, StringComparison.Ordinal)
            ? id
            : throw new GitException($"commit {commit} has no folder {folder}", 0);
    }

    /// <summary>The tree at <paramref name="path"/> in <paramref name="commit"/> as a tar (its root the folder), written to <paramref name="target"/>.</summary>
    public Task ArchiveAsync(string commit, string path, Stream target, CancellationToken ct) =>
        git.StreamAsync(
            ["--git-dir", Repository, "archive", "--format=tar", TreeIsh(commit, path)],
            (stream, token) => stream.CopyToAsync(target, token),
            ct);

    private static string TreeIsh(string commit, string path) => Folder(path) is { Length: > 0 } folder ? $"{commit}:{folder}" : commit;

    /// <summary>A folder of the tree as Git names it: no leading <c>./</c>, no surrounding slashes; empty for the root.</summary>
    private static string Folder(string path)
    {
        var parts = path.Split('/', StringSplitOptions.RemoveEmptyEntries).Where(p => p != ".");
        return string.Join('/', parts);
    }

    /// <summary>Points <c>current</c> to the commit's folder with one rename, then deletes every other commit's folder.</summary>
    public void Switch(string commit)
    {
        var link = Current + ".tmp";
        if (File.Exists(link) || new FileInfo(link).LinkTarget is not null)
        {
            File.Delete(link);
        }

        File.CreateSymbolicLink(link, Path.Combine("commits", commit));
        // rename(2) replaces the old link in one step (File.Move refuses a link to a folder).
        if (Skiff.Runtime.Libc.Rename(link, Current) != 0)
        {
            throw new IOException($"cannot switch {Current} to commit {commit}: {Marshal.GetLastPInvokeErrorMessage()}");
        }

        Prune(keep: commit);
    }

    /// <summary>Deletes a commit's folder (one that was rejected), unless it is being served.</summary>
    public void Discard(string commit)
    {
        if (commit != CurrentCommit())
        {
            TryDelete(Path.Combine(CommitsDir, commit));
        }
    }

    /// <summary>Whether <paramref name="text"/> is a full commit id (SHA-1 or SHA-256).</summary>
    public static bool IsCommitId(string text) => CommitId().IsMatch(text);

    private void Prune(string keep)
    {
        if (!System.IO.Directory.Exists(CommitsDir))
        {
            return;
        }

        foreach (var dir in System.IO.Directory.EnumerateDirectories(CommitsDir))
        {
            if (Path.GetFileName(dir) != keep)
            {
                TryDelete(dir);
            }
        }
    }

    private static void TryDelete(string dir)
    {
        try
        {
            if (System.IO.Directory.Exists(dir))
            {
                System.IO.Directory.Delete(dir, recursive: true);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Left for the next switch to delete.
        }
    }

    [GeneratedRegex("^([0-9a-f]{40}|[0-9a-f]{64})$")]
    private static partial Regex CommitId();
}
