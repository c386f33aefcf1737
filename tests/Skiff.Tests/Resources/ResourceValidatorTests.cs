using System.Reflection;
using Skiff.Api;
using Skiff.Validation;

namespace Skiff.Tests.Resources;

public class ResourceValidatorTests
{
    internal static AppDeployment ValidApp() => new()
    {
        Metadata = new() { Name = "api", NamespaceProperty = "prod" },
        Spec = new AppDeploymentSpec
        {
            Node = "vps-1",
            App = new AppSpec
            {
                Image = "registry.example.com/acme/api:1.4.2",
                Env = [new EnvVar { Name = "NODE_ENV", Value = "production" }],
                Ports = [new PortSpec { Name = "http", ContainerPort = 3000, HostPort = 3000 }],
                HealthCheck = new HealthCheckSpec { Http = new HttpCheck { Path = "/healthz", Port = "http" } },
                Migrate = new MigrateSpec { Command = ["npx", "prisma", "migrate", "deploy"] },
                Resources = new ResourceLimits { Memory = "512Mi", Cpu = "500m" },
            },
            Database = new DatabaseSpec { Storage = new StorageSpec { Size = "5Gi" } },
        },
    };

    internal static ImageGCPolicy ValidPolicy() => new()
    {
        Metadata = new() { Name = "default" },
        Spec = new ImageGCPolicySpec { HighThresholdPercent = 85, LowThresholdPercent = 80, MinimumAge = "1h", Interval = "10m" },
    };

    private static string One(IReadOnlyList<ValidationError> errors) => Assert.Single(errors).ToString();

    [Fact]
    public void Valid_resources_have_no_errors()
    {
        Assert.Empty(ResourceValidator.Validate(ValidApp()));
        Assert.Empty(ResourceValidator.Validate(ValidPolicy()));
    }

    // ---- One case per CEL rule's C# twin ----

    public static TheoryData<string, Action<AppDeployment>, string> AppTwinCases => new()
    {
        {
            CelTwins.NodeRequiredForDocker, a => a.Spec.Node = null,
            "spec.node: required for the docker runtime: name the node that runs the stack"
        },
        {
            CelTwins.HostPortsUnique, a => a.Spec.App.Ports!.Add(new PortSpec { Name = "admin", ContainerPort = 3001, HostPort = 3000 }),
            "spec.app.ports[1].hostPort: 0.0.0.0:3000 is already published by ports[0]: host ports must be unique per hostIP"
        },
        {
            CelTwins.PortNamesUnique, a => a.Spec.App.Ports!.Add(new PortSpec { Name = "http", ContainerPort = 3001 }),
            "spec.app.ports[1].name: duplicate port name \"http\": port names must be unique"
        },
        {
            CelTwins.HealthCheckPortExists, a => a.Spec.App.HealthCheck!.Http.Port = "web",
            "spec.app.healthCheck.http.port: no port named \"web\": use a port number or one of http"
        },
        {
            CelTwins.EnvValueXorValueFrom,
            a => a.Spec.App.Env![0].ValueFrom = new EnvVarSource { SecretKeyRef = new SecretKeySelector { Name = "s", Key = "k" } },
            "spec.app.env[0]: set either value or valueFrom, not both"
        },
        {
            CelTwins.ImageXorBuild, a => a.Spec.App.Build = new BuildSpec { Context = "app" },
            "spec.app.build: set exactly one of image and build: remove image to build from the Git source's commit, or remove build to run the image"
        },
        {
            CelTwins.RevisionHistoryLimitAtLeastOne, a => a.Spec.Rollout = new RolloutSpec { RevisionHistoryLimit = 0 },
            "spec.rollout.revisionHistoryLimit: must be at least 1 (the running revision is always kept), got 0"
        },
    };

    [Theory]
    [MemberData(nameof(AppTwinCases))]
    public void Cel_twin_rejects_what_the_rule_rejects(string twin, Action<AppDeployment> breakIt, string expected)
    {
        Assert.NotNull(twin);
        var app = ValidApp();
        breakIt(app);
        Assert.Equal(expected, One(ResourceValidator.Validate(app)));
    }

    [Fact]
    public void Cel_twin_LowBelowHigh()
    {
        var policy = ValidPolicy();
        policy.Spec.LowThresholdPercent = 85;
        Assert.Equal("spec.lowThresholdPercent: must be below highThresholdPercent (85), got 85", One(ResourceValidator.Validate(policy)));

        // An absent threshold takes its default, as the API server's defaulting does before CEL runs.
        policy.Spec = new ImageGCPolicySpec { LowThresholdPercent = 90 };
        Assert.Equal("spec.lowThresholdPercent: must be below highThresholdPercent (85), got 90", One(ResourceValidator.Validate(policy)));
    }

    [Fact]
    public void Cel_twin_NodeImmutableWithData_is_a_transition_rule()
    {
        var old = ValidApp();
        var moved = ValidApp();
        moved.Spec.Node = "vps-2";
        Assert.Empty(ResourceValidator.Validate(moved)); // on create there is no oldSelf
        Assert.Equal(
            "spec.node: is immutable while the stack has a database or a persistent cache (it was \"vps-1\"): back up the data, delete the stack, recreate it on the new node and restore",
            One(ResourceValidator.Validate(moved, old)));

        // A stateless stack, or one with a memory-only cache, may move.
        old.Spec.Database = null;
        moved.Spec.Database = null;
        old.Spec.Cache = new CacheSpec { Persistence = PersistenceModes.None };
        Assert.Empty(ResourceValidator.Validate(moved, old));
        old.Spec.Cache.Persistence = PersistenceModes.Aof;
        Assert.Single(ResourceValidator.Validate(moved, old));
    }

    [Fact]
    public void Every_cel_rule_has_a_tested_twin()
    {
        var rules = typeof(AppDeployment).Assembly.GetTypes()
            .SelectMany(t => t.GetCustomAttributes<CelRuleAttribute>()
                .Concat(t.GetProperties().SelectMany(p => p.GetCustomAttributes<CelRuleAttribute>())))
            .ToList();
        var tested = AppTwinCases.Select(row => (string)row[0])
            .Concat([CelTwins.LowBelowHigh, CelTwins.NodeImmutableWithData])
            .ToHashSet();
        Assert.NotEmpty(rules);
        foreach (var rule in rules)
        {
            Assert.True(rule.Twin is not null, $"CEL rule has no twin: {rule.Rule}");
            Assert.Contains(rule.Twin, tested);
        }
    }

    // ---- Other rules ----

    public static TheoryData<Action<AppDeployment>, string> AppCases => new()
    {
        { a => a.Metadata.Name = "Api_1", "metadata.name: must be a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit), got \"Api_1\"" },
        { a => a.Metadata.Name = new string('a', 54), "metadata.name: must be at most 53 characters so container names fit, got 54" },
        { a => a.Metadata.Name = null, "metadata.name: required" },
        { a => a.Metadata.NamespaceProperty = "Prod", "metadata.namespace: must be a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit), got \"Prod\"" },
        { a => a.Spec.Runtime = "podman", "spec.runtime: must be one of docker, kubernetes, got \"podman\"" },
        { a => a.Spec.App.Image = "", "spec.app.image: required: set image (an image from a registry), or build (an image built on the node, with the Git source)" },
        { a => a.Spec.App.Image = "acme/api:1.0@sha256:abc", "spec.app.image: the digest must be sha256: followed by 64 lowercase hex digits, got \"sha256:abc\"" },
        { a => a.Spec.App.Image = "acme/API:1", "spec.app.image: repository names must be lowercase, got \"acme/API:1\"" },
        { a => a.Spec.App.Image = "acme/api:", "spec.app.image: must be an image reference such as registry.example.com/team/app:1.4.2 or team/app@sha256:<64 hex digits>, got \"acme/api:\"" },
        { a => a.Spec.App.Ports![0].ContainerPort = 70000, "spec.app.ports[0].containerPort: must be between 1 and 65535, got 70000" },
        { a => a.Spec.App.Ports![0].HostPort = 0, "spec.app.ports[0].hostPort: must be between 1 and 65535, got 0" },
        { a => a.Spec.App.Ports![0].HostIP = "300.1.1.1", "spec.app.ports[0].hostIP: must be an IPv4 or IPv6 address such as 0.0.0.0 or 127.0.0.1, got \"300.1.1.1\"" },
        { a => (a.Spec.App.Ports![0].Name, a.Spec.App.HealthCheck) = ("8080", null), "spec.app.ports[0].name: must contain at least one letter, so it cannot be mistaken for a number, got \"8080\"" },
        { a => a.Spec.App.HealthCheck!.Http.Port = 0, "spec.app.healthCheck.http.port: must be between 1 and 65535, got 0" },
        { a => a.Spec.App.Env![0].Name = "NODE-ENV", "spec.app.env[0].name: must be letters, digits and '_', not starting with a digit, got \"NODE-ENV\"" },
        { a => a.Spec.App.Env!.Add(new EnvVar { Name = "NODE_ENV" }), "spec.app.env[1].name: duplicate variable \"NODE_ENV\": each variable may appear once" },
        { a => a.Spec.App.Env!.Add(new EnvVar { Name = "T", ValueFrom = new EnvVarSource { SecretKeyRef = new SecretKeySelector { Name = "s" } } }), "spec.app.env[1].valueFrom.secretKeyRef.key: required" },
        { a => a.Spec.App.Env!.Add(new EnvVar { Name = "T", ValueFrom = new EnvVarSource { SecretKeyRef = new SecretKeySelector { Name = "S", Key = "k" } } }), "spec.app.env[1].valueFrom.secretKeyRef.name: must be a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', starting and ending with a letter or digit), got \"S\"" },
        { a => a.Spec.App.Migrate!.Command = [], "spec.app.migrate.command: must not be empty" },
        { a => a.Spec.App.Resources!.Memory = "512MB", "spec.app.resources.memory: must be a quantity such as 512Mi, 1Gi, 500m or 2, got \"512MB\"" },
        { a => a.Spec.Database!.Engine = "mysql", "spec.database.engine: must be one of postgres, got \"mysql\"" },
        { a => a.Spec.Database!.Name = "my-db", "spec.database.name: must be letters, digits and '_', not starting with a digit, got \"my-db\"" },
        { a => a.Spec.Cache = new CacheSpec { Engine = "memcached" }, "spec.cache.engine: must be one of redis, got \"memcached\"" },
        { a => (a.Spec.App.Ports, a.Spec.App.HealthCheck) = ([.. Enumerable.Range(1, 33).Select(i => new PortSpec { ContainerPort = i })], null), "spec.app.ports: must have at most 32 items, got 33" },
        { a => a.Spec.Rollout = new RolloutSpec { ProgressDeadlineSeconds = 0 }, "spec.rollout.progressDeadlineSeconds: must be between 1 and 86400, got 0" },
        { a => a.Spec.App.Ports![0].Domains = ["*.example.com"], "spec.app.ports[0].domains[0]: \"*.example.com\": wildcard domains are not supported (an HTTP-01 certificate cannot cover them); list each name, such as www.example.com" },
        { a => a.Spec.App.Ports![0].Domains = ["Api.Example.com"], "spec.app.ports[0].domains[0]: \"Api.Example.com\": must be lowercase, as api.example.com" },
        { a => a.Spec.App.Ports![0].Domains = ["api.example.com."], "spec.app.ports[0].domains[0]: \"api.example.com.\": write it without the trailing dot, as api.example.com" },
        { a => a.Spec.App.Ports![0].Domains = ["localhost"], "spec.app.ports[0].domains[0]: \"localhost\": want a full domain name with at least one dot, such as localhost.example.com" },
        { a => a.Spec.App.Ports![0].Domains = ["10.0.0.1"], "spec.app.ports[0].domains[0]: \"10.0.0.1\" is an IP address, not a domain: give the DNS name that points to the node" },
        { a => a.Spec.App.Ports![0].Domains = ["api_v1.example.com"], "spec.app.ports[0].domains[0]: \"api_v1.example.com\" is not a DNS name: each dot-separated label has 1 to 63 lowercase letters, digits and '-', not starting or ending with '-'" },
        { a => a.Spec.App.Ports![0].Domains = ["../../etc"], "spec.app.ports[0].domains[0]: \"../../etc\" is not a DNS name: each dot-separated label has 1 to 63 lowercase letters, digits and '-', not starting or ending with '-'" },
        { a => a.Spec.App.Ports![0].Domains = [], "spec.app.ports[0].domains: must not be empty: list the names to serve (api.example.com) or remove domains" },
        { a => a.Spec.App.Ports![0].Tls = false, "spec.app.ports[0].tls: only applies to a port with domains: add domains: [api.example.com] or remove tls" },
        { a => a.Spec.App.Ports![0].TlsSecret = "api-tls", "spec.app.ports[0].tlsSecret: only applies to a port with domains: add domains: [api.example.com] (the names its certificate covers) or remove tlsSecret" },
        { a => (a.Spec.App.Ports![0].Domains, a.Spec.App.Ports![0].Tls, a.Spec.App.Ports![0].TlsSecret) = (["api.example.com"], false, "api-tls"), "spec.app.ports[0].tlsSecret: names the certificate to serve over HTTPS, but tls is false: remove tls: false, or remove tlsSecret to serve HTTP only" },
        { a => (a.Spec.App.Ports![0].Domains, a.Spec.App.Ports![0].TlsSecret) = (["api.example.com"], "Api_TLS"), "spec.app.ports[0].tlsSecret: must be a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', starting and ending with a letter or digit), got \"Api_TLS\"" },
        { a => (a.Spec.App.Ports![0].Domains, a.Spec.App.Ports![0].Protocol) = (["db.example.com"], "tcp"), "spec.app.ports[0].domains: domains are routed by HTTP Host header and TLS SNI, so only a port with protocol: http can have them (this one is tcp); remove domains or use protocol: http" },
        { a => a.Spec.App.Ports = [new PortSpec { Name = "http", ContainerPort = 3000, Domains = ["api.example.com"] }, new PortSpec { ContainerPort = 3001, Domains = ["api.example.com"] }], "spec.app.ports[1].domains[0]: \"api.example.com\" is already spec.app.ports[0].domains[0]: a domain goes to one port; remove one" },
    };

    [Fact]
    public void A_port_with_domains_and_no_hostPort_is_valid()
    {
        var app = ValidApp();
        app.Spec.App.Ports = [new PortSpec { Name = "http", ContainerPort = 3000, Domains = ["api.example.com", "www.example.com"] }, new PortSpec { Name = "admin", ContainerPort = 3001, Domains = ["admin.example.com"], Tls = false }];

        Assert.Empty(ResourceValidator.Validate(app));
    }

    [Theory]
    [MemberData(nameof(AppCases))]
    public void AppDeployment_rule(Action<AppDeployment> breakIt, string expected)
    {
        var app = ValidApp();
        breakIt(app);
        Assert.Equal(expected, One(ResourceValidator.Validate(app)));
    }

    public static TheoryData<Action<ImageGCPolicy>, string> PolicyCases => new()
    {
        { p => p.Metadata.NamespaceProperty = "prod", "metadata.namespace: ImageGCPolicy is cluster-scoped: remove the namespace" },
        { p => p.Spec.HighThresholdPercent = 101, "spec.highThresholdPercent: must be between 1 and 100, got 101" },
        { p => p.Spec.MinimumAge = "1d", "spec.minimumAge: must be a duration such as 30s, 10m, 1h or 720h, got \"1d\"" },
        { p => p.Spec.MaximumAge = "30m", "spec.maximumAge: must be longer than minimumAge (1h), got 30m" },
        { p => p.Spec.Nodes = ["vps-1", "vps-1"], "spec.nodes[1]: duplicate node \"vps-1\"" },
        { p => p.Spec.Nodes = ["VPS"], "spec.nodes[0]: must be a node name, a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', starting and ending with a letter or digit), got \"VPS\"" },
        { p => p.Spec.Keep = [""], "spec.keep[0]: must not be empty: give an image pattern such as postgres:*" },
    };

    [Theory]
    [MemberData(nameof(PolicyCases))]
    public void ImageGCPolicy_rule(Action<ImageGCPolicy> breakIt, string expected)
    {
        var policy = ValidPolicy();
        breakIt(policy);
        Assert.Equal(expected, One(ResourceValidator.Validate(policy)));
    }

    [Theory]
    [InlineData("nginx")]
    [InlineData("nginx:1.27")]
    [InlineData("postgres:16")]
    [InlineData("localhost:5000/team/app:v1")]
    [InlineData("registry.example.com/acme/api:1.4.2")]
    [InlineData("ghcr.io/acme/bot@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")]
    [InlineData("acme/app:1.0@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")]
    [InlineData("my_repo/sub-path/a.b:latest")]
    public void Valid_image_references(string image) => Assert.Null(ImageReference.Problem(image));

    [Theory]
    [InlineData("")]
    [InlineData("nginx:")]
    [InlineData(":1")]
    [InlineData("Nginx")]
    [InlineData("nginx@sha256:xyz")]
    [InlineData("nginx:1 2")]
    [InlineData("-nginx")]
    public void Invalid_image_references(string image) => Assert.NotNull(ImageReference.Problem(image));
}
