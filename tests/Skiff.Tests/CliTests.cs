using System.CommandLine;
using Skiff.Cli;

namespace Skiff.Tests;

public class CliTests
{
    [Theory]
    [InlineData("run")]
    [InlineData("plan")]
    [InlineData("status")]
    [InlineData("validate")]
    [InlineData("gc")]
    [InlineData("crds")]
    [InlineData("version")]
    public void Root_lists_every_command_of_the_design(string name)
    {
        var root = SkiffCommandLine.Build();
        Assert.Contains(root.Subcommands, c => c.Name == name);
    }

    [Theory]
    [InlineData("run", "--source", "--path", "--kubeconfig", "--context", "--node", "--docker-host", "--state-dir", "--once", "--metrics-bind-address", "--health-probe-bind-address", "--leader-elect", "--leader-election-namespace")]
    [InlineData("plan", "--path", "--node")]
    [InlineData("status", "--state-dir", "--output")]
    [InlineData("gc", "--node", "--docker-host", "--state-dir", "--policy", "--dry-run", "--output")]
    [InlineData("crds", "--output")]
    [InlineData("status", "--namespace", "-n")]
    [InlineData("validate", "--metrics-bind-address", "--health-probe-bind-address", "--source")]
    [InlineData("version", "--output", "-o")]
    public void Command_has_the_documented_options(string name, params string[] options)
    {
        var command = SkiffCommandLine.Build().Subcommands.Single(c => c.Name == name);
        foreach (var option in options)
        {
            Assert.Contains(command.Options, o => o.Name == option || o.Aliases.Contains(option));
        }
    }

    [Fact]
    public void Unknown_option_is_a_usage_error()
    {
        var parse = SkiffCommandLine.Build().Parse(["status", "--no-such-flag"]);
        Assert.NotEmpty(parse.Errors);
    }
}
