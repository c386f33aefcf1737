using Skiff.Api;
using Skiff.Reconcile;

namespace Skiff.Tests.Reconcile;

/// <summary>
/// Rollouts with the node proxy (DESIGN §7) as a state machine on the in-memory engine: start-first, the route switch
/// only after the health check, the old revision's drain, a rollback as a switch back, and the crash points between.
/// </summary>
public sealed class ProxyRolloutTests
{
    private const string Stack = "prod/api";

    [Fact]
    public async Task A_first_rollout_publishes_no_host_port_and_routes_the_port_once_the_revision_is_healthy()
    {
        using var rig = new RolloutMachineTests.Rig(proxy: true);
        var routes = rig.Routes!;

        await rig.RollThroughAsync();

        var app = rig.Engine.Find(rig.App(1))!;
        Assert.Equal(SkiffLabels.RoutingProxy, app.Label(SkiffLabels.Routing));
        var route = Assert.Single(routes.Get(Stack).Routes);
        Assert.Equal(new StackRoute("127.0.0.1:3000", "http", "http", 1, $"{app.NetworkIps["skiff_prod_api"]}:3000"), route);
        Assert.Equal(Outcomes.Succeeded, rig.History(1)!.Outcome);
        Assert.Equal([(Stack, 1L)], routes.Writes);
        Assert.DoesNotContain(rig.Engine.Calls, c => c.StartsWith("container_stop", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_first_revision_is_not_Ready_until_the_proxy_serves_its_routes_bounded_by_the_backstop()
    {
        using var rig = new RolloutMachineTests.Rig(proxy: true);
        var routes = rig.Routes!;
        routes.Applied = false;

        // The proxy has not read the routes yet (it is still starting): routed, but the ports would refuse connections.
        await rig.RollThroughAsync(steps: 8).ContinueWith(_ => { }, TaskScheduler.Default);
        Assert.Equal([(Stack, 1L)], routes.Writes);
        Assert.True(Conditions.RolloutInProgress(rig.Stored));
        Assert.NotEqual(Outcomes.Succeeded, rig.History(1)!.Outcome);
        Assert.Contains("waiting for the node proxy to apply the routes", rig.Waiting, StringComparison.Ordinal);

        routes.Applied = true;
        await rig.StepAsync();
        Assert.False(Conditions.RolloutInProgress(rig.Stored));
        Assert.Equal(Outcomes.Succeeded, rig.History(1)!.Outcome);

        // A proxy that never confirms (not running): the backstop completes the rollout.
        rig.Resource.Spec.App.Image = "acme/api:2";
        routes.Applied = false;
        await rig.RollThroughAsync(steps: 8).ContinueWith(_ => { }, TaskScheduler.Default);
        Assert.True(Conditions.RolloutInProgress(rig.Stored));
        rig.Clock.Advance(StackPlanner.ProxyApplyBackstop + TimeSpan.FromSeconds(31));
        await rig.StepAsync();
        Assert.False(Conditions.RolloutInProgress(rig.Stored));
        Assert.Equal(Outcomes.Succeeded, rig.History(2)!.Outcome);
    }

    [Fact]
    public async Task A_port_with_domains_and_no_hostPort_is_routed_by_domain_and_switches_start_first_like_a_host_port()
    {
        using var rig = new RolloutMachineTests.Rig(proxy: true, change: s =>
        {
            s.App.Ports![0].HostPort = null;
            s.App.Ports![0].HostIP = null;
            s.App.Ports![0].Domains = ["api.example.com", "www.example.com"];
            s.Rollout!.DrainSeconds = 5;
        });
        var routes = rig.Routes!;
        await rig.RollThroughAsync();

        var app1 = rig.Engine.Find(rig.App(1))!;
        Assert.Equal(SkiffLabels.RoutingProxy, app1.Label(SkiffLabels.Routing));
        var upstream1 = $"{app1.NetworkIps["skiff_prod_api"]}:3000";
        Assert.Equal(
            [new StackRoute("", "http", "http", 1, upstream1, "api.example.com", Tls: true), new StackRoute("", "http", "http", 1, upstream1, "www.example.com", Tls: true)],
            routes.Get(Stack).Routes);

        rig.Resource.Spec.App.Image = "acme/api:2";
        await rig.StepAsync(); // pull
        await rig.StepAsync(); // migration
        rig.Engine.Exit(rig.Migration(2), 0);
        await rig.StepAsync();
        Assert.Equal("running", rig.Engine.Find(rig.App(2))!.State);
        Assert.All(routes.Get(Stack).Routes, r => Assert.Equal(1, r.Revision));

        rig.Probe.Passing.Add(rig.App(2));
        await rig.StepAsync();
        Assert.All(routes.Get(Stack).Routes, r => Assert.Equal(2, r.Revision));
        Assert.Equal("running", rig.Engine.Find(rig.App(1))!.State);
        rig.Clock.Advance(TimeSpan.FromSeconds(6));
        await rig.StepAsync();
        Assert.Null(rig.Engine.Find(rig.App(1)));
        Assert.Equal("https://api.example.com", rig.Stored!.Endpoint);
    }

    [Fact]
    public async Task A_new_revision_starts_beside_the_old_one_takes_the_route_when_healthy_and_the_old_one_drains_then_goes()
    {
        using var rig = new RolloutMachineTests.Rig(proxy: true, change: s => s.Rollout!.DrainSeconds = 20);
        var routes = rig.Routes!;
        await rig.RollThroughAsync();
        rig.Resource.Spec.App.Image = "acme/api:2";

        await rig.StepAsync(); // pull
        await rig.StepAsync(); // migration
        rig.Engine.Exit(rig.Migration(2), 0);
        await rig.StepAsync();

        // Start-first: both run; the old one still has the route and Ready stays True.
        Assert.Equal("running", rig.Engine.Find(rig.App(1))!.State);
        Assert.Equal("running", rig.Engine.Find(rig.App(2))!.State);
        Assert.Equal(1, routes.Get(Stack).Routes.Single().Revision);
        Assert.Equal("True", rig.Condition(ConditionTypes.Ready)!.Status);
        await rig.StepAsync();
        Assert.Equal(1, routes.Get(Stack).Routes.Single().Revision);

        // Healthy: the route switches, the old revision drains (still running).
        rig.Probe.Passing.Add(rig.App(2));
        var r = await rig.StepAsync();
        Assert.Equal(2, routes.Get(Stack).Routes.Single().Revision);
        Assert.Contains("the old revision drains", rig.Waiting, StringComparison.Ordinal);
        Assert.Equal("running", rig.Engine.Find(rig.App(1))!.State);
        Assert.Equal(Outcomes.Progressing, rig.History(2)!.Outcome);
        Assert.Equal(TimeSpan.FromMilliseconds(250), r.RequeueAfter);

        // A failed probe during the drain does not undo a switch: the revision serves.
        rig.Probe.Passing.Remove(rig.App(2));
        rig.Clock.Advance(TimeSpan.FromSeconds(19));
        await rig.StepAsync();
        Assert.Equal("running", rig.Engine.Find(rig.App(1))!.State);
        Assert.Equal(2, routes.Get(Stack).Routes.Single().Revision);

        // After rollout.drainSeconds: the old revision is stopped and removed; the rollout succeeded.
        rig.Clock.Advance(TimeSpan.FromSeconds(2));
        await rig.StepAsync();
        Assert.Null(rig.Engine.Find(rig.App(1)));
        Assert.Equal(Outcomes.Succeeded, rig.History(2)!.Outcome);
        Assert.Equal(("True", 2L), (rig.Condition(ConditionTypes.Ready)!.Status, rig.Stored!.Revision));
        Assert.Equal([(Stack, 1L), (Stack, 2L)], routes.Writes);
    }

    [Fact]
    public async Task A_revision_that_never_passes_its_health_check_never_gets_the_route_and_the_old_one_is_never_stopped()
    {
        using var rig = new RolloutMachineTests.Rig(proxy: true);
        var routes = rig.Routes!;
        await rig.StartRevision2Async();
        rig.Clock.Advance(TimeSpan.FromSeconds(31));

        await rig.SettleAsync();

        Assert.Equal((Outcomes.RolledBack, "HealthCheckFailed"), (rig.History(2)!.Outcome, rig.History(2)!.Reason));
        Assert.Null(rig.Engine.Find(rig.App(2)));
        Assert.Equal("running", rig.Engine.Find(rig.App(1))!.State);
        Assert.DoesNotContain(rig.Engine.Calls, c => c == "container_stop " + rig.App(1));
        Assert.Equal([(Stack, 1L)], routes.Writes);
    }

    [Fact]
    public async Task The_old_revision_is_kept_until_the_proxy_serves_the_switch_bounded_by_a_backstop()
    {
        using var rig = new RolloutMachineTests.Rig(proxy: true, change: s => s.Rollout!.DrainSeconds = 5);
        var routes = rig.Routes!;
        await rig.StartRevision2Async();
        routes.Applied = false;
        rig.Probe.Passing.Add(rig.App(2));
        await rig.StepAsync();

        rig.Clock.Advance(TimeSpan.FromSeconds(6));
        await rig.StepAsync();
        Assert.Contains("waiting for the node proxy to apply the routes", rig.Waiting, StringComparison.Ordinal);
        Assert.Equal("running", rig.Engine.Find(rig.App(1))!.State);

        routes.Applied = true;
        await rig.StepAsync();
        Assert.Null(rig.Engine.Find(rig.App(1)));

        // With a proxy that never confirms, the backstop ends the drain.
        rig.Resource.Spec.App.Image = "acme/api:1";
        routes.Applied = false;
        await rig.RollThroughAsync(steps: 6).ContinueWith(_ => { }, TaskScheduler.Default);
        rig.Clock.Advance(StackPlanner.ProxyApplyBackstop + TimeSpan.FromSeconds(6));
        await rig.StepAsync();
        Assert.Equal([rig.App(3), RolloutMachineTests.Rig.Database], rig.Engine.All.Select(c => c.Name));
    }

    [Fact]
    public async Task An_operator_killed_during_the_drain_finishes_it_after_the_restart()
    {
        using var rig = new RolloutMachineTests.Rig(proxy: true, change: s => s.Rollout!.DrainSeconds = 10);
        var routes = rig.Routes!;
        await rig.StartRevision2Async();
        rig.Probe.Passing.Add(rig.App(2));
        await rig.StepAsync();

        rig.Restart();
        rig.Probe.Passing.Clear();
        await rig.StepAsync();
        Assert.Equal("running", rig.Engine.Find(rig.App(1))!.State);
        Assert.Equal(2, routes.Get(Stack).Routes.Single().Revision);

        rig.Clock.Advance(TimeSpan.FromSeconds(11));
        await rig.SettleAsync();
        Assert.Null(rig.Engine.Find(rig.App(1)));
        Assert.Equal(Outcomes.Succeeded, rig.History(2)!.Outcome);
        Assert.Equal([(Stack, 1L), (Stack, 2L)], routes.Writes);
    }

    [Fact]
    public async Task Lost_routes_are_written_again_for_the_live_revision_without_a_new_rollout()
    {
        using var rig = new RolloutMachineTests.Rig(proxy: true);
        var routes = rig.Routes!;
        await rig.RollThroughAsync();
        routes.Forget(Stack);

        await rig.StepAsync();

        Assert.Equal(1, routes.Get(Stack).Routes.Single().Revision);
        Assert.Single(rig.Stored!.History!);
    }

    [Fact]
    public async Task Turning_the_proxy_on_rolls_out_a_revision_that_publishes_nothing_beside_the_one_that_published_its_port()
    {
        using var rig = new RolloutMachineTests.Rig(change: s => s.Rollout!.DrainSeconds = 0);
        await rig.RollThroughAsync();
        Assert.Equal(SkiffLabels.RoutingDirect, rig.Engine.Find(rig.App(1))!.Label(SkiffLabels.Routing));

        var routes = rig.UseProxy();
        await rig.RollThroughAsync();

        Assert.Equal([rig.App(2), RolloutMachineTests.Rig.Database], rig.Engine.All.Select(c => c.Name));
        Assert.Equal(SkiffLabels.RoutingProxy, rig.Engine.Find(rig.App(2))!.Label(SkiffLabels.Routing));
        Assert.Equal(2, routes.Get(Stack).Routes.Single().Revision);
        Assert.Equal(rig.History(1)!.SpecHash, rig.History(2)!.SpecHash);
    }

    [Fact]
    public async Task Deleting_the_stack_removes_its_routes_before_its_containers()
    {
        using var rig = new RolloutMachineTests.Rig(proxy: true);
        var routes = rig.Routes!;
        await rig.RollThroughAsync();

        await rig.DeleteAsync();

        Assert.Equal(StackRoutes.None, routes.Get(Stack));
        Assert.Equal((Stack, -1L), routes.Writes[^1]);
        Assert.Empty(rig.Engine.All);
    }

    [Fact]
    public async Task A_spec_that_stops_publishing_its_port_removes_the_route()
    {
        using var rig = new RolloutMachineTests.Rig(proxy: true);
        var routes = rig.Routes!;
        await rig.RollThroughAsync();
        rig.Resource.Spec.App.Ports = [new PortSpec { Name = "http", ContainerPort = 3000 }];

        await rig.RollThroughAsync();

        Assert.Equal(StackRoutes.None, routes.Get(Stack));
        Assert.Equal(Outcomes.Succeeded, rig.History(2)!.Outcome);
    }
}
