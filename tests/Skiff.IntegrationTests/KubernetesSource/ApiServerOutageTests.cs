using k8s;
using Skiff.Api;
using Skiff.IntegrationTests.FolderSource;
using Skiff.Reconcile;
using Skiff.IntegrationTests.Infrastructure;

namespace Skiff.IntegrationTests.KubernetesSource;

/// <summary>
/// The API server goes away (stopped: connections refused, as while a kube-apiserver restarts) under an operator that
/// holds its node's lease with controller-runtime's timings (lease 15 s, renew deadline 10 s, retry 2 s).
/// </summary>
public sealed class ApiServerOutageTests
{
    [Fact]
    public async Task The_operator_keeps_its_lease_through_a_5_second_outage_and_rolls_out_a_change_applied_after_it()
    {
        await using var h = await KubeHarness.StartAsync();
        var op = h.StartOperator(leaderElect: true);
        await h.ApplyAsync(h.Stateless("web", "local"));
        Assert.Equal(0, (await h.WaitReadyAsync("web")).ExitCode);
        var holder = (await h.Client.CoordinationV1.ReadNamespacedLeaseAsync("skiff-local", h.Namespace)).Spec.HolderIdentity;

        await h.Server.StopAsync();
        await Task.Delay(TimeSpan.FromSeconds(5));
        await h.Server.RestartAsync();
        await h.ApplyAsync(h.Stateless("web", "local").Replace("skiff-test/app:1", "skiff-test/app:2", StringComparison.Ordinal));

        await Eventually.UntilAsync("web's revision 2 is Ready for the latest generation", () => h.GetAsync("web"),
            r => r?.Status?.Revision == 2 && r.Status.ObservedGeneration == r.Metadata.Generation && Conditions.IsTrue(r.Status, ConditionTypes.Ready),
            TimeSpan.FromSeconds(90), () => op.Stderr);
        Assert.False(op.HasExited, op.Stderr);
        Assert.Contains("Could not renew lease", op.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Lost lease", op.Stderr, StringComparison.Ordinal);
        Assert.Equal(holder, (await h.Client.CoordinationV1.ReadNamespacedLeaseAsync("skiff-local", h.Namespace)).Spec.HolderIdentity);
        var app = Assert.Single(await h.Workspace.ContainersAsync("web"), c => c.Component == "app");
        Assert.Equal((2L, "skiff-test/app:2"), (app.Revision, app.Image));
    }

    [Fact]
    public async Task After_an_outage_longer_than_the_renew_deadline_the_operator_exits_1_saying_it_could_not_renew()
    {
        await using var h = await KubeHarness.StartAsync();
        var op = h.StartOperator(leaderElect: true);
        await h.ApplyAsync(h.Stateless("web", "local"));
        Assert.Equal(0, (await h.WaitReadyAsync("web")).ExitCode);

        await h.Server.StopAsync();
        // The operator must give up while the API server is still away (it would be back after 30 s).
        var exit = await op.WaitAsync(TimeSpan.FromSeconds(30));
        await h.Server.RestartAsync();

        Assert.True(exit == 1, $"exit {exit}\n{op.Stderr}");
        // Whichever of its leases fails first: the node's, or skiff-cluster (runtime: kubernetes stacks), held beside it.
        Assert.Matches($@"Lost lease {h.Namespace}/(skiff-local|skiff-cluster): could not renew it for 10 s: Connection refused[^\n]*; exiting so that the supervisor restarts this one", op.Stderr);
        Assert.DoesNotContain("is now held by", op.Stderr, StringComparison.Ordinal);
        // Until then it kept trying, every retry period.
        Assert.True(op.Stderr.Split("Could not renew lease").Length - 1 >= 3, op.Stderr);
        // The stack it served is left running: losing the lease stops the operator, not the apps.
        Assert.Single(await h.Workspace.ContainersAsync("web"), c => c.Component == "app" && c.Running);
    }
}
