using Skiff.Api;
using Skiff.Reconcile;
using Skiff.IntegrationTests.Infrastructure;

namespace Skiff.IntegrationTests.FolderSource;

/// <summary><c>skiff run</c> from a folder, as the real process, against the real engine.</summary>
public sealed class SkiffRunTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(3);

    [Fact]
    public async Task Run_once_converges_both_stacks_and_status_shows_them_ready()
    {
        await using var w = new FolderWorkspace();
        w.Write("api.yaml", w.Api());
        w.Write("bot.yaml", w.Bot());

        var (exit, stdout, stderr) = await SkiffProcess.RunAsync(Timeout, w.RunOnceArgs());

        Assert.True(exit == 0, $"exit {exit}\n{stdout}\n{stderr}");
        Assert.Matches($@"{w.Namespace}\s+api\s+local\s+True\s+Ready\s+skiff-test/app:1\s+1", stdout);
        Assert.Matches($@"{w.Namespace}\s+bot\s+local\s+True\s+Ready\s+skiff-test/app:1\s+1", stdout);
        var status = await SkiffProcess.RunAsync(Timeout, "status", "--state-dir", w.StateDir);
        Assert.Equal(0, status.Exit);
        Assert.Matches($@"{w.Namespace}\s+api\s+local\s+True\s+Ready", status.Stdout);
        var json = await SkiffProcess.RunAsync(Timeout, "status", "--state-dir", w.StateDir, "-o", "json");
        Assert.Contains("\"phase\": \"Ready\"", json.Stdout);
        // The bot's token and the generated database password never reach output or status.
        Assert.DoesNotContain(Stacks.BotToken, stdout + stderr + json.Stdout);
        var password = File.ReadAllText(Path.Combine(w.StateDir, "secrets", $"{w.Namespace}_api-db.json"));
        Assert.Contains("password", password);
        var mode = File.GetUnixFileMode(Path.Combine(w.StateDir, "secrets", $"{w.Namespace}_api-db.json"));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, mode);
    }

    [Fact]
    public async Task Editing_the_image_rolls_out_and_deleting_the_file_prunes_but_keeps_the_volume()
    {
        await using var w = new FolderWorkspace();
        w.Write("api.yaml", w.Api());
        Assert.Equal(0, (await SkiffProcess.RunAsync(Timeout, w.RunOnceArgs())).Exit);
        var database = (await w.ContainersAsync("api")).Single(c => c.Component == "database");

        w.Write("api.yaml", w.Api(image: "skiff-test/app:2"));
        var (exit, stdout, _) = await SkiffProcess.RunAsync(Timeout, w.RunOnceArgs());
        Assert.Equal(0, exit);
        Assert.Matches(@"api\s+local\s+True\s+Ready\s+skiff-test/app:2\s+2", stdout);
        var containers = await w.ContainersAsync("api");
        Assert.Equal(database.Id, containers.Single(c => c.Component == "database").Id);
        Assert.Equal($"skiff_{w.Namespace}_api_app_r2", containers.Single(c => c.Component == "app").Name);

        w.Delete("api.yaml");
        Assert.Equal(0, (await SkiffProcess.RunAsync(Timeout, w.RunOnceArgs())).Exit);
        Assert.Empty(await w.ContainersAsync("api"));
        Assert.NotNull(await w.Engine.InspectVolumeAsync($"skiff_{w.Namespace}_api_database", CancellationToken.None));
    }

    [Fact]
    public async Task A_stack_created_by_another_folder_is_never_pruned_nor_taken_over()
    {
        await using var w = new FolderWorkspace();
        w.Write("bot.yaml", w.Bot());
        Assert.Equal(0, (await SkiffProcess.RunAsync(Timeout, w.RunOnceArgs())).Exit);
        var before = (await w.ContainersAsync("bot")).Select(c => c.Id).Order().ToList();

        // A second folder with its own state: empty first (nothing to prune of ours), then the same stack name.
        var other = Path.Combine(w.Root, "other");
        Directory.CreateDirectory(other);
        var otherState = Path.Combine(w.Root, "other-state");
        Assert.Equal(0, (await SkiffProcess.RunAsync(Timeout, w.RunOnceArgs(other, otherState))).Exit);
        Assert.Equal(before, (await w.ContainersAsync("bot")).Select(c => c.Id).Order().ToList());

        File.WriteAllText(Path.Combine(other, "bot.yaml"), w.Bot());
        var (exit, stdout, _) = await SkiffProcess.RunAsync(Timeout, w.RunOnceArgs(other, otherState));
        Assert.Equal(1, exit);
        Assert.Contains("OwnedByAnotherSource", stdout);
        Assert.Equal(before, (await w.ContainersAsync("bot")).Select(c => c.Id).Order().ToList());
    }

    [Fact]
    public async Task Broken_half_written_and_hostile_files_are_reported_and_running_stacks_are_left_alone()
    {
        await using var w = new FolderWorkspace();
        var api = w.Api();
        w.Write("api.yaml", api);
        Assert.Equal(0, (await SkiffProcess.RunAsync(Timeout, w.RunOnceArgs())).Exit);
        var before = (await w.ContainersAsync("api")).Select(c => c.Id).Order().ToList();

        w.Write("api.yaml", api[..(api.Length / 2)]);
        w.Write("broken.yaml", "apiVersion: skiff.dev/v1alpha1\nkind: AppDeployment\nmetadata: {name: x\n  : ][\n");
        w.Write("dup.yaml", w.Api(name: "twin") + "\n---\n" + w.Api(name: "twin"));
        w.Write("huge.yaml", w.Api(name: "huge").Replace("skiff-test/app:1", new string('a', 10 * 1024 * 1024)));
        w.Write("engine.yaml", w.Api(name: "mysql", edit: s => s.Database = new DatabaseSpec { Engine = "mysql" }));

        var (exit, stdout, stderr) = await SkiffProcess.RunAsync(Timeout, w.RunOnceArgs());

        Assert.True(exit == 1, $"exit {exit}\n{stdout}\n{stderr}");
        Assert.Contains("broken.yaml:1", stdout);
        Assert.Contains("duplicate", stdout);
        Assert.Contains("huge.yaml", stdout);
        Assert.Contains("spec.database.engine", stdout);
        Assert.Contains("InvalidSpec", stdout);
        Assert.Equal(before, (await w.ContainersAsync("api")).Select(c => c.Id).Order().ToList());
        Assert.Empty(await w.ContainersAsync("mysql"));
    }

    [Fact]
    public async Task A_second_run_on_the_same_state_folder_refuses_to_start()
    {
        await using var w = new FolderWorkspace();
        await using var first = SkiffProcess.Start(w.RunArgs());
        await Eventually.TrueAsync("the first run holds the lock and serves",
            () => File.Exists(Path.Combine(w.StateDir, "skiff.lock")) && first.Stderr.Contains("Serving node", StringComparison.Ordinal), TimeSpan.FromSeconds(30), () => first.Stderr);

        var (exit, _, stderr) = await SkiffProcess.RunAsync(Timeout, w.RunOnceArgs());

        Assert.Equal(2, exit);
        Assert.Contains("is in use by process", stderr);
        Assert.False(first.HasExited);
    }

    [Fact]
    public async Task Killed_during_a_rollout_the_next_run_converges_without_duplicates_or_orphans()
    {
        await using var w = new FolderWorkspace();
        w.Write("api.yaml", w.Api());
        Assert.Equal(0, (await SkiffProcess.RunAsync(Timeout, w.RunOnceArgs())).Exit);
        var database = (await w.ContainersAsync("api")).Single(c => c.Component == "database").Id;

        // Crash point 1: the new revision's migration has finished, its app container does not exist yet or just
        // started. (The new revision's health check passes only 6 s after it starts: the kill lands before the rollout ends.)
        w.Write("api.yaml", w.Api(image: "skiff-test/app:2", healthyAfter: 6));
        await using (var run = SkiffProcess.Start(w.RunArgs()))
        {
            await Eventually.UntilAsync("api's migration exited", () => w.ContainersAsync("api"), cs => cs.Any(c => c.Component == "migrate" && c.State == "exited"),
                TimeSpan.FromSeconds(60), () => run.Stderr);
            run.Kill();
        }

        Assert.Contains(await w.ContainersAsync("api"), c => c.Name.EndsWith("_app_r1", StringComparison.Ordinal));

        Assert.Equal(0, (await SkiffProcess.RunAsync(Timeout, w.RunOnceArgs())).Exit);
        await AssertConvergedAsync(w, database, revision: 2);

        // Crash point 2: the new app container runs, the old one has not been removed yet.
        w.Write("api.yaml", w.Api(image: "skiff-test/app:1", healthyAfter: 6));
        await using (var run = SkiffProcess.Start(w.RunArgs()))
        {
            await Eventually.UntilAsync("api's revision 3 runs", () => w.ContainersAsync("api"), cs => cs.Any(c => c.Name.EndsWith("_app_r3", StringComparison.Ordinal) && c.Running),
                TimeSpan.FromSeconds(60), () => run.Stderr);
            run.Kill();
        }

        Assert.Contains(await w.ContainersAsync("api"), c => c.Name.EndsWith("_app_r2", StringComparison.Ordinal));

        Assert.Equal(0, (await SkiffProcess.RunAsync(Timeout, w.RunOnceArgs())).Exit);
        await AssertConvergedAsync(w, database, revision: 3);
    }

    [Fact]
    public async Task A_record_the_kubernetes_source_keeps_in_the_state_folder_is_not_pruned_by_a_folder_run()
    {
        await using var w = new FolderWorkspace();
        var store = new Skiff.State.StateStore(w.StateDir);
        store.EnsureCreated();
        store.Write(new Skiff.State.StatusRecord { Namespace = w.Namespace, Name = "from-api", Node = "local", Source = "kubernetes-0123abcd" });

        var (exit, stdout, stderr) = await SkiffProcess.RunAsync(Timeout, w.RunOnceArgs());

        Assert.True(exit == 0, $"exit {exit}\n{stdout}\n{stderr}");
        Assert.DoesNotContain("from-api", stdout);
        Assert.Equal("kubernetes-0123abcd", store.Read(w.Namespace, "from-api")?.Source);
    }

    [Fact]
    public async Task Plan_lists_what_a_change_would_do_and_changes_nothing()
    {
        await using var w = new FolderWorkspace();
        w.Write("api.yaml", w.Api());
        var fresh = await SkiffProcess.RunAsync(Timeout, "plan", "--path", w.Resources, "--node", "local", "--state-dir", w.StateDir);
        Assert.Equal(0, fresh.Exit);
        Assert.Contains($"create network skiff_{w.Namespace}_api", fresh.Stdout);
        Assert.Contains("run migration testapp migrate", fresh.Stdout);
        Assert.Empty(await w.ContainersAsync("api"));

        Assert.Equal(0, (await SkiffProcess.RunAsync(Timeout, w.RunOnceArgs())).Exit);
        var upToDate = await SkiffProcess.RunAsync(Timeout, "plan", "--path", w.Resources, "--node", "local", "--state-dir", w.StateDir);
        Assert.Contains("up to date", upToDate.Stdout);

        w.Write("api.yaml", w.Api(image: "skiff-test/app:2"));
        var before = (await w.ContainersAsync("api")).Select(c => c.Id).Order().ToList();
        var change = await SkiffProcess.RunAsync(Timeout, "plan", "--path", w.Resources, "--node", "local", "--state-dir", w.StateDir);
        Assert.Contains("roll out revision 2 (skiff-test/app:2)", change.Stdout);
        Assert.DoesNotContain("stop container", change.Stdout);
        Assert.Equal(before, (await w.ContainersAsync("api")).Select(c => c.Id).Order().ToList());
    }

    private static async Task AssertConvergedAsync(FolderWorkspace w, string databaseId, long revision)
    {
        var containers = await w.ContainersAsync("api");
        Assert.Equal(["app", "database"], containers.Select(c => c.Component!).Order().ToArray());
        Assert.Equal(databaseId, containers.Single(c => c.Component == "database").Id);
        Assert.Equal(revision, containers.Single(c => c.Component == "app").Revision);
        Assert.All(containers, c => Assert.True(c.Running));
    }
}
