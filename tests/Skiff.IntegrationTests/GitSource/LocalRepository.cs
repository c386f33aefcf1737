using System.Diagnostics;

namespace Skiff.IntegrationTests.GitSource;

/// <summary>
/// A real Git remote on the local disk (a bare repository, branch <c>main</c>) and a working clone that commits and
/// pushes to it: what a team's repository is to the Git source, without a network. Git runs with no user or system
/// config, so the machine's settings cannot change a test.
/// </summary>
public sealed class LocalRepository : IDisposable
{
    public LocalRepository(string root)
    {
        Root = root;
        Bare = Path.Combine(root, "remote.git");
        Work = Path.Combine(root, "work");
        Directory.CreateDirectory(root);
        Git(root, "init", "--quiet", "--bare", "--initial-branch=main", Bare);
        Git(root, "init", "--quiet", "--initial-branch=main", Work);
        Git(Work, "remote", "add", "origin", Bare);
    }

    public string Root { get; }

    /// <summary>The bare repository the Git source fetches.</summary>
    public string Bare { get; }

    public string Work { get; }

    public string FileUrl => "file://" + Bare;

    public void Write(string path, string text)
    {
        var full = Path.Combine(Work, path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        File.WriteAllText(full, text);
    }

    public void Delete(string path) => File.Delete(Path.Combine(Work, path));

    /// <summary>Commits everything and pushes it to <c>main</c> (forced when <paramref name="force"/>); returns the commit id.</summary>
    public string Commit(string message, bool force = false)
    {
        Git(Work, "add", "--all");
        Git(Work, "commit", "--quiet", "--allow-empty", "-m", message);
        Git(Work, force ? ["push", "--quiet", "--force", "origin", "HEAD:main"] : ["push", "--quiet", "origin", "HEAD:main"]);
        return Head();
    }

    /// <summary>Moves the working clone back to <paramref name="commit"/> (history to be rewritten by the next forced commit).</summary>
    public void ResetTo(string commit) => Git(Work, "reset", "--quiet", "--hard", commit);

    public string Head() => Git(Work, "rev-parse", "HEAD").Trim();

    /// <summary>Runs git in <paramref name="folder"/>; throws with its output when it fails.</summary>
    public static string Git(string folder, params string[] args)
    {
        var info = new ProcessStartInfo("git") { WorkingDirectory = folder, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        info.Environment["GIT_CONFIG_GLOBAL"] = "/dev/null";
        info.Environment["GIT_CONFIG_NOSYSTEM"] = "1";
        info.Environment["GIT_AUTHOR_NAME"] = info.Environment["GIT_COMMITTER_NAME"] = "Skiff Test";
        info.Environment["GIT_AUTHOR_EMAIL"] = info.Environment["GIT_COMMITTER_EMAIL"] = "test@skiff.invalid";
        using var p = Process.Start(info)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0)
        {
            throw new InvalidOperationException($"git {string.Join(' ', args)} failed ({p.ExitCode}): {stderr}");
        }

        return stdout.Result;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
