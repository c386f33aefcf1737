using k8s;
using Skiff.Api;
using Skiff.IntegrationTests.FolderSource;
using Skiff.Reconcile;

namespace Skiff.IntegrationTests.KubernetesSource;

/// <summary><c>skiff run --source kubernetes --once</c>, as the real process, with resources applied by the real kubectl.</summary>
public sealed class KubernetesRunOnceTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(3);

    [Fact]
    public async Task Run_once_reconciles_waits_prints_both_and_exits_1_for_a_broken_image_then_0_when_all_are_good()
    {
        await using var h = await KubeHarness.StartAsync();
        await h.ApplyAsync(h.Stateless("good", "local"));
        await h.ApplyAsync(h.Stateless("broken", "local").Replace("skiff-test/app:1", "skiff-test/app:does-not-exist", StringComparison.Ordinal));
        await h.ApplyAsync(h.Stateless("elsewhere", "vps-9"));
        // Any free port: were an endpoint served, its "Serving ..." line would say so.
        string[] http = ["--metrics-bind-address", "127.0.0.1:0", "--health-probe-bind-address", "127.0.0.1:0"];

        var (exit, stdout, stderr) = await SkiffProcess.RunAsync(Timeout, h.RunOnceArgs(extra: http));

        Assert.True(exit == 1, $"exit {exit}\n{stdout}\n{stderr}");
        Assert.Matches($@"{h.Namespace}\s+good\s+local\s+True\s+Ready\s+skiff-test/app:1\s+1", stdout);
        Assert.Matches($@"{h.Namespace}\s+broken\s+local\s+False\s+\w+", stdout);
        Assert.Contains($"{h.Namespace}/broken: ImageNotFound: ", stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("elsewhere", stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("Serving", stderr, StringComparison.Ordinal);
        Assert.Contains($"Acquired lease {h.Namespace}/skiff-local", stderr, StringComparison.Ordinal);
        // Status went through the status subresource, as the long-running operator writes it.
        var good = (await h.GetAsync("good"))!;
        Assert.True(Conditions.IsTrue(good.Status, ConditionTypes.Ready));
        Assert.Equal(good.Metadata.Generation, good.Status!.ObservedGeneration);
        Assert.Equal("ImageNotFound", Conditions.Get((await h.GetAsync("broken"))!.Status, ConditionTypes.Stalled)?.Reason);
        Assert.Contains(h.Server.RequestLog, r => r.Subresource == "status" && r.Name == "good" && r.Method == "PATCH");
        // Done, it gave the lease back: the next instance of the node need not wait for it to expire.
        var lease = await h.Client.CoordinationV1.ReadNamespacedLeaseAsync("skiff-local", h.Namespace);
        Assert.True(string.IsNullOrEmpty(lease.Spec.HolderIdentity), $"held by {lease.Spec.HolderIdentity}\n{stderr}");

        var delete = await h.KubectlAsync("delete", "appdeployment", "broken", "--wait=false");
        Assert.True(delete.ExitCode == 0, delete.Stderr);
        var again = await SkiffProcess.RunAsync(Timeout, h.RunOnceArgs());

        Assert.True(again.Exit == 0, $"exit {again.Exit}\n{again.Stdout}\n{again.Stderr}");
        Assert.Matches($@"{h.Namespace}\s+good\s+local\s+True\s+Ready", again.Stdout);
        Assert.DoesNotContain("broken", again.Stdout, StringComparison.Ordinal);
        // Its finalizer ran: the resource is gone and so is every container of its stack.
        Assert.Null(await h.GetAsync("broken"));
        Assert.Empty(await h.Workspace.ContainersAsync("broken"));
    }

    [Fact]
    public async Task Run_once_never_works_beside_a_running_instance_of_the_node()
    {
        await using var h = await KubeHarness.StartAsync();
        var running = h.StartOperator(leaderElect: true);
        await running.UntilLoggedAsync("Acquired lease", TimeSpan.FromSeconds(60));
        await h.ApplyAsync(h.Stateless("web", "local"));
        Assert.Equal(0, (await h.WaitReadyAsync("web")).ExitCode);
        var holder = (await h.Client.CoordinationV1.ReadNamespacedLeaseAsync("skiff-local", h.Namespace)).Spec.HolderIdentity;

        var (exit, stdout, stderr) = await SkiffProcess.RunAsync(Timeout, h.RunOnceArgs());

        Assert.True(exit == 2, $"exit {exit}\n{stdout}\n{stderr}");
        Assert.Contains($"lease {h.Namespace}/skiff-local is held by {holder}, a running instance serving node local", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Cache synced", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Reconciling", stderr, StringComparison.Ordinal);
        Assert.False(running.HasExited);
        Assert.Equal(holder, (await h.Client.CoordinationV1.ReadNamespacedLeaseAsync("skiff-local", h.Namespace)).Spec.HolderIdentity);
    }
}
