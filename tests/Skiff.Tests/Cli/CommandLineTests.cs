using Skiff.Cli;
using Skiff.Hosting;

namespace Skiff.Tests.Cli;

/// <summary>Usage errors, in process: exit 2 and a message in Skiff's words (the real process is in the integration tests).</summary>
public sealed class CommandLineTests
{
    private static async Task<(int Exit, string Stdout, string Stderr)> Skiff(params string[] args)
    {
        using var stdout = new StringWriter { NewLine = "\n" };
        using var stderr = new StringWriter { NewLine = "\n" };
        var exit = await SkiffCommandLine.InvokeAsync(SkiffCommandLine.Build().Parse(args), stdout, stderr);
        return (exit, stdout.ToString(), stderr.ToString());
    }

    [Theory]
    [InlineData(new[] { "nosuch" }, "skiff: unknown command \"nosuch\"; the commands are run, plan, status, validate, gc, crds, version, proxy, backup, backups, restore, logs, exec, run-once, wait, rollback, restart, completion")]
    [InlineData(new[] { "stauts" }, "skiff: unknown command \"stauts\"; did you mean \"status\"?")]
    [InlineData(new string[0], "skiff: a command is required: run, plan, status, validate, gc, crds, version, proxy, backup, backups, restore, logs, exec, run-once, wait, rollback, restart, completion")]
    [InlineData(new[] { "status", "--no-such-flag" }, "skiff status: unknown option --no-such-flag")]
    [InlineData(new[] { "status", "--stat-dir", "/tmp" }, "skiff status: unknown option --stat-dir; did you mean \"--state-dir\"?")]
    [InlineData(new[] { "plan", "--node", "a" }, "skiff plan: --path is required")]
    [InlineData(new[] { "validate" }, "skiff validate: PATH is required")]
    [InlineData(new[] { "status", "-o", "xml" }, "skiff status: --output xml: unknown value; use table, json, yaml or wide")]
    [InlineData(new[] { "gc", "-o", "wide" }, "skiff gc: --output wide: unknown value; use table, json or yaml")]
    [InlineData(new[] { "status", "--log-format", "xml" }, "skiff status: --log-format xml: unknown value; use auto, console or json")]
    [InlineData(new[] { "run", "--path", "/tmp", "--leader-election-retry-period", "soon" }, "skiff run: --leader-election-retry-period soon: want a whole number of seconds, at least 1")]
    [InlineData(new[] { "run", "--path", "/tmp", "--proxy-http-port", "http" }, "skiff run: --proxy-http-port http: want a port number from 1 to 65535")]
    [InlineData(new[] { "run", "--path", "/tmp", "--proxy-https-port", "70000" }, "skiff run: --proxy-https-port 70000: want a port number from 1 to 65535")]
    [InlineData(new[] { "gc", "--docker-host", "bogus" }, "skiff gc: --docker-host bogus: not a Docker engine URI; use unix:///var/run/docker.sock (a local socket), tcp://HOST:PORT or http(s)://HOST:PORT")]
    [InlineData(new[] { "validate", "x.yaml", "--metrics-bind-address", "8080" }, "skiff validate: --metrics-bind-address 8080: bind address \"8080\": want [host]:port, or \"0\" to disable")]
    public async Task A_usage_error_exits_2_with_one_line_naming_the_problem_and_how_to_get_help(string[] args, string expected)
    {
        var (exit, stdout, stderr) = await Skiff(args);

        Assert.Equal(ExitCodes.UsageOrIo, exit);
        Assert.Equal("", stdout);
        var lines = stderr.TrimEnd('\n').Split('\n');
        Assert.Equal(expected, lines[0]);
        Assert.StartsWith("See 'skiff", lines[^1], StringComparison.Ordinal);
        Assert.DoesNotContain("System.", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Skiff.Cli", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Help_is_not_an_error()
    {
        var (exit, stdout, _) = await Skiff("status", "--help");
        Assert.Equal(ExitCodes.Ok, exit);
        Assert.Contains("table|json|yaml|wide", stdout, StringComparison.Ordinal);
    }
}
