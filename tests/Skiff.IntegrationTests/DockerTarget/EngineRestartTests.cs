using Skiff.Api;
using Skiff.Docker;
using Skiff.Reconcile;
using Microsoft.Extensions.Logging.Abstractions;
using Skiff.IntegrationTests.Infrastructure;

namespace Skiff.IntegrationTests.DockerTarget;

/// <summary>dockerd stopped and started again in the middle of a reconcile.</summary>
public sealed class EngineRestartTests
{
    [Fact]
    public async Task Engine_stopped_during_a_reconcile_is_reported_unreachable_and_the_next_reconcile_converges()
    {
        await using var dockerd = new ThrowawayEngine("restart");
        await dockerd.StartAsync();
        await dockerd.ResetAsync();
        await dockerd.LoadImagesAsync(TestImages.Postgres, TestImages.App1);
        using var engine = new DockerEngine(dockerd.Endpoint);
        var secrets = new InMemorySecrets();
        using var reconciler = new StackReconciler(engine, secrets, new StackContext("local", "restart-test", "test"), new RecordingEvents(), NullLogger<StackReconciler>.Instance);
        var api = StackHarness.ApiWithDatabase("restart", "api");
        // The engine lives in its own network namespace: readiness by minReadySeconds, not an HTTP probe from here.
        api.Spec.App.HealthCheck = null;
        api.Spec.Rollout!.MinReadySeconds = 1;

        // A long migration (5 s) that the engine's shutdown stops half-way, as an `apt upgrade` of docker.io
        // would: the migration is re-run after the restart, not taken for a failed one. (Killing PostgreSQL in
        // the middle of its first initdb would leave a half-made cluster, with this image as with the official
        // one: that is a different test.)
        api.Spec.App.Env = [new EnvVar { Name = "TESTAPP_MIGRATE_SECONDS", Value = "5" }];
        var reconcile = StackHarness.SettleAsync(reconciler, api, CancellationToken.None);
        await Eventually.UntilAsync("the migration started", async () =>
        {
            Assert.False(reconcile.IsCompleted, "the reconcile ended before the migration started");
            return await engine.ListContainersAsync(new Dictionary<string, string> { [SkiffLabels.Component] = "migrate" }, CancellationToken.None);
        }, cs => cs.Any(c => c.Running), TimeSpan.FromSeconds(60), interval: TimeSpan.FromMilliseconds(50));

        await Task.Delay(1000);
        await dockerd.StopAsync();
        var error = await Assert.ThrowsAsync<EngineUnreachableException>(() => reconcile);
        Assert.Contains("Docker engine unreachable at " + dockerd.Endpoint, error.Message);

        await dockerd.StartAsync();
        var result = await StackHarness.SettleAsync(reconciler, api, CancellationToken.None);

        Assert.True(result.Status.Phase == Phases.Ready, string.Join("\n", result.Status.Conditions!.Select(c => $"{c.Type}={c.Status} {c.Reason}: {c.Message}")));
        Assert.Equal(Outcomes.Succeeded, Assert.Single(result.Status.History!).Outcome);
        Assert.Contains(result.Status.Conditions!, c => c.Type == ConditionTypes.Migrated && c.Status == "True");
        var containers = await engine.ListContainersAsync(new Dictionary<string, string> { [SkiffLabels.App] = "restart/api" }, CancellationToken.None);
        Assert.Equal(["app", "database"], containers.Select(c => c.Component!).Order().ToArray());
        Assert.All(containers, c => Assert.True(c.Running));

        api.Spec.Database!.Storage = new StorageSpec { ReclaimPolicy = ReclaimPolicies.Delete };
        await reconciler.DeleteAsync(new StackNames("restart", "api"), api.Spec, CancellationToken.None);
    }
}
