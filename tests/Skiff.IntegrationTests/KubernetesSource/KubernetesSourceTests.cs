using k8s;
using System.Text;
using Skiff.Api;
using Skiff.IntegrationTests.FolderSource;
using Skiff.Reconcile;
using Skiff.IntegrationTests.Infrastructure;

namespace Skiff.IntegrationTests.KubernetesSource;

/// <summary>The Kubernetes source end to end: the test API server, the real kubectl, the real skiff process, the real engine.</summary>
public sealed class KubernetesSourceTests
{
    [Fact]
    public async Task Kubectl_apply_converges_and_wait_get_and_describe_show_it()
    {
        await using var h = await KubeHarness.StartAsync();
        h.StartOperator();
        await h.ApplyAsync(h.Api());

        var wait = await h.WaitReadyAsync("api");
        Assert.True(wait.ExitCode == 0, $"kubectl wait: {wait.Stdout}{wait.Stderr}");
        var containers = await h.Workspace.ContainersAsync("api");
        Assert.Equal(["app", "database"], containers.Select(c => c.Component!).Order().ToArray());

        var get = await h.KubectlAsync("get", "appdep");
        Assert.Matches(@"NAME\s+NODE\s+READY\s+PHASE\s+IMAGE\s+REVISION\s+AGE", get.Stdout);
        Assert.Matches(@"api\s+local\s+True\s+Ready\s+skiff-test/app:1\s+1\s+", get.Stdout);
        var describe = await h.KubectlAsync("describe", "appdeployment", "api");
        Assert.Contains("RolloutStarted", describe.Stdout);
        Assert.Contains("RolloutSucceeded", describe.Stdout);

        var resource = await h.GetAsync("api");
        Assert.Contains(SkiffApi.Finalizer, resource!.Metadata.Finalizers!);
        Assert.Equal(resource.Metadata.Generation, resource.Status!.ObservedGeneration);
        var secret = await h.Client.CoreV1.ReadNamespacedSecretAsync("api-db", h.Namespace);
        Assert.Equal(["database", "password", "url", "username"], secret.Data.Keys.Order().ToArray());
        Assert.Empty(secret.Metadata.OwnerReferences ?? []);
    }

    [Fact]
    public async Task Image_change_rolls_out_a_broken_image_stalls_and_delete_waits_for_cleanup_keeping_data()
    {
        await using var h = await KubeHarness.StartAsync();
        var op = h.StartOperator();
        await h.ApplyAsync(h.Api());
        Assert.Equal(0, (await h.WaitReadyAsync("api")).ExitCode);

        await h.ApplyAsync(h.Api(image: "skiff-test/app:2"));
        await Eventually.UntilAsync("api's revision 2 is Ready", () => h.GetAsync("api"),
            r => r?.Status?.Revision == 2 && Conditions.IsTrue(r.Status, ConditionTypes.Ready), TimeSpan.FromSeconds(90));

        await h.ApplyAsync(h.Api(image: "skiff-test/app:bad-health", deadline: 6));
        await Eventually.UntilAsync("api is Stalled", () => h.GetAsync("api"), r => Conditions.IsTrue(r!.Status, ConditionTypes.Stalled), TimeSpan.FromSeconds(90));
        var failed = (await h.GetAsync("api"))!;
        Assert.Equal("HealthCheckFailed", Conditions.Get(failed.Status, ConditionTypes.Stalled)!.Reason);
        Assert.Equal(Phases.Degraded, failed.Status!.Phase);
        var wait = await h.WaitReadyAsync("api", seconds: 3);
        Assert.NotEqual(0, wait.ExitCode);
        Assert.Equal(2, failed.Status.Revision);

        var delete = await h.KubectlAsync("delete", "appdeployment", "api", "--timeout=90s");
        Assert.True(delete.ExitCode == 0, delete.Stderr);
        Assert.Null(await h.GetAsync("api"));
        Assert.Empty(await h.Workspace.ContainersAsync("api"));
        Assert.NotNull(await h.Workspace.Engine.InspectVolumeAsync($"skiff_{h.Namespace}_api_database", CancellationToken.None));
        Assert.NotNull(await h.Client.CoreV1.ReadNamespacedSecretAsync("api-db", h.Namespace));
        Assert.False(op.HasExited);
    }

    [Fact]
    public async Task Dropped_and_expired_watches_and_injected_errors_lose_no_update_and_nothing_spins()
    {
        await using var h = await KubeHarness.StartAsync();
        h.StartOperator();
        await h.ApplyAsync(h.Api());
        Assert.Equal(0, (await h.WaitReadyAsync("api")).ExitCode);

        h.Server.Faults.DropAllWatches();
        h.Server.Faults.ExpireAll();
        h.Server.Faults.FailNext(2, "PATCH", "/appdeployments/api/status", 409);
        h.Server.Faults.FailNext(1, "PATCH", "/appdeployments/api/status", 500);
        await h.ApplyAsync(h.Api(image: "skiff-test/app:2"));
        await Eventually.UntilAsync("api's revision 2 is Ready for the latest generation", () => h.GetAsync("api"),
            r => r?.Status?.Revision == 2 && Conditions.IsTrue(r.Status, ConditionTypes.Ready) && r.Status.ObservedGeneration == r.Metadata.Generation,
            TimeSpan.FromSeconds(120));

        // One rollout per change: revisions 1 and 2 only, one app container, and the status settles.
        var resource = (await h.GetAsync("api"))!;
        Assert.Equal([1L, 2L], resource.Status!.History!.Select(r => r.Revision).ToArray());
        Assert.Single(await h.Workspace.ContainersAsync("api"), c => c.Component == "app");
        var events = await h.Client.CoreV1.ListNamespacedEventAsync(h.Namespace);
        Assert.Equal(2, events.Items.Count(e => e.Reason == "RolloutStarted"));
        h.Server.ClearRequestLog();
        await Task.Delay(TimeSpan.FromSeconds(5));
        var writes = h.Server.RequestLog.Count(r => r.Method is "PATCH" or "PUT" && r.Path.Contains("/appdeployments/", StringComparison.Ordinal));
        Assert.True(writes <= 1, $"{writes} writes in 5 s of a settled resource");
    }

    [Fact]
    public async Task A_resource_the_schema_accepts_but_validation_rejects_stalls_alone()
    {
        await using var h = await KubeHarness.StartAsync();
        h.StartOperator();
        // Duplicate host ports pass the schema here (CEL is not evaluated by the test server) but not Skiff's twin.
        var bad = h.Stateless("bad", "local", s => s.App.Ports =
        [
            new PortSpec { Name = "a", ContainerPort = 8080, HostPort = 18081 },
            new PortSpec { Name = "b", ContainerPort = 8081, HostPort = 18081 },
        ]);
        await h.ApplyAsync(bad);
        await h.ApplyAsync(h.Stateless("good", "local"));

        Assert.Equal(0, (await h.WaitReadyAsync("good")).ExitCode);
        await Eventually.UntilAsync("bad is Stalled for InvalidSpec", () => h.GetAsync("bad"),
            r => Conditions.Get(r?.Status, ConditionTypes.Stalled)?.Reason == "InvalidSpec", TimeSpan.FromSeconds(60));
        var stalled = Conditions.Get((await h.GetAsync("bad"))!.Status, ConditionTypes.Stalled)!;
        Assert.Contains("spec.app.ports[1].hostPort", stalled.Message);
        Assert.Empty(await h.Workspace.ContainersAsync("bad"));
    }

    [Fact]
    public async Task A_missing_secret_stalls_with_SecretNotFound_and_resolves_when_it_appears()
    {
        await using var h = await KubeHarness.StartAsync();
        h.StartOperator();
        // The seed bot without its Redis: the Secret alone is missing.
        var yaml = Stacks.Yaml(Stacks.Bot("bot").With(s => s.Cache = null));
        await h.ApplyAsync(yaml);
        await Eventually.UntilAsync("bot is Stalled for SecretNotFound", () => h.GetAsync("bot"),
            r => Conditions.Get(r?.Status, ConditionTypes.Stalled)?.Reason == "SecretNotFound", TimeSpan.FromSeconds(60));

        await h.Client.CoreV1.CreateNamespacedSecretAsync(new k8s.Models.V1Secret
        {
            Metadata = new() { Name = "bot-secrets" },
            Data = new Dictionary<string, byte[]> { ["token"] = Encoding.UTF8.GetBytes("s3cr3t-token-value") },
        }, h.Namespace);
        Assert.Equal(0, (await h.WaitReadyAsync("bot", seconds: 90)).ExitCode);
    }

    [Fact]
    public async Task Killed_and_restarted_mid_rollout_the_operator_converges_without_duplicates()
    {
        await using var h = await KubeHarness.StartAsync();
        var state = Path.Combine(h.Workspace.Root, "state-kill");
        var first = h.StartOperator(stateDir: state);
        // A migration that works for 5 s: the kill lands while it runs, however fast the rest goes.
        await h.ApplyAsync(h.Api(migrateSeconds: 5));
        await Eventually.UntilAsync("api's migration runs", () => h.Workspace.ContainersAsync("api"),
            cs => cs.Any(c => c.Component == "migrate" && c.Running), TimeSpan.FromSeconds(60));
        first.Kill();
        await first.WaitAsync(TimeSpan.FromSeconds(10));

        h.StartOperator(stateDir: state);
        Assert.Equal(0, (await h.WaitReadyAsync("api")).ExitCode);
        var containers = await h.Workspace.ContainersAsync("api");
        Assert.Equal(["app", "database"], containers.Select(c => c.Component!).Order().ToArray());
        Assert.Equal(1, (await h.GetAsync("api"))!.Status!.Revision);
    }

    [Fact]
    public async Task Runtime_kubernetes_is_never_run_on_the_node_but_applied_to_the_cluster()
    {
        await using var h = await KubeHarness.StartAsync();
        var op = h.StartOperator();
        await h.ApplyAsync(h.Stateless("native", "local", s => s.Runtime = Runtimes.Kubernetes));
        await Eventually.TrueAsync("the Deployment native exists", async () =>
            (await h.Client.AppsV1.ListNamespacedDeploymentAsync(h.Namespace, fieldSelector: "metadata.name=native")).Items.Count == 1,
            TimeSpan.FromSeconds(60), () => op.Stderr);
        Assert.Empty(await h.Workspace.ContainersAsync("native"));
        Assert.NotEqual("RuntimeNotSupported", Conditions.Get((await h.GetAsync("native"))!.Status, ConditionTypes.Stalled)?.Reason);
    }
}
