using Skiff.Api;
using Skiff.Docker;
using Skiff.Reconcile;
using Skiff.IntegrationTests.Infrastructure;

namespace Skiff.IntegrationTests.DockerTarget;

/// <summary>The Docker target on the real engine, through the planner and executor.</summary>
public sealed class RolloutTests
{
    [Fact]
    public async Task Api_with_postgres_converges_and_the_app_really_uses_DATABASE_URL()
    {
        await using var h = new StackHarness();
        var api = StackHarness.ApiWithDatabase(h.Namespace, "api");

        await h.ReconcileAsync(api);

        Assert.Equal(Phases.Ready, api.Status!.Phase);
        Assert.True(Conditions.IsTrue(api.Status, ConditionTypes.Ready), Conditions.Get(api.Status, ConditionTypes.Ready)?.Message);
        Assert.True(Conditions.IsTrue(api.Status, ConditionTypes.DatabaseReady));
        Assert.True(Conditions.IsTrue(api.Status, ConditionTypes.Migrated));
        Assert.Equal(1, api.Status.Revision);
        Assert.Equal(Outcomes.Succeeded, api.Status.History!.Single().Outcome);
        var (code, _) = await h.GetAppAsync(api, "/healthz");
        Assert.Equal(200, code);
        var first = await h.GetAppJsonAsync(api);
        var second = await h.GetAppJsonAsync(api);
        Assert.Equal(first["visits"]!.GetValue<long>() + 1, second["visits"]!.GetValue<long>());

        var containers = await h.ContainersAsync(api);
        Assert.Equal(["app", "database"], containers.Select(c => c.Component!).Order().ToArray());
        Assert.Contains(containers, c => c.Name == $"skiff_{h.Namespace}_api_app_r1");
        Assert.Contains(containers, c => c.Name == $"skiff_{h.Namespace}_api_database");
    }

    [Fact]
    public async Task Bot_with_redis_converges_and_the_app_really_uses_REDIS_URL()
    {
        await using var h = new StackHarness();
        var bot = h.BotWithRedis("bot");

        await h.ReconcileAsync(bot);

        Assert.Equal(Phases.Ready, bot.Status!.Phase);
        Assert.True(Conditions.IsTrue(bot.Status, ConditionTypes.CacheReady));
        var first = await h.GetAppJsonAsync(bot);
        var second = await h.GetAppJsonAsync(bot);
        Assert.Equal(first["hits"]!.GetValue<long>() + 1, second["hits"]!.GetValue<long>());
        Assert.Null(bot.Status.Endpoint);
    }

    [Fact]
    public async Task Image_change_rolls_out_a_new_revision_and_keeps_the_database_and_its_rows()
    {
        await using var h = new StackHarness();
        var api = StackHarness.ApiWithDatabase(h.Namespace, "api");
        await h.ReconcileAsync(api);
        await h.GetAppJsonAsync(api);
        var before = await h.GetAppJsonAsync(api);
        var database = (await h.ContainersAsync(api)).Single(c => c.Component == StackNames.DatabaseComponent);

        api.Spec.App.Image = TestImages.App2;
        api.Metadata.Generation = 2;
        await h.ReconcileAsync(api);

        Assert.Equal(Phases.Ready, api.Status!.Phase);
        Assert.Equal(2, api.Status.Revision);
        var containers = await h.ContainersAsync(api);
        Assert.Equal(database.Id, containers.Single(c => c.Component == StackNames.DatabaseComponent).Id);
        Assert.Equal($"skiff_{h.Namespace}_api_app_r2", containers.Single(c => c.Component == StackNames.AppComponent).Name);
        var after = await h.GetAppJsonAsync(api);
        Assert.Equal("2", after["version"]!.ToString());
        Assert.Equal(before["visits"]!.GetValue<long>() + 1, after["visits"]!.GetValue<long>());
        Assert.Equal(TestImages.App2, api.Status.LastGoodImage);
        Assert.Equal(2, api.Status.ObservedGeneration);
    }

    [Fact]
    public async Task Image_whose_health_check_never_passes_is_rolled_back_and_not_retried()
    {
        await using var h = new StackHarness();
        var api = StackHarness.ApiWithDatabase(h.Namespace, "api");
        await h.ReconcileAsync(api);

        api.Spec.App.Image = "skiff-test/app:bad-health";
        api.Spec.Rollout!.ProgressDeadlineSeconds = 6;
        await h.ReconcileAsync(api);

        AssertRolledBack(api, "HealthCheckFailed");
        var served = await h.GetAppJsonAsync(api);
        Assert.Equal("1", served["version"]!.ToString());
        var app = (await h.ContainersAsync(api)).Single(c => c.Component == StackNames.AppComponent);

        // Level-based, yet the failed spec is remembered: the next reconcile changes nothing.
        await h.ReconcileAsync(api);
        AssertRolledBack(api, "HealthCheckFailed");
        Assert.Equal(app.Id, (await h.ContainersAsync(api)).Single(c => c.Component == StackNames.AppComponent).Id);
        Assert.Equal(2, api.Status!.History!.Count);
    }

    [Fact]
    public async Task Migration_that_exits_1_is_rolled_back_with_its_log_in_the_status()
    {
        await using var h = new StackHarness();
        var api = StackHarness.ApiWithDatabase(h.Namespace, "api");
        await h.ReconcileAsync(api);

        api.Spec.App.Image = "skiff-test/app:bad-migrate";
        await h.ReconcileAsync(api);

        AssertRolledBack(api, "MigrationFailed");
        var stalled = Conditions.Get(api.Status, ConditionTypes.Stalled)!;
        Assert.Contains("exited with code 1", stalled.Message);
        Assert.Contains("last log lines", stalled.Message);
        Assert.False(Conditions.IsTrue(api.Status, ConditionTypes.Migrated));
        Assert.DoesNotContain(await h.ContainersAsync(api), c => c.Component == StackNames.MigrateComponent);
        Assert.Equal("1", (await h.GetAppJsonAsync(api))["version"]!.ToString());

        await h.ReconcileAsync(api);
        Assert.DoesNotContain(await h.ContainersAsync(api), c => c.Component == StackNames.MigrateComponent);
        AssertRolledBack(api, "MigrationFailed");
    }

    [Fact]
    public async Task Migration_stopped_from_outside_runs_again_and_the_rollout_succeeds()
    {
        await using var h = new StackHarness();
        var api = StackHarness.ApiWithDatabase(h.Namespace, "api");
        // A migration that works for 8 s; `docker stop` (what the engine's own shutdown or a reboot does) ends it half-way.
        // Each run must be seen while it runs (polls 50 ms apart, each a Docker list): with 3 s, the second run had come
        // and gone between two polls at CI's load.
        api.Spec.App.Env = [new EnvVar { Name = "TESTAPP_MIGRATE_SECONDS", Value = "8" }];
        var reconcile = h.ReconcileAsync(api);

        var containers = await Eventually.UntilAsync("the migration started", async () =>
        {
            Assert.False(reconcile.IsCompleted, "the reconcile ended before the migration started");
            return await h.ContainersAsync(api);
        }, cs => cs.Any(c => c.Component == StackNames.MigrateComponent && c.Running), TimeSpan.FromSeconds(60), interval: TimeSpan.FromMilliseconds(50));
        var migration = containers.First(c => c.Component == StackNames.MigrateComponent && c.Running);

        Assert.Equal(1, migration.Attempt);
        await h.Engine.StopContainerAsync(migration.Id, TimeSpan.FromSeconds(10), CancellationToken.None);
        // Skiff removes the stopped one at once and runs the migration again (8 s more): the second run is seen.
        await Eventually.UntilAsync("the migration was run again", async () =>
        {
            Assert.False(reconcile.IsCompleted, "the reconcile ended without running the migration again");
            return await h.ContainersAsync(api);
        }, cs => cs.Any(c => c.Component == StackNames.MigrateComponent && c.Attempt == 2), TimeSpan.FromSeconds(60), interval: TimeSpan.FromMilliseconds(50));

        await reconcile;

        Assert.True(api.Status!.Phase == Phases.Ready, string.Join("\n", api.Status.Conditions!.Select(c => $"{c.Type}={c.Status} {c.Reason}: {c.Message}")));
        Assert.True(Conditions.IsTrue(api.Status, ConditionTypes.Migrated));
        Assert.Equal(Outcomes.Succeeded, api.Status.History!.Single().Outcome);
        Assert.DoesNotContain(await h.ContainersAsync(api), c => c.Component == StackNames.MigrateComponent);
        Assert.Equal(200, (await h.GetAppAsync(api, "/healthz")).Status);
    }

    [Fact]
    public async Task An_app_can_read_its_own_generated_database_secret_through_a_secretKeyRef()
    {
        await using var h = new StackHarness();
        var api = StackHarness.ApiWithDatabase(h.Namespace, "api");
        api.Spec.App.Env = [new EnvVar { Name = "DB_PASSWORD", ValueFrom = new EnvVarSource { SecretKeyRef = new SecretKeySelector { Name = "api-db", Key = "password" } } }];

        await h.ReconcileAsync(api);

        Assert.Equal(Phases.Ready, api.Status!.Phase);
        var app = (await h.ContainersAsync(api)).Single(c => c.Component == StackNames.AppComponent);
        var env = (await h.Engine.Client.Containers.InspectContainerAsync(app.Id)).Config!.Env!;
        var password = System.Text.Encoding.UTF8.GetString(h.Secrets.Secrets[$"{h.Namespace}/api-db"]["password"]);
        Assert.Contains("DB_PASSWORD=" + password, env);
    }

    [Fact]
    public async Task A_migration_longer_than_the_progress_deadline_succeeds_because_the_deadline_counts_from_the_app_start()
    {
        await using var h = new StackHarness();
        var api = StackHarness.ApiWithDatabase(h.Namespace, "api");
        // A deadline the app's own start (a .NET app: seconds on a loaded 2-core machine; 5 s was missed at load 16)
        // meets, and a migration longer than it.
        api.Spec.App.Env = [new EnvVar { Name = "TESTAPP_MIGRATE_SECONDS", Value = "12" }];
        api.Spec.Rollout!.ProgressDeadlineSeconds = 10;

        var clock = System.Diagnostics.Stopwatch.StartNew();
        await h.ReconcileAsync(api);

        Assert.True(Conditions.IsTrue(api.Status!, ConditionTypes.Ready), string.Join("\n", api.Status!.Conditions!.Select(c => $"{c.Type}={c.Status} {c.Reason}: {c.Message}")));
        Assert.True(Conditions.IsTrue(api.Status, ConditionTypes.Migrated));
        Assert.Equal(Outcomes.Succeeded, api.Status.History!.Single().Outcome);
        // The case at hand: the rollout did take longer than its progress deadline (the migration alone took 12 s).
        Assert.True(clock.Elapsed > TimeSpan.FromSeconds(12), $"the rollout took {clock.Elapsed}");
    }

    [Fact]
    public async Task Missing_image_is_reported_as_ImageNotFound()
    {
        await using var h = new StackHarness();
        var bot = h.BotWithRedis("bot");
        bot.Spec.App.Image = "skiff-test/does-not-exist:1";
        bot.Spec.App.ImagePullPolicy = PullPolicies.Never;

        await h.ReconcileAsync(bot);

        Assert.Equal(Phases.Failed, bot.Status!.Phase);
        Assert.Equal("ImageNotFound", Conditions.Get(bot.Status, ConditionTypes.Stalled)!.Reason);
        Assert.True(Conditions.IsTrue(bot.Status, ConditionTypes.Stalled));
    }

    private static void AssertRolledBack(AppDeployment api, string reason)
    {
        var status = api.Status!;
        Assert.Equal(Phases.Degraded, status.Phase);
        Assert.False(Conditions.IsTrue(status, ConditionTypes.Ready));
        Assert.True(Conditions.IsTrue(status, ConditionTypes.Stalled));
        Assert.Equal(reason, Conditions.Get(status, ConditionTypes.Stalled)!.Reason);
        Assert.Equal(TestImages.App1, status.LastGoodImage);
        Assert.Equal(1, status.Revision);
        Assert.Equal(Outcomes.RolledBack, status.History!.Last().Outcome);
        Assert.Equal(reason, status.History!.Last().Reason);
    }
}
