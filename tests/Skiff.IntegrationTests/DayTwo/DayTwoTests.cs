using System.Text.RegularExpressions;
using Skiff.IntegrationTests.FolderSource;
using Skiff.IntegrationTests.Infrastructure;

namespace Skiff.IntegrationTests.DayTwo;

/// <summary>
/// The day-two commands (issue 20) as a user runs them beside a long-running <c>skiff run</c> that owns the state folder:
/// one stack, one operator process, the real engine.
/// </summary>
public sealed class DayTwoTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(2);

    [Fact]
    public async Task Logs_exec_run_once_and_wait_work_beside_a_running_operator()
    {
        await using var w = new FolderWorkspace();
        w.Write("api.yaml", w.Api());
        await using var run = SkiffProcess.Start(w.RunArgs());
        string[] Stack(params string[] args) => [.. args, "api", "-n", w.Namespace, "--state-dir", w.StateDir];

        // skiff wait exits 0; when it does not, the message shows what it and the operator said.
        async Task WaitReadyAsync()
        {
            var result = await SkiffProcess.RunAsync(Timeout, Stack("wait", "--timeout", "90s"));
            Assert.True(result.Exit == 0, $"wait exit {result.Exit}\n{result.Stdout}\n{result.Stderr}\n--- run:\n{run.Stderr}");
        }

        // wait: exit 0 once Ready, while the running operator holds the state folder's lock.
        var wait = await SkiffProcess.RunAsync(Timeout, Stack("wait", "--timeout", "90s"));
        Assert.True(wait.Exit == 0, $"wait exit {wait.Exit}\n{wait.Stderr}\n--- run:\n{run.Stderr}");
        Assert.Contains("Ready, revision 1 (skiff-test/app:1)", wait.Stderr);
        Assert.False(run.HasExited);

        // logs: the live app's output, found by labels.
        var logs = await SkiffProcess.RunAsync(Timeout, Stack("logs"));
        Assert.True(logs.Exit == 0, logs.Stderr);
        Assert.Contains("testapp 1 listening on", logs.Stdout);

        // logs -f --tail 0: nothing old, then a line the app writes afterwards (the operator's next health probe).
        await using (var follow = SkiffProcess.Start(Stack("logs", "-f", "--tail", "0")))
        {
            await Eventually.TrueAsync("logs -f prints a new line", () => follow.Stdout.Contains("GET /healthz 200", StringComparison.Ordinal),
                TimeSpan.FromSeconds(20), () => follow.Stdout + follow.Stderr);
            Assert.DoesNotContain("listening on", follow.Stdout);
            Assert.False(follow.HasExited);
        }

        // exec into the database: psql as the stack's user, in its database, where the migration made its table.
        var psql = await SkiffProcess.RunAsync(Timeout, [.. Stack("exec", "-c", "database"), "--", "psql", "-tAc", "select count(*) from visits"]);
        Assert.True(psql.Exit == 0, $"exit {psql.Exit}\n{psql.Stdout}\n{psql.Stderr}");
        Assert.Matches(new Regex(@"^\d+$"), psql.Stdout.Trim());
        var failing = await SkiffProcess.RunAsync(Timeout, [.. Stack("exec", "-c", "database"), "--", "psql", "-tAc", "select * from no_such_table"]);
        Assert.NotEqual(0, failing.Exit);
        Assert.Contains("no_such_table", failing.Stderr);

        // run-once: the live image with the stack's environment, its exit code passed through, the container removed.
        var version = await SkiffProcess.RunAsync(Timeout, [.. Stack("run-once"), "--", "testapp", "version"]);
        Assert.True(version.Exit == 0, version.Stderr);
        Assert.Equal("1", version.Stdout.Trim());
        var migrate = await SkiffProcess.RunAsync(Timeout, [.. Stack("run-once"), "--", "testapp", "migrate"]);
        Assert.True(migrate.Exit == 0, $"the one-off migration reaches the stack's database\n{migrate.Stdout}{migrate.Stderr}");
        var unknown = await SkiffProcess.RunAsync(Timeout, [.. Stack("run-once"), "--", "testapp", "no-such-mode"]);
        Assert.Equal(2, unknown.Exit);
        Assert.Contains("unknown command 'no-such-mode'", unknown.Stderr);
        var leftovers = await w.Engine.Client.Containers.ListContainersAsync(new global::Docker.DotNet.Models.ContainersListParameters
        {
            All = true,
            Filters = new Dictionary<string, IDictionary<string, bool>> { ["label"] = new Dictionary<string, bool> { [$"dev.skiff.run-once={w.Namespace}/api"] = true } },
        });
        Assert.Empty(leftovers);

        // A new image, then rollback to the previous revision: a new revision with the old image, which the app serves.
        w.Write("api.yaml", w.Api(image: TestImages.App2));
        await WaitReadyAsync();
        Assert.Equal("2", await ServedVersionAsync(w));
        var rollback = await SkiffProcess.RunAsync(Timeout, Stack("rollback"));
        Assert.True(rollback.Exit == 0, rollback.Stderr);
        Assert.Contains("revision 1 (skiff-test/app:1)", rollback.Stdout);
        var afterRollback = await SkiffProcess.RunAsync(Timeout, Stack("wait", "--timeout", "90s"));
        Assert.True(afterRollback.Exit == 0, $"{afterRollback.Stderr}\n--- run:\n{run.Stderr}");
        Assert.Equal("1", await ServedVersionAsync(w));
        AssertHistory(w, (3, TestImages.App1, "Succeeded"));
        Assert.Contains("RollbackRequested", (await SkiffProcess.RunAsync(Timeout, Stack("status"))).Stdout);

        // wait on a rollout that fails: exit 1 with the reason, the operator still running (and revision 3 still serving).
        w.Write("api.yaml", w.Api(image: TestImages.AppBadMigrate));
        var failed = await SkiffProcess.RunAsync(Timeout, Stack("wait", "--timeout", "90s"));
        Assert.True(failed.Exit == 1, $"wait exit {failed.Exit}\n{failed.Stderr}\n--- run:\n{run.Stderr}");
        Assert.Contains("MigrationFailed", failed.Stderr);
        Assert.False(run.HasExited);

        // rollback to a named revision, from the failed state: revision 2's image serves again, as revision 5.
        var named = await SkiffProcess.RunAsync(Timeout, [.. Stack("rollback"), "--to-revision", "2"]);
        Assert.True(named.Exit == 0, named.Stderr);
        await WaitReadyAsync();
        Assert.Equal("2", await ServedVersionAsync(w));
        AssertHistory(w, (4, TestImages.AppBadMigrate, "RolledBack"), (5, TestImages.App2, "Succeeded"));

        // restart: a new app container (revision 6) of the same image.
        var before = (await w.ContainersAsync("api")).Single(c => c.Component == "app" && c.Running);
        var restart = await SkiffProcess.RunAsync(Timeout, Stack("restart"));
        Assert.True(restart.Exit == 0, restart.Stderr);
        await WaitReadyAsync();
        var after = (await w.ContainersAsync("api")).Single(c => c.Component == "app" && c.Running);
        Assert.NotEqual(before.Id, after.Id);
        Assert.Equal(before.ImageId, after.ImageId);
        Assert.Equal(6, after.Revision);
        AssertHistory(w, (6, TestImages.App2, "Succeeded"));

        // The next edit of the document wins over the rollback, as a new deploy does.
        w.Write("api.yaml", w.Api(image: TestImages.App1));
        await WaitReadyAsync();
        Assert.Equal("1", await ServedVersionAsync(w));
        Assert.False(run.HasExited);
    }

    /// <summary>The version the live app answers on / (over the stack's network, from the host).</summary>
    private static async Task<string> ServedVersionAsync(FolderWorkspace w)
    {
        var app = (await w.ContainersAsync("api")).Single(c => c.Component == "app" && c.Running);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var body = await http.GetStringAsync(new Uri($"http://{app.NetworkIps.Values.First()}:8080/"));
        return System.Text.Json.JsonDocument.Parse(body).RootElement.GetProperty("version").GetString()!;
    }

    private static void AssertHistory(FolderWorkspace w, params (long Revision, string Image, string Outcome)[] expected)
    {
        var history = new Skiff.State.StateStore(w.StateDir).Read(w.Namespace, "api")?.Status?.History ?? [];
        foreach (var (revision, image, outcome) in expected)
        {
            Assert.Contains(history, h => h.Revision == revision && h.Image == image && h.Outcome == outcome);
        }
    }
}
