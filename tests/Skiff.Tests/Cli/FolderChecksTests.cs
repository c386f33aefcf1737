using Skiff.Cli;
using Skiff.Observability;
using Skiff.Validation;
using Skiff.Yaml;

namespace Skiff.Tests.Cli;

/// <summary>The checks <c>skiff validate</c> makes across documents.</summary>
public sealed class FolderChecksTests
{
    private static readonly BindAddress? Metrics = BindAddress.Parse(":8080");
    private static readonly BindAddress? Probes = BindAddress.Parse(":8081");

    private static string App(string name, string node = "vps-1", string ns = "prod", string extra = "", string ports = "") => $"""
        apiVersion: skiff.dev/v1alpha1
        kind: AppDeployment
        metadata: {"{"} name: {name}, namespace: {ns} {"}"}
        spec:
          node: {node}
          app:
            image: registry.example.com/{name}:1
        {extra}{(ports.Length > 0 ? "    ports:\n" + ports : "")}
        """;

    private static string Secret(string name, string ns = "prod", string key = "token") => $"""
        apiVersion: v1
        kind: Secret
        metadata: {"{"} name: {name}, namespace: {ns} {"}"}
        stringData: {"{"} {key}: value {"}"}
        """;

    private static List<string> Check(bool secretsInFiles = true, BindAddress? metrics = null, BindAddress? probes = null, params string[] documents)
    {
        var loaded = ResourceLoader.LoadText("f.yaml", string.Join("\n---\n", documents));
        var result = new LoadResult { Documents = loaded, Unreadable = [] };
        Assert.False(result.HasErrors, string.Join("\n", loaded.SelectMany(d => d.Errors)));
        return [.. FolderChecks.Check(result, metrics ?? Metrics, probes ?? Probes, secretsInFiles).Select(p => p.ToString())];
    }

    private const string TokenFromSecret = "    env:\n      - name: TOKEN\n        valueFrom:\n          secretKeyRef: { name: bot-secrets, key: token }\n";

    [Fact]
    public void A_secretKeyRef_to_a_Secret_no_document_defines_is_reported()
    {
        var problem = Assert.Single(Check(documents: App("bot", extra: TokenFromSecret)));
        Assert.StartsWith("f.yaml:1: spec.app.env[0].valueFrom.secretKeyRef.name: Secret prod/bot-secrets is not defined in the files given; " +
            "the directory source reads Secrets only from its folder, so the folder must define it", problem, StringComparison.Ordinal);

        Assert.Empty(Check(documents: [App("bot", extra: TokenFromSecret), Secret("bot-secrets")]));
        // In another namespace it is another Secret.
        Assert.Single(Check(documents: [App("bot", extra: TokenFromSecret), Secret("bot-secrets", ns: "default")]));
        // Documents for a cluster: Secrets live in the API.
        Assert.Empty(Check(secretsInFiles: false, documents: App("bot", extra: TokenFromSecret)));
    }

    [Fact]
    public void A_key_the_Secret_does_not_have_is_reported_with_its_keys()
    {
        var problem = Assert.Single(Check(documents: [App("bot", extra: TokenFromSecret), Secret("bot-secrets", key: "tokn")]));
        Assert.Equal("f.yaml:1: spec.app.env[0].valueFrom.secretKeyRef.key: Secret prod/bot-secrets (f.yaml:2) has no key \"token\"; its keys are: tokn", problem);
    }

    [Fact]
    public void The_generated_database_Secret_counts_as_defined()
    {
        var database = "    env:\n      - name: DB\n        valueFrom:\n          secretKeyRef: { name: api-db, key: url }\n  database: { image: postgres:16 }\n";
        Assert.Empty(Check(documents: App("api", extra: database)));
        var wrongKey = database.Replace("key: url", "key: uri", StringComparison.Ordinal);
        Assert.Contains("has the keys username, password, database, url, not \"uri\"", Assert.Single(Check(documents: App("api", extra: wrongKey))), StringComparison.Ordinal);
    }

    [Fact]
    public void An_imagePullSecret_no_document_defines_is_reported()
    {
        var pull = "    imagePullSecret: registry-creds\n";
        Assert.StartsWith("f.yaml:1: spec.app.imagePullSecret: Secret prod/registry-creds is not defined", Assert.Single(Check(documents: App("api", extra: pull))), StringComparison.Ordinal);
        Assert.Empty(Check(documents: [App("api", extra: pull), Secret("registry-creds", key: ".dockerconfigjson")]));
    }

    [Theory]
    [InlineData("0.0.0.0", "127.0.0.1", true)]
    [InlineData(null, "10.0.0.5", true)]
    [InlineData("127.0.0.1", "127.0.0.1", true)]
    [InlineData("::", "127.0.0.1", true)]
    [InlineData("127.0.0.1", "127.0.0.2", false)]
    public void Two_stacks_on_one_node_cannot_publish_one_host_address_and_port(string? first, string? second, bool collides)
    {
        static string Port(string? ip) => $"      - {{ containerPort: 3000, hostPort: 3000{(ip is null ? "" : $", hostIP: \"{ip}\"")} }}\n";
        var problems = Check(documents: [App("api", ports: Port(first)), App("web", ports: Port(second))]);
        if (!collides)
        {
            Assert.Empty(problems);
            return;
        }

        Assert.Equal($"f.yaml:2: spec.app.ports[0].hostPort: {second ?? "0.0.0.0"}:3000 collides with {first ?? "0.0.0.0"}:3000 of prod/api (f.yaml:1) on node vps-1: " +
            "two stacks cannot publish one host port (0.0.0.0 takes the port on every address); choose another hostPort, or bind each to its own hostIP",
            Assert.Single(problems));
        // On two nodes, they are two hosts.
        Assert.Empty(Check(documents: [App("api", ports: Port(first)), App("web", node: "vps-2", ports: Port(second))]));
    }

    [Fact]
    public void A_host_port_of_the_operators_own_servers_is_reported_naming_the_flag()
    {
        var metrics = Assert.Single(Check(documents: App("api", ports: "      - { containerPort: 3000, hostPort: 8080 }\n")));
        Assert.Equal("f.yaml:1: spec.app.ports[0].hostPort: 8080 is the port of the operator's own /metrics and /status on the node " +
            "(skiff run --metrics-bind-address, default :8080): choose another hostPort, or move the operator's server with --metrics-bind-address on skiff run " +
            "(and give skiff validate the same flag)", metrics);
        Assert.Contains("(skiff run --health-probe-bind-address, default :8081)",
            Assert.Single(Check(documents: App("api", ports: "      - { containerPort: 3000, hostPort: 8081, hostIP: 127.0.0.1 }\n"))), StringComparison.Ordinal);

        // Moved, or bound to another address than the app's, there is no clash.
        Assert.Empty(Check(metrics: BindAddress.Parse(":9090"), documents: App("api", ports: "      - { containerPort: 3000, hostPort: 8080 }\n")));
        Assert.Empty(Check(metrics: BindAddress.Parse("127.0.0.1:8080"), documents: App("api", ports: "      - { containerPort: 3000, hostPort: 8080, hostIP: 10.0.0.5 }\n")));
    }

    [Fact]
    public void Two_stacks_of_one_node_claiming_one_domain_are_refused_for_the_second()
    {
        const string Api = "      - { containerPort: 3000, domains: [api.example.com, www.example.com] }\n";
        const string Other = "      - { containerPort: 8080, domains: [shop.example.com, www.example.com] }\n";

        var problem = Assert.Single(Check(documents: [App("api", ports: Api), App("shop", ports: Other)]));
        Assert.Equal("f.yaml:2: spec.app.ports[0].domains[1]: \"www.example.com\" is already served by prod/api (f.yaml:1) on node vps-1: " +
            "one domain routes to one stack on a node; remove it from one of them, or use another name such as staging.www.example.com", problem);

        // On another node the same name is another site (its own DNS), and distinct names share a node.
        Assert.Empty(Check(documents: [App("api", ports: Api), App("shop", node: "vps-2", ports: Other)]));
        Assert.Empty(Check(documents: [App("api", ports: Api), App("shop", ports: "      - { containerPort: 8080, domains: [shop.example.com] }\n")]));
    }
}
