using Skiff.Proxy;

namespace Skiff.Tests.Proxy;

public class RouteDiffTests
{
    private static readonly ProxyListener Api = new("127.0.0.1:3000", ProxyProtocol.Http, "prod/api", "http", 4, "172.18.0.5:3000");
    private static readonly ProxyListener Bot = new("0.0.0.0:6000", ProxyProtocol.Tcp, "prod/bot", "game", 2, "172.19.0.3:6000");
    private static readonly ProxyListener Web = new("[::]:80", ProxyProtocol.Http, "prod/web", "http", 1, "172.20.0.2:8080");

    [Fact]
    public void Same_routes_change_nothing()
    {
        var diff = RouteDiff.Compute([Api, Bot], [Bot, Api]);

        Assert.True(diff.IsEmpty);
    }

    [Fact]
    public void New_addresses_start_and_missing_ones_stop()
    {
        var diff = RouteDiff.Compute([Api, Bot], [Api, Web]);

        Assert.Equal([Web], diff.Start);
        Assert.Equal([Bot], diff.Stop);
        Assert.Empty(diff.Switches);
        Assert.Empty(diff.Updates);
    }

    [Fact]
    public void A_new_upstream_is_a_switch_that_keeps_the_socket()
    {
        var next = Api with { Upstream = "172.18.0.6:3000", Revision = 5 };

        var diff = RouteDiff.Compute([Api, Bot], [next, Bot]);

        Assert.Equal([new RouteSwitch(Api, next)], diff.Switches);
        Assert.Empty(diff.Start);
        Assert.Empty(diff.Stop);
        Assert.Empty(diff.Updates);
    }

    [Fact]
    public void A_rollback_is_a_switch_back()
    {
        var next = Api with { Upstream = "172.18.0.6:3000", Revision = 5 };

        var forward = RouteDiff.Compute([Api], [next]);
        var back = RouteDiff.Compute([next], [Api]);

        Assert.Equal([new RouteSwitch(Api, next)], forward.Switches);
        Assert.Equal([new RouteSwitch(next, Api)], back.Switches);
    }

    [Fact]
    public void Metadata_alone_is_an_update_not_a_switch()
    {
        var relabelled = Bot with { Revision = 3, Stack = "prod/bot2" };

        var diff = RouteDiff.Compute([Bot], [relabelled]);

        Assert.Equal([new RouteSwitch(Bot, relabelled)], diff.Updates);
        Assert.Empty(diff.Switches);
        Assert.False(diff.IsEmpty);
    }

    [Fact]
    public void A_new_protocol_on_an_address_stops_and_starts_it()
    {
        var tcp = Api with { Protocol = ProxyProtocol.Tcp };

        var diff = RouteDiff.Compute([Api], [tcp]);

        Assert.Equal([Api], diff.Stop);
        Assert.Equal([tcp], diff.Start);
        Assert.Empty(diff.Switches);
    }

    [Fact]
    public void Empty_routes_stop_everything_and_from_nothing_start_everything()
    {
        Assert.Equal([Api, Bot], RouteDiff.Compute([Api, Bot], []).Stop);
        Assert.Equal([Api, Bot], RouteDiff.Compute([], [Api, Bot]).Start);
    }
}
