using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Skiff.Api;
using Skiff.IntegrationTests.FolderSource;
using Skiff.IntegrationTests.KubernetesSource;
using Skiff.Reconcile;
using Skiff.State;
using Skiff.IntegrationTests.Infrastructure;

namespace Skiff.IntegrationTests.Cli;

/// <summary>
/// The CLI's contract through the real <c>skiff</c> process: exit codes (DESIGN §5), messages without .NET
/// exception texts, and the first-week traps of issue 14.
/// </summary>
public sealed class CliProcessTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(3);
    private readonly string dir = Path.Combine(Path.GetTempPath(), "skiff-cli-" + Guid.NewGuid().ToString("N")[..8]);

    public CliProcessTests()
    {
        Directory.CreateDirectory(dir);
    }

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private string Write(string name, string text)
    {
        var path = Path.Combine(dir, name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, text);
        return path;
    }

    /// <summary>Nothing a user reads may be a .NET exception's text or stack trace.</summary>
    private static void AssertNoDotNetText(string text)
    {
        Assert.DoesNotContain("   at ", text, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", text, StringComparison.Ordinal);
        Assert.DoesNotContain("System.", text, StringComparison.Ordinal);
        Assert.DoesNotContain("Skiff.Cli.", text, StringComparison.Ordinal);
        Assert.DoesNotContain("Operation is not valid", text, StringComparison.Ordinal);
        Assert.DoesNotContain("Idx:", text, StringComparison.Ordinal);
    }

    private static string App(string name, string node, string body = "") => $"""
        apiVersion: skiff.dev/v1alpha1
        kind: AppDeployment
        metadata: {"{"} name: {name}, namespace: cli {"}"}
        spec:
          node: {node}
          app:
            image: skiff-test/app:1
            imagePullPolicy: Never
        {body}
        """;

    [Theory]
    [InlineData("unknown command", "nosuch")]
    [InlineData("unknown option --bogus", "status", "--bogus")]
    [InlineData("--path is required", "plan", "--node", "local")]
    [InlineData("PATH is required", "validate")]
    [InlineData("--output wide: unknown value; use table, json or yaml", "gc", "-o", "wide")]
    [InlineData("--output xml: unknown value; use table, json, yaml or wide", "status", "-o", "xml")]
    [InlineData("--docker-host bogus: not a Docker engine URI; use unix:///var/run/docker.sock (a local socket), tcp://HOST:PORT or http(s)://HOST:PORT", "gc", "--docker-host", "bogus")]
    [InlineData("--docker-host ssh://deploy@vps-1: ssh:// is not supported: use a local socket, or forward one with `ssh -L /tmp/docker.sock:/var/run/docker.sock host` and pass unix:///tmp/docker.sock", "gc", "--docker-host", "ssh://deploy@vps-1")]
    [InlineData("--docker-host bogus: not a Docker engine URI", "plan", "--path", "/tmp", "--node", "local", "--docker-host", "bogus")]
    [InlineData("--docker-host ssh://vps-1: ssh:// is not supported", "run", "--path", "/tmp", "--node", "local", "--docker-host", "ssh://vps-1")]
    [InlineData("--leader-election-lease-duration 15s: want a whole number of seconds, at least 1", "run", "--source", "kubernetes", "--node", "local", "--leader-election-lease-duration", "15s")]
    public async Task A_usage_error_exits_2_with_a_clear_message_and_no_trace(string expected, params string[] args)
    {
        var (exit, stdout, stderr) = await SkiffProcess.RunAsync(Timeout, args);

        Assert.Equal(2, exit);
        Assert.Equal("", stdout);
        Assert.Contains(expected, stderr, StringComparison.Ordinal);
        Assert.Contains("--help' for usage.", stderr, StringComparison.Ordinal);
        AssertNoDotNetText(stderr);
    }

    [Fact]
    public async Task A_bad_DOCKER_HOST_is_a_usage_error_naming_the_variable()
    {
        await using var p = SkiffProcess.StartWith(new Dictionary<string, string> { ["DOCKER_HOST"] = "ssh://deploy@vps-1" }, "gc", "--dry-run", "--state-dir", dir);

        Assert.Equal(2, await p.WaitAsync(Timeout));
        Assert.Contains("DOCKER_HOST=ssh://deploy@vps-1 (the default of --docker-host): ssh:// is not supported", p.Stderr, StringComparison.Ordinal);
        AssertNoDotNetText(p.Stderr);
    }

    [Fact]
    public async Task A_yaml_syntax_error_is_one_clear_message_in_validate_plan_gc_policy_and_run()
    {
        // YamlDotNet throws "Operation is not valid due to the current state of the object" on this one.
        var broken = Write("resources/broken.yaml", "apiVersion: skiff.dev/v1alpha1\nkind: ImageGCPolicy\nmetadata: { name: p }\nspec:\n  keep: [\"postgres:*\"\n  interval: 10m\n");
        const string Expected = "broken.yaml:1: line 6, column 3: the [ opened at line 5, column 9 is not closed with ]";

        var validate = await SkiffProcess.RunAsync(Timeout, "validate", broken);
        Assert.Equal(1, validate.Exit);
        Assert.Equal($"{broken}:1: line 6, column 3: the [ opened at line 5, column 9 is not closed with ]", validate.Stdout.Trim());
        AssertNoDotNetText(validate.Stdout + validate.Stderr);

        // An invalid --policy document is invalid input: 1, not a usage error.
        var gc = await SkiffProcess.RunAsync(Timeout, "gc", "--dry-run", "--node", "local", "--state-dir", Path.Combine(dir, "state"), "--policy", broken);
        Assert.Equal(1, gc.Exit);
        Assert.Contains(Expected, gc.Stderr, StringComparison.Ordinal);
        AssertNoDotNetText(gc.Stderr);

        var resources = Path.Combine(dir, "resources");
        var plan = await SkiffProcess.RunAsync(Timeout, "plan", "--path", resources, "--node", "local", "--state-dir", Path.Combine(dir, "state"));
        Assert.Equal(1, plan.Exit);
        Assert.Contains(Expected, plan.Stdout, StringComparison.Ordinal);
        AssertNoDotNetText(plan.Stdout + plan.Stderr);

        var run = await SkiffProcess.RunAsync(Timeout, "run", "--path", resources, "--node", "local", "--once", "--state-dir", Path.Combine(dir, "state"),
            "--metrics-bind-address", "0", "--health-probe-bind-address", "0");
        Assert.Equal(1, run.Exit);
        Assert.Contains(Expected, run.Stdout, StringComparison.Ordinal);
        AssertNoDotNetText(run.Stdout + run.Stderr);
    }

    [Fact]
    public async Task An_invalid_gc_policy_document_exits_1_and_an_unreadable_one_2()
    {
        var invalid = Write("policy.yaml", "apiVersion: skiff.dev/v1alpha1\nkind: ImageGCPolicy\nmetadata: { name: p }\nspec:\n  highThresholdPercent: 150\n");
        var gc = await SkiffProcess.RunAsync(Timeout, "gc", "--dry-run", "--node", "local", "--state-dir", Path.Combine(dir, "state"), "--policy", invalid);
        Assert.Equal(1, gc.Exit);
        Assert.Contains("spec.highThresholdPercent", gc.Stderr, StringComparison.Ordinal);

        var missing = await SkiffProcess.RunAsync(Timeout, "gc", "--dry-run", "--node", "local", "--state-dir", Path.Combine(dir, "state"), "--policy", Path.Combine(dir, "nope.yaml"));
        Assert.Equal(2, missing.Exit);
    }

    [Fact]
    public async Task Validate_of_a_path_that_does_not_exist_says_so_exits_2_and_claims_no_success()
    {
        var missing = Path.Combine(dir, "no-such-folder");
        var (exit, stdout, stderr) = await SkiffProcess.RunAsync(Timeout, "validate", missing);

        Assert.Equal(2, exit);
        Assert.Equal("", stdout);
        Assert.Contains($"skiff validate: cannot read {missing}: no such file or folder", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("no problems", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Validate_reports_what_is_wrong_across_the_documents_of_a_folder()
    {
        Write("api.yaml", App("api", "vps-1", "    ports:\n      - { containerPort: 8080, hostPort: 3000 }\n"));
        Write("web.yaml", App("web", "vps-1", "    ports:\n      - { containerPort: 8080, hostPort: 3000, hostIP: 127.0.0.1 }\n      - { containerPort: 9000, hostPort: 8081 }\n"));
        Write("bot.yaml", App("bot", "vps-2", "    env:\n      - name: TOKEN\n        valueFrom:\n          secretKeyRef: { name: bot-secrets, key: token }\n    ports:\n      - { containerPort: 8080, hostPort: 3000 }\n"));

        var (exit, stdout, stderr) = await SkiffProcess.RunAsync(Timeout, "validate", dir);

        Assert.Equal(1, exit);
        var lines = stdout.Replace(dir + "/", "", StringComparison.Ordinal).TrimEnd('\n').Split('\n');
        Assert.Equal(3, lines.Length);
        Assert.StartsWith("bot.yaml:1: spec.app.env[0].valueFrom.secretKeyRef.name: Secret cli/bot-secrets is not defined in the files given; the directory source reads Secrets only from its folder", lines[0], StringComparison.Ordinal);
        Assert.StartsWith("web.yaml:1: spec.app.ports[0].hostPort: 127.0.0.1:3000 collides with 0.0.0.0:3000 of cli/api (", lines[1], StringComparison.Ordinal);
        Assert.StartsWith("web.yaml:1: spec.app.ports[1].hostPort: 8081 is the port of the operator's own /healthz and /readyz on the node (skiff run --health-probe-bind-address, default :8081)", lines[2], StringComparison.Ordinal);
        Assert.Contains("3 problem(s) in 2 document(s)", stderr, StringComparison.Ordinal);

        // The operator's probe moved (as given to skiff run), and Secrets from the cluster: only the collision is left.
        var moved = await SkiffProcess.RunAsync(Timeout, "validate", dir, "--health-probe-bind-address", ":9081", "--source", "kubernetes");
        Assert.Equal(1, moved.Exit);
        Assert.Contains("collides with", Assert.Single(moved.Stdout.TrimEnd('\n').Split('\n')), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Plan_for_a_node_that_no_document_names_says_so_and_exits_1()
    {
        Write("resources/api.yaml", App("api", "vps-1"));
        Write("resources/bot.yaml", App("bot", "vps-2"));

        var (exit, stdout, stderr) = await SkiffProcess.RunAsync(Timeout, "plan", "--path", Path.Combine(dir, "resources"), "--node", "vps1", "--state-dir", Path.Combine(dir, "state"));

        Assert.Equal(1, exit);
        Assert.Equal("", stdout);
        Assert.Contains("no document in", stderr, StringComparison.Ordinal);
        Assert.Contains("names node \"vps1\" (spec.node); the nodes named are: vps-1, vps-2", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Crds_output_yaml_is_refused_without_creating_a_folder()
    {
        // The child runs in this process's working directory.
        Assert.False(Directory.Exists("yaml"));
        var (exit, stdout, stderr) = await SkiffProcess.RunAsync(Timeout, "crds", "--output", "yaml");

        Assert.Equal(2, exit);
        Assert.Equal("", stdout);
        Assert.Contains("without --output the CRDs go to stdout as YAML", stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists("yaml"));
    }

    [Fact]
    public async Task Version_prints_the_version_the_chart_names()
    {
        var chart = File.ReadAllText(Path.Combine(KubeHarness.RepoRoot(), "charts", "skiff", "Chart.yaml"));
        var appVersion = Regex.Match(chart, @"^appVersion:\s*""?([^""\s]+)""?", RegexOptions.Multiline).Groups[1].Value;

        var json = await SkiffProcess.RunAsync(Timeout, "version", "-o", "json");
        Assert.Equal(0, json.Exit);
        var version = JsonNode.Parse(json.Stdout)!;
        Assert.Equal(appVersion, (string?)version["version"]);
        Assert.StartsWith(".NET 10.", (string?)version["runtime"], StringComparison.Ordinal);

        var text = await SkiffProcess.RunAsync(Timeout, "version");
        Assert.Equal(0, text.Exit);
        Assert.Contains($"Version:  {appVersion}\n", text.Stdout, StringComparison.Ordinal);
        Assert.Matches(@"Platform: linux/(amd64|arm64)", text.Stdout);
    }

    [Fact]
    public async Task Status_prints_yaml_wide_and_one_stack_with_its_events()
    {
        var state = Path.Combine(dir, "state");
        var store = new StateStore(state);
        var now = DateTimeOffset.UtcNow;
        var status = new AppDeploymentStatus { Phase = Phases.Degraded, Revision = 3, Image = "skiff-test/app:1", LastGoodImage = "skiff-test/app:1", Endpoint = "http://local:3000" };
        Conditions.Set(status, ConditionTypes.Ready, false, "HealthCheckFailed", "GET /healthz answered 500", 1, now);
        store.Write(new StatusRecord
        {
            Namespace = "cli", Name = "api", Node = "local", CreatedAt = now.AddMinutes(-5), Generation = 1,
            Spec = new AppDeploymentSpec { Node = "local", App = new AppSpec { Image = "skiff-test/app:2" }, Cache = new CacheSpec() },
            Status = status,
        });
        store.AppendEvent("cli", "api", "Warning", "HealthCheckFailed", "GET /healthz answered 500", now.AddMinutes(-2));
        store.AppendEvent("cli", "api", "Warning", "HealthCheckFailed", "GET /healthz answered 500", now.AddMinutes(-1));
        store.AppendEvent("cli", "api", "Warning", "RolledBack", "Serving the last good image skiff-test/app:1 again", now);

        var yaml = await SkiffProcess.RunAsync(Timeout, "status", "--state-dir", state, "-o", "yaml");
        Assert.Equal(1, yaml.Exit);
        Assert.Contains("- namespace: cli\n  name: api\n", yaml.Stdout, StringComparison.Ordinal);
        Assert.Contains("phase: Degraded", yaml.Stdout, StringComparison.Ordinal);
        AssertNoDotNetText(yaml.Stdout + yaml.Stderr);

        var wide = await SkiffProcess.RunAsync(Timeout, "status", "--state-dir", state, "-o", "wide");
        Assert.Equal(1, wide.Exit);
        Assert.Matches(@"NAMESPACE\s+NAME\s+NODE\s+READY\s+PHASE\s+IMAGE\s+REVISION\s+AGE\s+REASON\n", wide.Stdout);
        Assert.Matches(@"cli\s+api\s+local\s+False\s+Degraded\s+skiff-test/app:1\s+3\s+5m\s+HealthCheckFailed\n", wide.Stdout);

        var describe = await SkiffProcess.RunAsync(Timeout, "status", "api", "-n", "cli", "--state-dir", state);
        Assert.Equal(1, describe.Exit);
        Assert.Contains("Name:       api\n", describe.Stdout, StringComparison.Ordinal);
        Assert.Contains("  Image:                skiff-test/app:2 (pull IfNotPresent)\n", describe.Stdout, StringComparison.Ordinal);
        Assert.Contains("  Cache:                redis redis:7 (persistence none)\n", describe.Stdout, StringComparison.Ordinal);
        Assert.Contains("  Last Good Image:      skiff-test/app:1\n", describe.Stdout, StringComparison.Ordinal);
        Assert.Matches(@"  Ready\s+False\s+HealthCheckFailed\s+GET /healthz answered 500", describe.Stdout);
        Assert.Matches(@"Events:\n  TYPE\s+REASON\s+AGE\s+MESSAGE\n  Warning\s+HealthCheckFailed\s+\S+ \(x2 over \S+\)\s+GET /healthz answered 500\n  Warning\s+RolledBack\s+", describe.Stdout);

        var missing = await SkiffProcess.RunAsync(Timeout, "status", "web", "-n", "cli", "--state-dir", state);
        Assert.Equal(1, missing.Exit);
        Assert.Contains($"no AppDeployment cli/web in the state folder {state}", missing.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Run_once_keeps_the_stacks_events_and_status_NAME_shows_them()
    {
        await using var w = new FolderWorkspace();
        w.Write("bot.yaml", w.Bot());
        var run = await SkiffProcess.RunAsync(Timeout, w.RunOnceArgs());
        Assert.True(run.Exit == 0, $"exit {run.Exit}\n{run.Stdout}\n{run.Stderr}");

        var (exit, stdout, stderr) = await SkiffProcess.RunAsync(Timeout, "status", "bot", "-n", w.Namespace, "--state-dir", w.StateDir);

        Assert.True(exit == 0, stderr);
        Assert.Contains("  Phase:                Ready\n", stdout, StringComparison.Ordinal);
        Assert.Matches(@"Components:\n  NAME\s+STATE\s+HEALTH\s+RESTARTS\s+IMAGE\s+CONTAINER\n", stdout);
        Assert.Matches(@"\n  Normal\s+RolloutSucceeded\s+\d+s\s+", stdout);
        // The bot's token never reaches what status shows.
        Assert.DoesNotContain(Stacks.BotToken, stdout, StringComparison.Ordinal);
    }
}
