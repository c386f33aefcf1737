using Docker.DotNet.Models;
using Skiff.Api;
using Skiff.Reconcile;
using Skiff.TestApiServer;

namespace Skiff.IntegrationTests.TwoHosts;

/// <summary>Node sharding (DESIGN §2): two VPSs, each with its engine and its operator, one API server.</summary>
[Collection(TwoHostsCollection.Name)]
public sealed class TwoHostsTests
{
    [Fact]
    public async Task Each_node_runs_its_stack_on_its_own_engine_and_only_its_instance_writes_the_resource()
    {
        await using var h = await TwoHostsHarness.StartAsync();
        h.StartVps1(lease: TwoHostsHarness.SteadyLease);
        h.StartVps2(lease: TwoHostsHarness.SteadyLease);
        await h.Kube.ApplyAsync(h.Kube.Api("api", node: "vps-1"));
        await h.Kube.ApplyAsync(TwoHostsHarness.Bot("bot", "vps-2"));

        var wait = await h.Kube.KubectlAsync("wait", "--for=condition=Ready", "appdeployment/api", "appdeployment/bot", "--timeout=90s");
        Assert.True(wait.ExitCode == 0, $"kubectl wait: {wait}\n{h.Logs()}");
        Assert.Equal(["app", "database"], await ComponentsAsync(h, h.Vps1Engine, "api"));
        Assert.Empty(await h.ContainersAsync(h.Vps1Engine, "bot"));
        Assert.Equal(["app", "cache"], await ComponentsAsync(h, h.Vps2Engine, "bot"));
        Assert.Empty(await h.ContainersAsync(h.Vps2Engine, "api"));
        Assert.All(await h.ContainersAsync(h.Vps2Engine), c => Assert.Equal("vps-2", c.Label(SkiffLabels.Node)));

        // The request log tells the hosts apart by address: vps-2's instance speaks from inside its namespace.
        // kubectl only created the two (POST), so every PATCH of a resource (finalizer, status) is an operator's.
        var log = h.Kube.Server.RequestLog;
        Assert.Equal([SecondEngineFixture.HostAddress], PatchSources(log, h.Namespace, "api", "status"));
        Assert.Equal([SecondEngineFixture.HostAddress], PatchSources(log, h.Namespace, "api", ""));
        Assert.Equal([SecondEngineFixture.Vps2Address], PatchSources(log, h.Namespace, "bot", "status"));
        Assert.Equal([SecondEngineFixture.Vps2Address], PatchSources(log, h.Namespace, "bot", ""));
        Assert.All(log.Where(r => r.Resource == "leases" && r.Name == "skiff-vps-2"), r => Assert.Equal(SecondEngineFixture.Vps2Address, r.RemoteAddress));
        Assert.All(log.Where(r => r.Resource == "leases" && r.Name == "skiff-vps-1"), r => Assert.Equal(SecondEngineFixture.HostAddress, r.RemoteAddress));
    }

    [Fact]
    public async Task A_stateless_stack_moved_to_the_other_node_ends_up_only_there()
    {
        await using var h = await TwoHostsHarness.StartAsync();
        h.StartVps1(lease: TwoHostsHarness.SteadyLease);
        h.StartVps2(lease: TwoHostsHarness.SteadyLease);
        await h.Kube.ApplyAsync(h.Kube.Stateless("web", "vps-1"));
        Assert.Equal(0, (await h.Kube.WaitReadyAsync("web", seconds: 60)).ExitCode);
        Assert.Single(await h.ContainersAsync(h.Vps1Engine, "web"));

        await h.Kube.ApplyAsync(h.Kube.Stateless("web", "vps-2"));
        await h.UntilAsync("web Ready on vps-2 and gone from vps-1", async () =>
        {
            var r = await h.Kube.GetAsync("web");
            return r?.Status?.ObservedGeneration == r?.Metadata.Generation && Conditions.IsTrue(r!.Status, ConditionTypes.Ready)
                && (await h.ContainersAsync(h.Vps2Engine, "web")).Count == 1
                && (await h.ContainersAsync(h.Vps1Engine, "web")).Count == 0;
        });
        Assert.Equal("app", (await h.ContainersAsync(h.Vps2Engine, "web")).Single().Component);
        Assert.Empty(await NetworksAsync(h, h.Vps1Engine, "web"));
    }

    [Fact]
    public async Task Moving_a_stack_with_a_database_is_refused_with_the_reason_and_it_keeps_running_where_its_data_is()
    {
        await using var h = await TwoHostsHarness.StartAsync();
        var vps1 = h.StartVps1(lease: TwoHostsHarness.SteadyLease);
        var vps2 = h.StartVps2(lease: TwoHostsHarness.SteadyLease);
        await h.Kube.ApplyAsync(h.Kube.Api("api", node: "vps-1"));
        Assert.Equal(0, (await h.Kube.WaitReadyAsync("api", seconds: 90)).ExitCode);
        var running = (await h.ContainersAsync(h.Vps1Engine, "api")).Select(c => c.Id).Order().ToArray();

        // The test API server skips CEL, so the update is stored: Skiff's twin of the transition rule must refuse it,
        // in the instance that holds the data (vps-1) and in the one it names (vps-2, which must not start it empty).
        await h.Kube.ApplyAsync(h.Kube.Api("api", node: "vps-2"));
        await h.UntilAsync("both instances refuse the move", () => Task.FromResult(
            vps1.Stderr.Contains("invalid spec", StringComparison.Ordinal) && vps2.Stderr.Contains("invalid spec", StringComparison.Ordinal)));
        var refused = (await h.Kube.GetAsync("api"))!;
        Assert.Equal(refused.Metadata.Generation, refused.Status!.ObservedGeneration);
        Assert.False(Conditions.IsTrue(refused.Status, ConditionTypes.Ready));
        var stalled = Conditions.Get(refused.Status, ConditionTypes.Stalled)!;
        Assert.Equal(("True", "InvalidSpec"), (stalled.Status, stalled.Reason));
        Assert.Contains("spec.node: is immutable while the stack has a database", stalled.Message);
        Assert.Contains("\"vps-1\"", stalled.Message);
        Assert.Equal(running, (await h.ContainersAsync(h.Vps1Engine, "api")).Select(c => c.Id).Order().ToArray());
        Assert.Empty(await h.ContainersAsync(h.Vps2Engine, "api"));
        Assert.Empty(await NetworksAsync(h, h.Vps2Engine, "api"));
        Assert.DoesNotContain((await h.Vps2Engine.Client.Volumes.ListAsync(CancellationToken.None)).Volumes ?? [], v => v.Name.StartsWith($"skiff_{h.Namespace}_", StringComparison.Ordinal));

        // Back on its node, the stack is Ready again as it was: nothing was redeployed.
        await h.Kube.ApplyAsync(h.Kube.Api("api", node: "vps-1"));
        await h.UntilAsync("api Ready again on vps-1", async () =>
        {
            var r = await h.Kube.GetAsync("api");
            return r?.Status?.ObservedGeneration == r?.Metadata.Generation && Conditions.IsTrue(r!.Status, ConditionTypes.Ready);
        });
        Assert.Equal(running, (await h.ContainersAsync(h.Vps1Engine, "api")).Select(c => c.Id).Order().ToArray());
        Assert.Equal(1, (await h.Kube.GetAsync("api"))!.Status!.Revision);
    }

    private static async Task<string[]> ComponentsAsync(TwoHostsHarness h, Docker.DockerEngine engine, string stack) =>
        (await h.ContainersAsync(engine, stack)).Select(c => c.Component!).Order().ToArray();

    private static async Task<IList<NetworkResponse>> NetworksAsync(TwoHostsHarness h, Docker.DockerEngine engine, string stack) =>
        (await engine.Client.Networks.ListNetworksAsync(new NetworksListParameters()))
            .Where(n => n.Name == $"skiff_{h.Namespace}_{stack}").ToList();

    /// <summary>The addresses that PATCHed a resource (or its <paramref name="subresource"/>); fails when none did.</summary>
    private static string[] PatchSources(IReadOnlyList<RequestRecord> log, string ns, string name, string subresource)
    {
        var patches = log.Where(r => r is { Method: "PATCH", Resource: "appdeployments" } && r.Namespace == ns && r.Name == name && r.Subresource == subresource).ToList();
        Assert.True(patches.Count > 0, $"no PATCH of appdeployments/{name}{(subresource.Length > 0 ? "/" + subresource : "")}");
        return patches.Select(r => r.RemoteAddress).Distinct().ToArray();
    }
}
