using System.Net;
using CsCheck;
using Skiff.Docker;

namespace Skiff.Tests.Docker;

/// <summary>The subnets of stack networks: which one a new stack gets, what the flags accept, what the host uses.</summary>
public sealed class NetworkPoolTests
{
    private static IPNetwork Net(string cidr) => IPNetwork.Parse(cidr);

    private static NetworkPool Pool(string cidr, int prefix) => NetworkPool.Create(cidr, prefix, out var problem) ?? throw new InvalidOperationException(problem);

    [Theory]
    [InlineData(new string[0], "10.200.0.0/27")]
    // Docker's own default networks are far away.
    [InlineData(new[] { "172.17.0.0/16", "172.19.0.0/16", "192.168.144.0/20" }, "10.200.0.0/27")]
    [InlineData(new[] { "10.200.0.0/27" }, "10.200.0.32/27")]
    [InlineData(new[] { "10.200.0.0/27", "10.200.0.64/27" }, "10.200.0.32/27")]
    // Another network of any size, aligned or not to ours: the next subnet after it.
    [InlineData(new[] { "10.200.0.0/24" }, "10.200.1.0/27")]
    [InlineData(new[] { "10.200.0.40/29" }, "10.200.0.0/27")]
    [InlineData(new[] { "10.200.0.0/27", "10.200.0.40/29" }, "10.200.0.64/27")]
    [InlineData(new[] { "10.200.0.5/32" }, "10.200.0.32/27")]
    // A host route that covers the pool's start (a VPN's 10.200.0.0/17): the upper half.
    [InlineData(new[] { "10.200.0.0/17" }, "10.200.128.0/27")]
    // IPv6 networks never collide with the IPv4 pool.
    [InlineData(new[] { "fd00::/8" }, "10.200.0.0/27")]
    public void The_first_subnet_that_overlaps_nothing_taken_is_chosen(string[] taken, string expected)
    {
        Assert.Equal(Net(expected), NetworkPool.Default.FirstFree(taken.Select(Net)));
    }

    [Theory]
    [InlineData("10.0.0.0/8")]
    [InlineData("10.200.0.0/16")]
    [InlineData("10.200.0.0/17,10.200.128.0/17")]
    public void A_pool_covered_by_what_is_taken_has_no_free_subnet_and_counts_all_taken(string networks)
    {
        var taken = networks.Split(',');
        Assert.Null(NetworkPool.Default.FirstFree(taken.Select(Net)));
        Assert.Equal(2048, NetworkPool.Default.CountTaken(taken.Select(Net)));
    }

    [Fact]
    public void The_default_pool_holds_2048_subnets_of_27_and_a_28_in_29s_holds_two()
    {
        Assert.Equal((Net("10.200.0.0/16"), 27, 2048L), (NetworkPool.Default.Pool, NetworkPool.Default.Prefix, NetworkPool.Default.Count));
        var tiny = Pool("10.99.0.0/28", 29);
        Assert.Equal(Net("10.99.0.0/29"), tiny.FirstFree([]));
        Assert.Equal(Net("10.99.0.8/29"), tiny.FirstFree([Net("10.99.0.0/29")]));
        Assert.Null(tiny.FirstFree([Net("10.99.0.0/29"), Net("10.99.0.8/29")]));
        Assert.Equal(2L, tiny.Count);
    }

    [Fact]
    public void Counting_taken_subnets_counts_each_subnet_once_whatever_overlaps_it()
    {
        // Two small networks in one /27, one /24 (8 subnets) overlapping another /27, and one outside the pool.
        IPNetwork[] taken = [Net("10.200.0.0/29"), Net("10.200.0.8/29"), Net("10.200.1.0/24"), Net("10.200.1.0/27"), Net("192.168.0.0/16")];

        Assert.Equal(9, NetworkPool.Default.CountTaken(taken));
    }

    [Theory]
    [InlineData("10.200.0.1/16", "10.200.0.0/16")]
    [InlineData("172.20.0.0/16", "172.20.0.0/16")]
    [InlineData("192.168.1.77/24", "192.168.1.0/24")]
    public void Networks_as_Docker_or_the_host_report_them_lose_their_host_bits(string reported, string network)
    {
        Assert.True(NetworkPool.TryParseNetwork(reported, out var parsed));
        Assert.Equal(Net(network), parsed);
    }

    [Theory]
    [InlineData("")]
    [InlineData("10.200.0.0")]
    [InlineData("10.200.0.0/33")]
    [InlineData("not/16")]
    public void What_is_not_a_network_is_not_taken_for_one(string text)
    {
        Assert.False(NetworkPool.TryParseNetwork(text, out _));
    }

    [Theory]
    [InlineData("10.200.0.0/16", 27, null)]
    [InlineData("10.200.0.0/16", 16, null)]
    [InlineData("10.200.0.0/16", 29, null)]
    [InlineData("10.99.0.0/28", 29, null)]
    [InlineData("10.200.0.1/16", 27, "--network-pool: 10.200.0.1/16 has bits set after its /16 prefix; use 10.200.0.0/16")]
    [InlineData("10.200.0.0", 27, "--network-pool: \"10.200.0.0\" is not an IPv4 network in CIDR notation; use one such as 10.200.0.0/16")]
    [InlineData("fd00::/48", 64, "--network-pool: \"fd00::/48\" is not an IPv4 network in CIDR notation; use one such as 10.200.0.0/16")]
    [InlineData("10.9.0.0/30", 30, "--network-pool: 10.9.0.0/30 is too small for a stack network; use a /29 or larger (a shorter prefix), such as 10.200.0.0/16")]
    [InlineData("10.200.0.0/16", 12, "--network-prefix: 12 is not between the pool's prefix (16, --network-pool 10.200.0.0/16) and 29; each stack network is a /27 by default")]
    [InlineData("10.200.0.0/16", 30, "--network-prefix: 30 is not between the pool's prefix (16, --network-pool 10.200.0.0/16) and 29; each stack network is a /27 by default")]
    public void The_flags_take_an_IPv4_pool_and_a_prefix_between_its_own_and_29(string pool, int prefix, string? problem)
    {
        var created = NetworkPool.Create(pool, prefix, out var said);

        Assert.Equal(problem, said);
        Assert.Equal(problem is null, created is not null);
    }

    [Fact]
    public void The_gateway_is_the_first_host_of_the_subnet()
    {
        Assert.Equal(IPAddress.Parse("10.200.0.33"), NetworkPool.Gateway(Net("10.200.0.32/27")));
    }

    [Fact]
    public void Host_routes_are_read_from_proc_net_route_without_the_default_route()
    {
        // /proc/net/route of a host with Docker: the default route, eth0's network, docker0 and a bridge network.
        const string table = """
            Iface	Destination	Gateway 	Flags	RefCnt	Use	Metric	Mask		MTU	Window	IRTT
            eth0	00000000	010200C0	0003	0	0	0	00000000	0	0	0
            docker0	000011AC	00000000	0001	0	0	0	0000FFFF	0	0	0
            br-ce1fc98c0e6a	000013AC	00000000	0001	0	0	0	0000FFFF	0	0	0
            eth0	000200C0	00000000	0001	0	0	0	00FFFFFF	0	0	0
            tun0	0000C80A	00000000	0001	0	0	0	0080FFFF	0	0	0
            """;

        var routes = HostNetworks.ParseRoutes(table).ToList();

        Assert.Equal([Net("172.17.0.0/16"), Net("172.19.0.0/16"), Net("192.0.2.0/24"), Net("10.200.0.0/17")], routes);
        Assert.Equal(Net("10.200.128.0/27"), NetworkPool.Default.FirstFree(routes));
    }

    [Fact]
    public void This_hosts_own_networks_include_its_interfaces()
    {
        var networks = HostNetworks.Read();

        Assert.Contains(networks, n => n.Contains(IPAddress.Loopback));
    }

    /// <summary>A pool, a prefix within it, and networks in and around it (any size, any alignment).</summary>
    private static readonly Gen<(NetworkPool Pool, IPNetwork[] Taken)> GenCase =
        Gen.Select(Gen.Int[0, 255], Gen.Int[16, 29], Gen.Int[0, 10]).SelectMany(t =>
        {
            var (second, poolBits, extra) = t;
            var start = (uint)(10 << 24 | second << 16);
            var pool = new NetworkPool(new IPNetwork(ToAddress(start), poolBits), Math.Min(29, poolBits + extra));
            var span = 1L << (32 - poolBits);
            var genTaken = Gen.Select(Gen.Long[-span, 2 * span], Gen.Int[Math.Max(8, poolBits - 2), 32], (offset, bits) =>
                NetworkPool.TryParseNetwork($"{ToAddress((uint)(start + offset))}/{bits}", out var n) ? n : throw new InvalidOperationException());
            return genTaken.Array[0, 12].Select(taken => (pool, taken));
        });

    private static IPAddress ToAddress(uint n) => new([(byte)(n >> 24), (byte)(n >> 16), (byte)(n >> 8), (byte)n]);

    /// <summary>Every subnet of the pool, in order: the oracle (pools of at most 2^13 subnets here).</summary>
    private static IEnumerable<IPNetwork> All(NetworkPool pool)
    {
        var bytes = pool.Pool.BaseAddress.GetAddressBytes();
        var start = (uint)(bytes[0] << 24 | bytes[1] << 16 | bytes[2] << 8 | bytes[3]);
        for (long i = 0; i < pool.Count; i++)
        {
            yield return new IPNetwork(ToAddress((uint)(start + (i << (32 - pool.Prefix)))), pool.Prefix);
        }
    }

    [Fact]
    public void The_chosen_subnet_is_in_the_pool_aligned_overlaps_nothing_taken_and_is_the_first_such()
    {
        GenCase.Sample(c =>
        {
            var chosen = c.Pool.FirstFree(c.Taken);
            var oracle = All(c.Pool).Where(s => !c.Taken.Any(t => NetworkPool.Overlap(s, t))).Cast<IPNetwork?>().FirstOrDefault();
            Assert.Equal(oracle, chosen);
            if (chosen is { } subnet)
            {
                Assert.True(c.Pool.Holds(subnet));
                Assert.Equal(c.Pool.Prefix, subnet.PrefixLength);
                Assert.DoesNotContain(c.Taken, t => NetworkPool.Overlap(subnet, t));
            }
        }, iter: 500);
    }

    [Fact]
    public void The_count_of_taken_subnets_is_the_number_that_overlap_something_taken()
    {
        GenCase.Sample(c =>
        {
            var oracle = All(c.Pool).LongCount(s => c.Taken.Any(t => NetworkPool.Overlap(s, t)));
            Assert.Equal(oracle, c.Pool.CountTaken(c.Taken));
            Assert.Equal(oracle == c.Pool.Count, c.Pool.FirstFree(c.Taken) is null);
        }, iter: 500);
    }
}
