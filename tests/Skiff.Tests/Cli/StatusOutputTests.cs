using Skiff.Api;
using Skiff.Cli;
using Skiff.Reconcile;
using Skiff.State;
using Skiff.Yaml;
using Skiff.Hosting;

namespace Skiff.Tests.Cli;

/// <summary><c>skiff status</c>: -o table|json|yaml|wide, and one resource in full with NAME.</summary>
public sealed class StatusOutputTests : IDisposable
{
    private static readonly DateTimeOffset Now = new(2025, 3, 1, 12, 0, 0, TimeSpan.Zero);
    private readonly string root = Path.Combine(Path.GetTempPath(), "skiff-status-" + Guid.NewGuid().ToString("N"));
    private readonly StateStore store;

    public StatusOutputTests()
    {
        store = new StateStore(root);
        store.EnsureCreated();
        store.Write(Record("prod", "api", ready: true));
        store.Write(Record("chat", "bot", ready: false));
    }

    public void Dispose() => Directory.Delete(root, recursive: true);

    internal static StatusRecord Record(string ns, string name, bool ready)
    {
        var status = new AppDeploymentStatus
        {
            Phase = ready ? Phases.Ready : Phases.Degraded,
            Revision = 2,
            Image = "registry.example.com/api:1.4.2",
            LastGoodImage = "registry.example.com/api:1.4.1",
            Endpoint = "http://vps-1:3000",
            Source = "/srv/skiff/resources",
            History = [new RevisionRecord { Revision = 2, SpecHash = "abc", Image = "registry.example.com/api:1.4.2", Outcome = ready ? Outcomes.Succeeded : Outcomes.RolledBack, Reason = ready ? null : "HealthCheckFailed", DeployedAt = Now.AddMinutes(-3) }],
            Components = [new ComponentStatus { Name = "app", ContainerId = "0123456789abcdef0123", Image = "registry.example.com/api:1.4.2", State = "running", Health = "healthy", Restarts = 0 }],
        };
        Conditions.Set(status, ConditionTypes.Ready, ready, ready ? "RolloutSucceeded" : "HealthCheckFailed", ready ? "revision 2 is live" : "GET /healthz answered 500\nthree times", 1, Now.AddMinutes(-2));
        return new StatusRecord
        {
            Namespace = ns,
            Name = name,
            Node = "vps-1",
            CreatedAt = Now.AddMinutes(-10),
            Generation = 1,
            File = "/srv/skiff/resources/api.yaml",
            Spec = new AppDeploymentSpec
            {
                Node = "vps-1",
                App = new AppSpec { Image = "registry.example.com/api:1.4.2", Ports = [new PortSpec { Name = "http", ContainerPort = 3000, HostPort = 3000, HostIP = "127.0.0.1" }] },
                Database = new DatabaseSpec(),
            },
            Status = status,
        };
    }

    private (int Exit, string Stdout, string Stderr) Status(string? name = null, string? ns = null, OutputFormat format = OutputFormat.Table)
    {
        using var stdout = new StringWriter { NewLine = "\n" };
        using var stderr = new StringWriter { NewLine = "\n" };
        var exit = StatusCommand.Run(store, name, ns, format, stdout, stderr, Now);
        return (exit, stdout.ToString(), stderr.ToString());
    }

    [Fact]
    public void Wide_adds_the_reason_of_a_Ready_condition_that_is_not_True()
    {
        var (exit, stdout, _) = Status(format: OutputFormat.Wide);

        Assert.Equal(ExitCodes.NotOk, exit);
        var lines = stdout.TrimEnd('\n').Split('\n');
        Assert.Matches(@"^NAMESPACE\s+NAME\s+NODE\s+READY\s+PHASE\s+IMAGE\s+REVISION\s+AGE\s+REASON$", lines[0]);
        Assert.Matches(@"^chat\s+bot\s+vps-1\s+False\s+Degraded\s+\S+\s+2\s+10m\s+HealthCheckFailed$", lines[1]);
        Assert.Matches(@"^prod\s+api\s+vps-1\s+True\s+Ready\s+\S+\s+2\s+10m$", lines[2]);
    }

    [Fact]
    public void Yaml_is_the_json_as_yaml_and_namespace_filters_the_list()
    {
        var (exit, stdout, _) = Status(ns: "prod", format: OutputFormat.Yaml);

        Assert.Equal(ExitCodes.Ok, exit);
        Assert.DoesNotContain("Skiff.", stdout, StringComparison.Ordinal);
        var document = Assert.Single(ResourceLoader.LoadText("status.yaml", stdout));
        Assert.Contains("- namespace: prod\n  name: api\n", stdout, StringComparison.Ordinal);
        Assert.Contains("phase: Ready", stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("name: bot", stdout, StringComparison.Ordinal);
        Assert.NotNull(document);
    }

    [Fact]
    public void Name_shows_one_stack_like_kubectl_describe_with_its_events()
    {
        store.AppendEvent("chat", "bot", "Normal", "RolloutStarted", "revision 2: registry.example.com/api:1.4.2", Now.AddMinutes(-4));
        store.AppendEvent("chat", "bot", "Warning", "HealthCheckFailed", "GET /healthz answered 500", Now.AddMinutes(-3));
        store.AppendEvent("chat", "bot", "Warning", "HealthCheckFailed", "GET /healthz answered 500", Now.AddMinutes(-1));

        var (exit, stdout, _) = Status("bot", "chat");

        Assert.Equal(ExitCodes.NotOk, exit);
        Assert.Contains("Name:       bot\n", stdout, StringComparison.Ordinal);
        Assert.Contains("Namespace:  chat\n", stdout, StringComparison.Ordinal);
        Assert.Contains("  Image:                registry.example.com/api:1.4.2 (pull IfNotPresent)\n", stdout, StringComparison.Ordinal);
        Assert.Contains("  Ports:                http 3000 -> 127.0.0.1:3000\n", stdout, StringComparison.Ordinal);
        Assert.Contains("  Database:             postgres postgres:16 (database app, user app, reclaim Retain)\n", stdout, StringComparison.Ordinal);
        Assert.Contains("  Cache:                <none>\n", stdout, StringComparison.Ordinal);
        Assert.Contains("  Last Good Image:      registry.example.com/api:1.4.1\n", stdout, StringComparison.Ordinal);
        Assert.Contains("  Endpoint:             http://vps-1:3000\n", stdout, StringComparison.Ordinal);
        Assert.Matches(@"Conditions:\n  TYPE\s+STATUS\s+REASON\s+MESSAGE\s+AGE\n  Ready\s+False\s+HealthCheckFailed\s+GET /healthz answered 500; three times\s+2m\n", stdout);
        Assert.Matches(@"History:\n  REVISION\s+IMAGE\s+OUTCOME\s+REASON\s+DEPLOYED\n  2\s+registry.example.com/api:1.4.2\s+RolledBack\s+HealthCheckFailed\s+3m ago\n", stdout);
        Assert.Matches(@"Components:\n  NAME\s+STATE\s+HEALTH\s+RESTARTS\s+IMAGE\s+CONTAINER\n  app\s+running\s+healthy\s+0\s+\S+\s+0123456789ab\n", stdout);
        Assert.Matches(@"Events:\n  TYPE\s+REASON\s+AGE\s+MESSAGE\n  Normal\s+RolloutStarted\s+4m\s+revision 2: \S+\n  Warning\s+HealthCheckFailed\s+60s \(x2 over 3m\)\s+GET /healthz answered 500\n", stdout);
    }

    [Fact]
    public void Name_as_json_carries_the_record_and_its_events()
    {
        store.AppendEvent("prod", "api", "Normal", "RolloutSucceeded", "revision 2 is live", Now);

        var (exit, stdout, _) = Status("api", "prod", OutputFormat.Json);

        Assert.Equal(ExitCodes.Ok, exit);
        var json = System.Text.Json.Nodes.JsonNode.Parse(stdout)!;
        Assert.Equal("api", (string?)json["name"]);
        Assert.Equal("RolloutSucceeded", (string?)json["events"]![0]!["reason"]);
        Assert.Equal("Ready", (string?)json["status"]!["phase"]);
    }

    [Fact]
    public void A_name_not_in_the_state_folder_exits_1_and_says_so()
    {
        var (exit, stdout, stderr) = Status("bot");

        Assert.Equal(ExitCodes.NotOk, exit);
        Assert.Equal("", stdout);
        Assert.StartsWith($"skiff status: no AppDeployment default/bot in the state folder {store.Root}; there is chat/bot (-n NAMESPACE)", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Name_shows_the_stacks_domains_and_whether_a_certificate_is_served()
    {
        var proxy = Path.Combine(root, "proxy");
        Directory.CreateDirectory(proxy);
        var shared = new Skiff.Proxy.ProxySharedListeners("0.0.0.0:80", "0.0.0.0:443");
        Skiff.Proxy.ProxyRoutes.Write(Path.Combine(proxy, "routes.json"), Skiff.Proxy.ProxyRoutes.For([], shared,
        [
            new("api.example.com", true, "prod/api", "http", 2, "172.18.0.5:3000"),
            new("www.example.com", true, "prod/api", "http", 2, "172.18.0.5:3000"),
            new("bot.example.com", true, "chat/bot", "http", 1, "172.19.0.5:3000"),
        ]));
        using var ca = new Skiff.IntegrationTests.Proxy.TestCertificates();
        var leaf = ca.WritePair(Path.Combine(proxy, "certs"), "api.example.com");

        var (_, stdout, _) = Status("api", "prod");
        var expires = leaf.NotAfter.ToUniversalTime().ToString("yyyy-MM-dd HH:mm", System.Globalization.CultureInfo.InvariantCulture);
        Assert.Matches(@"Domains:\n  DOMAIN\s+TLS\s+PORT\s+REVISION\s+UPSTREAM\s+CERTIFICATE\n" +
            $@"  api\.example\.com\s+yes\s+http\s+2\s+172\.18\.0\.5:3000\s+served, expires {expires}Z \(in \S+\)\n" +
            @"  www\.example\.com\s+yes\s+http\s+2\s+172\.18\.0\.5:3000\s+none yet \(served over HTTP\)\n", stdout);
        Assert.DoesNotContain("bot.example.com", stdout, StringComparison.Ordinal);

        var (_, json, _) = Status("api", "prod", OutputFormat.Json);
        var domains = System.Text.Json.Nodes.JsonNode.Parse(json)!["domains"]!.AsArray();
        Assert.Equal(["served", "none"], domains.Select(d => (string?)d!["certificate"]));
    }
}
