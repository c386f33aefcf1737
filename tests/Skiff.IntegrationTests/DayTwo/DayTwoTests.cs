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

        // wait on a rollout that fails: exit 1 with the reason, the operator still running.
        w.Write("api.yaml", w.Api(image: TestImages.AppBadHealth));
        var failed = await SkiffProcess.RunAsync(Timeout, Stack("wait", "--timeout", "90s"));
        Assert.True(failed.Exit == 1, $"wait exit {failed.Exit}\n{failed.Stderr}\n--- run:\n{run.Stderr}");
        Assert.Contains("HealthCheckFailed", failed.Stderr);
        Assert.False(run.HasExited);
    }
}
