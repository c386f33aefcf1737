using Skiff.Cli;
using Skiff.Hosting;

namespace Skiff.Tests.Cli;

/// <summary><c>skiff run --network-pool --network-prefix</c>: the defaults, and usage errors in Skiff's words.</summary>
public sealed class RunNetworkFlagsTests
{
    [Fact]
    public void The_network_pool_defaults_to_10_200_0_0_16_in_27s()
    {
        var parse = SkiffCommandLine.Build().Parse(["run", "--path", "x", "--node", "n"]);

        Assert.Empty(parse.Errors);
        Assert.Equal("10.200.0.0/16", parse.GetValue(RunCommand.NetworkPoolOption));
        Assert.Equal(27, parse.GetValue(RunCommand.NetworkPrefix));
    }

    [Fact]
    public void A_pool_and_a_prefix_within_it_are_accepted()
    {
        var parse = SkiffCommandLine.Build().Parse(["run", "--path", "x", "--node", "n", "--network-pool", "172.30.0.0/20", "--network-prefix", "28"]);

        Assert.Empty(parse.Errors);
        Assert.Equal(("172.30.0.0/20", 28), (parse.GetValue(RunCommand.NetworkPoolOption), parse.GetValue(RunCommand.NetworkPrefix)));
    }

    [Theory]
    [InlineData(new[] { "--network-pool", "10.200.0.0" }, "--network-pool: \"10.200.0.0\" is not an IPv4 network in CIDR notation; use one such as 10.200.0.0/16")]
    [InlineData(new[] { "--network-pool", "10.200.7.0/16" }, "--network-pool: 10.200.7.0/16 has bits set after its /16 prefix; use 10.200.0.0/16")]
    [InlineData(new[] { "--network-pool", "10.9.0.0/28" }, "--network-prefix: 27 is not between the pool's prefix (28, --network-pool 10.9.0.0/28) and 29; each stack network is a /27 by default")]
    [InlineData(new[] { "--network-prefix", "8" }, "--network-prefix: 8 is not between the pool's prefix (16, --network-pool 10.200.0.0/16) and 29; each stack network is a /27 by default")]
    [InlineData(new[] { "--network-prefix", "small" }, "skiff run: --network-prefix small: want a prefix length such as 27 (from the --network-pool's own to 29)")]
    public async Task A_bad_pool_or_prefix_exits_2_naming_the_flag_and_the_fix(string[] flags, string expected)
    {
        using var stdout = new StringWriter { NewLine = "\n" };
        using var stderr = new StringWriter { NewLine = "\n" };

        var exit = await SkiffCommandLine.InvokeAsync(SkiffCommandLine.Build().Parse(["run", "--path", "/tmp", "--node", "n", .. flags]), stdout, stderr);

        Assert.Equal(ExitCodes.UsageOrIo, exit);
        Assert.Equal(expected, stderr.ToString().Split('\n')[0]);
    }
}
