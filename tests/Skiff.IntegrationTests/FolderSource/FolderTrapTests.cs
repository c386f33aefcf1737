using Skiff.IntegrationTests.Infrastructure;

namespace Skiff.IntegrationTests.FolderSource;

/// <summary>
/// First-week traps of the folder source, through the real process and engine: a typo'd kind, a folder
/// given another way or moved, and what a prune does with the data.
/// </summary>
public sealed class FolderTrapTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(3);

    private static async Task<List<string>> IdsAsync(FolderWorkspace w, string stack) =>
        (await w.ContainersAsync(stack)).Select(c => c.Id).Order(StringComparer.Ordinal).ToList();

    private static string[] WithName(string[] args, string name) => [.. args, "--source-name", name];

    private static async Task AssertRunsAsync(string[] args, int expected = 0)
    {
        var (exit, stdout, stderr) = await SkiffProcess.RunAsync(Timeout, args);
        Assert.True(exit == expected, $"exit {exit}, expected {expected}\n{stdout}\n{stderr}");
    }

    [Fact]
    public async Task A_typo_in_kind_prunes_nothing_reports_the_file_and_the_fix_and_run_once_exits_1()
    {
        await using var w = new FolderWorkspace();
        w.Write("bot.yaml", w.Bot());
        await AssertRunsAsync(w.RunOnceArgs());
        var before = await IdsAsync(w, "bot");
        Assert.NotEmpty(before);

        w.Write("bot.yaml", w.Bot().Replace("kind: AppDeployment", "kind: AppDeploymnet", StringComparison.Ordinal));
        var (exit, stdout, stderr) = await SkiffProcess.RunAsync(Timeout, w.RunOnceArgs());

        Assert.True(exit == 1, $"exit {exit}\n{stdout}\n{stderr}");
        Assert.Contains("bot.yaml:1: kind: unknown kind \"AppDeploymnet\" for apiVersion skiff.dev/v1alpha1; did you mean AppDeployment?", stdout);
        Assert.Equal(before, await IdsAsync(w, "bot"));
        Assert.All(await w.ContainersAsync("bot"), c => Assert.True(c.Running, c.Name));
        Assert.True(File.Exists(Path.Combine(w.StateDir, "status", $"{w.Namespace}_bot.json")));
        var validate = await SkiffProcess.RunAsync(Timeout, "validate", w.Resources);
        Assert.Equal(1, validate.Exit);
        Assert.Contains("did you mean AppDeployment?", validate.Stdout);
    }

    [Fact]
    public async Task A_typo_in_kind_while_skiff_runs_keeps_the_stack_running()
    {
        await using var w = new FolderWorkspace();
        w.Write("bot.yaml", w.Bot());
        await AssertRunsAsync(w.RunOnceArgs());
        var before = await IdsAsync(w, "bot");

        await using var run = SkiffProcess.Start(w.RunArgs());
        await run.UntilLoggedAsync("Serving node", TimeSpan.FromSeconds(60));
        // The typo and a new stack land in one change: once the new stack runs, that change was reconciled.
        w.Write("bot.yaml", w.Bot().Replace("kind: AppDeployment", "kind: AppDeploymnet", StringComparison.Ordinal));
        w.Write("marker.yaml", w.Bot(name: "marker").Split("---", 2)[0]);
        await Eventually.UntilAsync("marker's app runs", () => w.ContainersAsync("marker"), cs => cs.Any(c => c.Component == "app" && c.Running),
            TimeSpan.FromMinutes(2), () => run.Stderr);

        Assert.Contains("did you mean AppDeployment?", run.Stderr);
        Assert.Equal(before, await IdsAsync(w, "bot"));
        Assert.False(run.HasExited);
    }

    [Fact]
    public async Task A_trailing_slash_a_relative_path_and_a_link_to_the_folder_are_the_same_source()
    {
        await using var w = new FolderWorkspace();
        w.Write("bot.yaml", w.Bot());
        await AssertRunsAsync(w.RunOnceArgs());
        var before = await IdsAsync(w, "bot");
        var link = Path.Combine(w.Root, "current");
        Directory.CreateSymbolicLink(link, w.Resources);

        foreach (var path in new[] { w.Resources + "/", Path.GetRelativePath(Environment.CurrentDirectory, w.Resources), link, link + "/" })
        {
            var (exit, stdout, stderr) = await SkiffProcess.RunAsync(Timeout, w.RunOnceArgs(path));
            Assert.True(exit == 0, $"--path {path}: exit {exit}\n{stdout}\n{stderr}");
            Assert.DoesNotContain("OwnedByAnotherSource", stdout);
            Assert.Equal(before, await IdsAsync(w, "bot"));
        }
    }

    [Fact]
    public async Task A_moved_folder_keeps_its_stacks_with_source_name_and_says_so_when_it_is_missing()
    {
        await using var w = new FolderWorkspace();
        w.Write("bot.yaml", w.Bot());
        await AssertRunsAsync(w.RunOnceArgs());
        var before = await IdsAsync(w, "bot");

        // Moved without a name: the stacks are foreign, untouched, and the message says which flag finds them.
        var moved = Path.Combine(w.Root, "moved");
        Directory.Move(w.Resources, moved);
        var (exit, stdout, stderr) = await SkiffProcess.RunAsync(Timeout, w.RunOnceArgs(moved));
        Assert.True(exit == 1, $"exit {exit}\n{stdout}\n{stderr}");
        Assert.Contains("OwnedByAnotherSource", stdout);
        Assert.Contains($"run with --source-name \"{w.Resources}\"", stdout);
        Assert.Equal(before, await IdsAsync(w, "bot"));

        // With the old path as its name, the moved folder is the old source: same containers, Ready.
        await AssertRunsAsync(WithName(w.RunOnceArgs(moved), w.Resources));
        Assert.Equal(before, await IdsAsync(w, "bot"));

        // A name given from the start carries the stacks across any later move.
        await using var named = new FolderWorkspace();
        named.Write("bot.yaml", named.Bot());
        await AssertRunsAsync(WithName(named.RunOnceArgs(), "team-bots"));
        var namedBefore = await IdsAsync(named, "bot");
        var elsewhere = Path.Combine(named.Root, "elsewhere");
        Directory.Move(named.Resources, elsewhere);
        await AssertRunsAsync(WithName(named.RunOnceArgs(elsewhere), "team-bots"));
        Assert.Equal(namedBefore, await IdsAsync(named, "bot"));
    }

    [Fact]
    public async Task Source_name_is_refused_when_empty_or_with_the_kubernetes_source()
    {
        await using var w = new FolderWorkspace();
        var empty = await SkiffProcess.RunAsync(Timeout, WithName(w.RunOnceArgs(), ""));
        Assert.Equal(2, empty.Exit);
        Assert.Contains("--source-name: must not be empty", empty.Stderr);
        var kube = await SkiffProcess.RunAsync(Timeout, "run", "--source", "kubernetes", "--node", "local", "--source-name", "x");
        Assert.Equal(2, kube.Exit);
        Assert.Contains("--source-name: only with the directory source", kube.Stderr);
    }
}
