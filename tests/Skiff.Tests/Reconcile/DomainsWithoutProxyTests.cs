using Skiff.Api;
using Skiff.Reconcile;

namespace Skiff.Tests.Reconcile;

/// <summary>
/// Domains are served only by the node proxy: a stack with <c>spec.app.ports[].domains</c> on a node whose operator runs
/// without <c>--proxy-image</c> says so (DomainsNotServed, ProxyRequired, a Warning Event) and runs all the same.
/// </summary>
public sealed class DomainsWithoutProxyTests
{
    [Fact]
    public async Task A_stack_with_domains_and_no_node_proxy_runs_and_is_DomainsNotServed_until_the_proxy_is_on()
    {
        using var rig = new RolloutMachineTests.Rig(spec => spec.App.Ports![0].Domains = ["api.example.com", "www.example.com"]);

        await rig.RollThroughAsync();

        Assert.Equal(Outcomes.Succeeded, rig.History(1)!.Outcome);
        Assert.Equal("True", rig.Condition(ConditionTypes.Ready)!.Status);
        Assert.Equal("running", rig.Engine.Find(rig.App(1))!.State);
        var unserved = rig.Condition(ConditionTypes.DomainsNotServed)!;
        Assert.Equal(("True", Reasons.ProxyRequired), (unserved.Status, unserved.Reason));
        Assert.Equal(
            "spec.app.ports[].domains: api.example.com, www.example.com are not served: domains need the node proxy, and this operator runs without it; start skiff run with --proxy-image IMAGE (the chart: proxy.enabled=true). The app runs meanwhile, reachable on its hostPorts only",
            unserved.Message);
        var said = StatusEvents.Between(null, rig.Stored!, DateTimeOffset.UtcNow).Where(e => e.Reason == Reasons.ProxyRequired).ToList();
        Assert.Equal(EventKind.Warning, Assert.Single(said).Kind);

        // Said once: the next reconcile changes nothing.
        var before = StackReconciler.CloneStatus(rig.Stored);
        await rig.StepAsync();
        Assert.DoesNotContain(StatusEvents.Between(before, rig.Stored!, DateTimeOffset.UtcNow), e => e.Reason == Reasons.ProxyRequired);

        // With the node proxy on, the condition goes.
        // (The rollout that turns the proxy on drains the old revision on the clock: the steps up to the switch are enough.)
        var routes = rig.UseProxy();
        await rig.RollThroughAsync(steps: 8).ContinueWith(_ => { }, TaskScheduler.Default);
        Assert.Null(rig.Condition(ConditionTypes.DomainsNotServed));
        Assert.Contains(routes.Get("prod/api").Routes, r => r.Domain == "api.example.com");
    }

    [Fact]
    public async Task A_stack_without_domains_and_no_node_proxy_has_no_such_condition()
    {
        using var rig = new RolloutMachineTests.Rig();

        await rig.RollThroughAsync();

        Assert.Null(rig.Condition(ConditionTypes.DomainsNotServed));
    }
}
