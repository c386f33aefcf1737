using System.Security.Cryptography;
using Microsoft.Extensions.Logging.Abstractions;
using Prometheus;
using Skiff.IntegrationTests.GitSource;
using Skiff.Sources.Directory;
using Skiff.Sources.Git;

namespace Skiff.Tests.Sources.Git;

/// <summary>
/// The Git source against a real repository (the <c>git</c> command, a bare repository over file://): what it serves,
/// what it refuses, and what it keeps when the remote misbehaves. No Docker: the folder logic reads what it serves.
/// </summary>
public sealed class GitSourceTests : IDisposable
{
    private readonly string root = Path.Combine(Path.GetTempPath(), "skiff-git-ut-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4)));
    private readonly LocalRepository repo;
    private readonly CollectorRegistry registry = Metrics.NewCustomRegistry();

    public GitSourceTests()
    {
        repo = new LocalRepository(Path.Combine(root, "repo"));
    }

    private string StateDir => Path.Combine(root, "state");

    public void Dispose()
    {
        repo.Dispose();
        Directory.Delete(root, recursive: true);
    }

    private static string App(string name, string image, string extra = "") =>
        $"apiVersion: skiff.dev/v1alpha1\nkind: AppDeployment\nmetadata: {{ name: {name}, namespace: gt }}\nspec:\n  node: local\n  app: {{ image: \"{image}\"{extra} }}\n";

    private GitSource Source(string? branch = "main", string subPath = "deploy", string? url = null, TimeSpan? interval = null)
    {
        var remote = GitRemote.Parse(url ?? repo.FileUrl, GitCredentials.None, out var problem) ?? throw new InvalidOperationException(problem);
        return new GitSource(new GitSourceOptions(url ?? repo.FileUrl, branch, subPath, interval ?? TimeSpan.FromHours(1)), remote, StateDir, NullLogger.Instance, new GitMetrics(registry));
    }

    private static DirectorySource Folder(GitSource git)
    {
        var folder = new DirectorySource(git.FolderPath, NullLogger<DirectorySource>.Instance, followLink: true);
        folder.Rescan();
        return folder;
    }

    private static string Image(DirectorySource folder, string name) =>
        folder.Entries().Single(e => e.Key.Name == name).Resource!.Spec.App.Image!;

    private async Task<string> MetricsAsync()
    {
        using var stream = new MemoryStream();
        await registry.CollectAndExportAsTextAsync(stream, CancellationToken.None);
        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }

    [Fact]
    public async Task Serves_the_branchs_commit_and_follows_it_through_one_switched_link()
    {
        repo.Write("deploy/web.yaml", App("web", "skiff-test/app:1"));
        repo.Write("README.md", "not a resource\n");
        var first = repo.Commit("web on app:1");
        var git = Source();

        Assert.True(await git.SyncAsync(CancellationToken.None));
        Assert.Equal(first, git.Commit);
        Assert.Null(git.LastError);
        Assert.Equal($"git:{repo.FileUrl}@{first}", git.Describe(git.Commit));
        var folder = Folder(git);
        Assert.Equal("skiff-test/app:1", Image(folder, "web"));

        repo.Write("deploy/web.yaml", App("web", "skiff-test/app:2"));
        var second = repo.Commit("web on app:2");
        Assert.True(await git.SyncAsync(CancellationToken.None));
        Assert.Equal(second, git.Commit);
        // The same DirectorySource reads the new commit through the link; the old commit's tree is gone.
        Assert.Contains(folder.Rescan(), k => k.Name == "web");
        Assert.Equal("skiff-test/app:2", Image(folder, "web"));
        Assert.Equal([second], Directory.GetDirectories(Path.Combine(StateDir, "commits")).Select(Path.GetFileName));

        // Nothing new: nothing switches.
        Assert.False(await git.SyncAsync(CancellationToken.None));
        var metrics = await MetricsAsync();
        Assert.Contains($"skiff_git_commit_info{{commit=\"{second}\"}} 1", metrics, StringComparison.Ordinal);
        Assert.DoesNotContain($"commit=\"{first}\"", metrics, StringComparison.Ordinal);
        Assert.Contains("skiff_git_fetches_total{result=\"success\"} 3", metrics, StringComparison.Ordinal);
        Assert.Contains("skiff_git_sync_ok 1", metrics, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_commit_with_an_invalid_document_is_not_served_and_the_error_names_it()
    {
        repo.Write("deploy/web.yaml", App("web", "skiff-test/app:1"));
        repo.Write("deploy/bot.yaml", App("bot", "skiff-test/app:1"));
        var good = repo.Commit("good");
        var git = Source();
        await git.SyncAsync(CancellationToken.None);

        // One invalid document, and another file deleted: neither reaches the folder logic (no prune of bot).
        repo.Write("deploy/web.yaml", App("web", "skiff-test/app:2", ", ports: [{ containerPort: 70000 }]"));
        repo.Delete("deploy/bot.yaml");
        var bad = repo.Commit("bad port");
        Assert.False(await git.SyncAsync(CancellationToken.None));

        Assert.Equal(good, git.Commit);
        var error = git.LastError!;
        Assert.Equal(GitSource.InvalidCommit, error.Reason);
        Assert.Equal(bad, error.Commit);
        Assert.Contains($"commit {bad[..12]} is not served", error.Message, StringComparison.Ordinal);
        Assert.Contains($"still serving commit {good[..12]}", error.Message, StringComparison.Ordinal);
        Assert.Equal(["web.yaml:1: spec.app.ports[0].containerPort: must be between 1 and 65535, got 70000"], error.Problems);
        var folder = Folder(git);
        Assert.Equal(["bot", "web"], folder.Entries().Select(e => e.Key.Name).Order());
        Assert.Equal("skiff-test/app:1", Image(folder, "web"));
        Assert.False(Directory.Exists(Path.Combine(StateDir, "commits", bad)));
        Assert.Contains("skiff_git_rejected_commits_total 1", await MetricsAsync(), StringComparison.Ordinal);

        // Asked again, the same commit is not checked again, and the error stays.
        Assert.False(await git.SyncAsync(CancellationToken.None));
        Assert.Equal(bad, git.LastError?.Commit);
        Assert.Contains("skiff_git_sync_ok 0", await MetricsAsync(), StringComparison.Ordinal);

        // The fix is served and clears the error.
        repo.Write("deploy/web.yaml", App("web", "skiff-test/app:2"));
        var fixedCommit = repo.Commit("fix port");
        Assert.True(await git.SyncAsync(CancellationToken.None));
        Assert.Equal(fixedCommit, git.Commit);
        Assert.Null(git.LastError);
    }

    [Fact]
    public async Task A_missing_folder_is_an_invalid_commit_too()
    {
        repo.Write("other/web.yaml", App("web", "skiff-test/app:1"));
        var commit = repo.Commit("wrong folder");
        var git = Source();

        await git.SyncAsync(CancellationToken.None);

        Assert.Null(git.Commit);
        Assert.Equal(commit, git.LastError?.Commit);
        Assert.Contains("--path deploy: no such folder in the commit", git.LastError!.Message, StringComparison.Ordinal);
        Assert.Contains("no commit is served yet", git.LastError.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_force_push_is_followed_to_the_rewritten_branch()
    {
        repo.Write("deploy/web.yaml", App("web", "skiff-test/app:1"));
        var base1 = repo.Commit("base");
        repo.Write("deploy/web.yaml", App("web", "skiff-test/app:2"));
        repo.Commit("to be rewritten");
        var git = Source();
        await git.SyncAsync(CancellationToken.None);

        repo.ResetTo(base1);
        repo.Write("deploy/web.yaml", App("web", "skiff-test/app:bad-health"));
        var rewritten = repo.Commit("rewritten", force: true);

        Assert.True(await git.SyncAsync(CancellationToken.None));
        Assert.Equal(rewritten, git.Commit);
        Assert.Equal("skiff-test/app:bad-health", Image(Folder(git), "web"));
    }

    [Fact]
    public async Task A_vanished_branch_or_remote_keeps_the_last_good_commit_and_it_comes_back()
    {
        repo.Write("deploy/web.yaml", App("web", "skiff-test/app:1"));
        var good = repo.Commit("good");
        LocalRepository.Git(repo.Bare, "branch", "--quiet", "release", "main");
        var git = Source(branch: "release");
        await git.SyncAsync(CancellationToken.None);
        Assert.Equal(good, git.Commit);

        LocalRepository.Git(repo.Bare, "branch", "--quiet", "-D", "release");
        Assert.False(await git.SyncAsync(CancellationToken.None));
        Assert.Equal(good, git.Commit);
        Assert.Equal(GitSource.FetchFailed, git.LastError?.Reason);
        Assert.Contains("couldn't find remote ref refs/heads/release", git.LastError!.Message, StringComparison.Ordinal);
        Assert.Contains($"still serving commit {good[..12]}", git.LastError.Message, StringComparison.Ordinal);

        LocalRepository.Git(repo.Bare, "branch", "--quiet", "release", "main");
        Directory.Move(repo.Bare, repo.Bare + ".away");
        Assert.False(await git.SyncAsync(CancellationToken.None));
        Assert.Equal(GitSource.FetchFailed, git.LastError?.Reason);
        Assert.Equal("skiff-test/app:1", Image(Folder(git), "web"));
        Assert.Contains("skiff_git_fetch_errors_total 2", await MetricsAsync(), StringComparison.Ordinal);

        Directory.Move(repo.Bare + ".away", repo.Bare);
        Assert.False(await git.SyncAsync(CancellationToken.None));
        Assert.Null(git.LastError);
        Assert.Equal(good, git.Commit);
    }

    [Fact]
    public async Task A_restart_serves_the_last_good_commit_from_the_state_folder_before_any_fetch()
    {
        repo.Write("deploy/web.yaml", App("web", "skiff-test/app:1"));
        var good = repo.Commit("good");
        await Source().SyncAsync(CancellationToken.None);
        Directory.Move(repo.Bare, repo.Bare + ".away");

        var restarted = Source();

        Assert.Equal(good, restarted.Commit);
        Assert.Equal("skiff-test/app:1", Image(Folder(restarted), "web"));
        Assert.False(await restarted.SyncAsync(CancellationToken.None));
        Assert.Equal(good, restarted.Commit);
        Directory.Move(repo.Bare + ".away", repo.Bare);
    }

    [Fact]
    public async Task Without_a_branch_the_remotes_default_branch_is_followed()
    {
        repo.Write("deploy/web.yaml", App("web", "skiff-test/app:1"));
        var commit = repo.Commit("on main");
        var git = Source(branch: null);

        await git.SyncAsync(CancellationToken.None);

        Assert.Equal(commit, git.Commit);
    }

    [Fact]
    public async Task The_loop_fetches_every_interval_and_reports_each_switch()
    {
        repo.Write("deploy/web.yaml", App("web", "skiff-test/app:1"));
        repo.Commit("first");
        var git = Source(interval: TimeSpan.FromMilliseconds(200));
        var switched = new System.Collections.Concurrent.ConcurrentQueue<string>();
        using var stop = new CancellationTokenSource();
        var loop = git.RunAsync(switched.Enqueue, stop.Token);

        var first = await Skiff.IntegrationTests.Infrastructure.Eventually.UntilAsync("the first commit is switched to", () => switched.ToArray(), s => s.Length == 1, TimeSpan.FromSeconds(30));
        repo.Write("deploy/web.yaml", App("web", "skiff-test/app:2"));
        var second = repo.Commit("second");
        var both = await Skiff.IntegrationTests.Infrastructure.Eventually.UntilAsync("the pushed commit is switched to", () => switched.ToArray(), s => s.Length == 2, TimeSpan.FromSeconds(30));

        Assert.Equal(second, both[1]);
        Assert.Equal(first[0], both[0]);
        await stop.CancelAsync();
        await loop;
    }

    [Fact]
    public async Task With_an_hour_between_fetches_a_request_fetches_at_once()
    {
        repo.Write("deploy/web.yaml", App("web", "skiff-test/app:1"));
        var first = repo.Commit("first");
        var git = Source(interval: TimeSpan.FromHours(1));
        var switched = new System.Collections.Concurrent.ConcurrentQueue<string>();
        using var stop = new CancellationTokenSource();
        var loop = git.RunAsync(switched.Enqueue, stop.Token);

        git.RequestSync("test");
        var seen = await Skiff.IntegrationTests.Infrastructure.Eventually.UntilAsync("the requested sync switches", () => switched.ToArray(), s => s.Length == 1, TimeSpan.FromSeconds(30));

        Assert.Equal(first, seen[0]);
        await stop.CancelAsync();
        await loop;
    }
}
