using System.Net;
using System.Security.Cryptography;
using Docker.DotNet.Models;
using Skiff.Docker;
using Skiff.IntegrationTests.Infrastructure;
using Skiff.Reconcile;

namespace Skiff.IntegrationTests.DockerTarget;

/// <summary>
/// Stack networks on the real engine get their subnets from Skiff's pool: more than Docker's default pools hold (about
/// 31 networks), side by side from two clients, never overlapping each other or a network someone else made.
/// Every network carries this run's label and is removed at the end.
/// </summary>
public sealed class NetworkPoolTests : IAsyncLifetime
{
    /// <summary>The value of <see cref="DockerFixture.RunLabel"/> on this test's networks: scripts/test.sh removes them after an interrupted run too.</summary>
    private readonly string run = $"{TestRun.Id}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3))}";
    private readonly DockerEngine docker = new(Environment.GetEnvironmentVariable("DOCKER_HOST"));

    private Dictionary<string, string> Labels => new() { [DockerFixture.RunLabel] = run };

    private string Name(int i) => $"skiff-it-netpool-{run}-{i}";

    /// <summary>This run's networks, as the engine reports them.</summary>
    private async Task<IList<NetworkResponse>> NetworksAsync() =>
        await docker.Client.Networks.ListNetworksAsync(new NetworksListParameters
        {
            Filters = new Dictionary<string, IDictionary<string, bool>> { ["label"] = new Dictionary<string, bool> { [$"{DockerFixture.RunLabel}={run}"] = true } },
        });

    private static IPNetwork Subnet(NetworkResponse n) => IPNetwork.Parse(n.IPAM!.Config!.Single().Subnet!);

    [Fact]
    public async Task Forty_networks_from_two_clients_get_disjoint_subnets_of_the_pool_around_a_foreign_one()
    {
        var pool = NetworkPool.Create("10.231.0.0/20", 27, out var problem) ?? throw new InvalidOperationException(problem);
        // Someone else's network in the middle of the pool (a compose project, say): its subnets are skipped.
        await docker.Client.Networks.CreateNetworkAsync(new NetworksCreateParameters
        {
            Name = Name(999),
            Driver = "bridge",
            Labels = Labels,
            IPAM = new IPAM { Config = [new IPAMConfig { Subnet = "10.231.0.64/26" }] },
        });
        // Two operators' worth of clients, each serializing its own creations: they race each other on the engine.
        using var first = new DockerEngine(docker.Endpoint) { NetworkPool = pool };
        using var second = new DockerEngine(docker.Endpoint) { NetworkPool = pool };

        await Task.WhenAll(Enumerable.Range(0, 40).Select(i => (i % 2 == 0 ? first : second).CreateNetworkAsync(Name(i), Labels, CancellationToken.None)));
        // Again: a network that exists is what was wanted, and keeps its subnet.
        var before = (await NetworksAsync()).Single(n => n.Name == Name(0));
        await first.CreateNetworkAsync(Name(0), Labels, CancellationToken.None);

        var networks = (await NetworksAsync()).Where(n => n.Name != Name(999)).ToList();
        Assert.Equal(40, networks.Count);
        Assert.Equal(Subnet(before), Subnet(networks.Single(n => n.Name == Name(0))));
        var subnets = networks.Select(Subnet).ToList();
        var foreign = IPNetwork.Parse("10.231.0.64/26");
        foreach (var n in networks)
        {
            var subnet = Subnet(n);
            Assert.True(pool.Holds(subnet) && subnet.PrefixLength == 27, $"{n.Name}: {subnet} is not a /27 of {pool.Pool}");
            Assert.False(NetworkPool.Overlap(subnet, foreign), $"{n.Name}: {subnet} overlaps the foreign network {foreign}");
            Assert.Equal(subnet.ToString(), n.Labels![DockerEngine.SubnetLabel]);
            Assert.Equal(NetworkPool.Gateway(subnet).ToString(), n.IPAM!.Config!.Single().Gateway);
            Assert.Equal(1, subnets.Count(s => NetworkPool.Overlap(s, subnet)));
        }
    }

    [Fact]
    public async Task A_full_pool_refuses_the_next_network_saying_how_many_subnets_are_used_and_which_flags_to_change()
    {
        var pool = NetworkPool.Create("10.231.64.0/28", 29, out var problem) ?? throw new InvalidOperationException(problem);
        using var engine = new DockerEngine(docker.Endpoint) { NetworkPool = pool };
        var labels = new Dictionary<string, string>(Labels) { [SkiffLabels.ManagedBy] = SkiffLabels.ManagedByValue };
        await engine.CreateNetworkAsync(Name(1), labels, CancellationToken.None);
        await engine.CreateNetworkAsync(Name(2), labels, CancellationToken.None);

        var full = await Assert.ThrowsAsync<NetworkPoolExhaustedException>(() => engine.CreateNetworkAsync(Name(3), labels, CancellationToken.None));

        Assert.Equal(
            "no free subnet in the network pool: 2 of its 2 /29 subnets (--network-pool 10.231.64.0/28 --network-prefix 29) are in use, 2 by Skiff stack networks and " +
            "0 by other Docker networks or the host's routes; start skiff run with a larger --network-pool, " +
            "or remove stacks or Docker networks no longer used (Skiff tries again by itself)",
            full.Message);
        Assert.DoesNotContain(await NetworksAsync(), n => n.Name == Name(3));
        Assert.Equal(["10.231.64.0/29", "10.231.64.8/29"], (await NetworksAsync()).Select(n => Subnet(n).ToString()).Order());
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var n in await NetworksAsync())
        {
            await docker.Client.Networks.DeleteNetworkAsync(n.ID);
        }

        docker.Dispose();
    }
}
