using Skiff.Hosting;
using Skiff.Cli;

namespace Skiff.Tests.Proxy;

public class ProxyCommandTests
{
    [Fact]
    public void Proxy_takes_its_defaults_from_the_contract()
    {
        var parse = SkiffCommandLine.Build().Parse(["proxy", "--routes", "/var/lib/skiff/proxy/routes.json"]);

        Assert.Empty(parse.Errors);
        Assert.Equal(":9090", parse.GetValue(ProxyCommand.MetricsBindAddress));
        Assert.Equal(30, parse.GetValue(ProxyCommand.DrainSeconds));
    }

    [Theory]
    [InlineData(new[] { "proxy" }, "--routes is required")]
    [InlineData(new[] { "proxy", "--routes", "r.json", "--drain-seconds", "-1" }, "--drain-seconds -1: want a whole number of seconds, 0 or more")]
    [InlineData(new[] { "proxy", "--routes", "r.json", "--metrics-bind-address", "9090" }, "--metrics-bind-address 9090: bind address \"9090\": want [host]:port")]
    [InlineData(new[] { "proxy", "--routes", "r.json", "--drain-seconds", "soon" }, "--drain-seconds soon: want a whole number of seconds, 0 or more")]
    public async Task Bad_usage_is_exit_2_with_the_flag_named(string[] args, string message)
    {
        using var stderr = new StringWriter();

        var exit = await SkiffCommandLine.InvokeAsync(SkiffCommandLine.Build().Parse(args), TextWriter.Null, stderr);

        Assert.Equal(ExitCodes.UsageOrIo, exit);
        Assert.Contains(message, stderr.ToString(), StringComparison.Ordinal);
    }
}
