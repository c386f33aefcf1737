using System.Security.Cryptography;
using System.Text.Json;
using k8s;
using k8s.Models;
using Skiff.Api;
using Skiff.IntegrationTests.FolderSource;
using Skiff.TestApiServer;
using Skiff.IntegrationTests.Infrastructure;

namespace Skiff.IntegrationTests.KubernetesSource;

/// <summary>
/// The test API server with Skiff's generated CRDs, the real kubectl pointed at it, and the real
/// skiff process(es) watching it; a namespace of its own on the shared engine.
/// </summary>
public sealed class KubeHarness : IAsyncDisposable
{
    private readonly List<SkiffProcess> operators = [];

    private KubeHarness(TestApiServer.TestApiServer server, FolderWorkspace workspace)
    {
        Server = server;
        Workspace = workspace;
        Kubectl = new Kubectl(server);
        Client = server.CreateClient();
    }

    public TestApiServer.TestApiServer Server { get; }

    public FolderWorkspace Workspace { get; }

    public string Namespace => Workspace.Namespace;

    public Kubectl Kubectl { get; }

    public k8s.Kubernetes Client { get; }

    /// <param name="bindAddress">Where the API server listens: another network namespace reaches it on a veth address.</param>
    public static async Task<KubeHarness> StartAsync(string bindAddress = "127.0.0.1")
    {
        var crds = Path.Combine(RepoRoot(), "crds");
        var server = await TestApiServer.TestApiServer.StartAsync(new TestApiServerOptions
        {
            CrdPaths = [Path.Combine(crds, "skiff.dev_appdeployments.yaml"), Path.Combine(crds, "skiff.dev_imagegcpolicies.yaml")],
            BindAddress = bindAddress,
        });
        var harness = new KubeHarness(server, new FolderWorkspace());
        await harness.Client.CoreV1.CreateNamespaceAsync(new V1Namespace { Metadata = new V1ObjectMeta { Name = harness.Namespace } });
        return harness;
    }

    /// <summary>
    /// Starts <c>skiff run --source kubernetes</c> for a node, with its own state folder; under <paramref name="prefix"/>
    /// (a command that execs it, e.g. nsenter into another network namespace) when given. Metrics are off unless
    /// <paramref name="metrics"/> names an address (127.0.0.1:0: the log line "Serving metrics on" tells the port).
    /// </summary>
    public SkiffProcess StartOperator(
        string node = "local", bool leaderElect = false, string? stateDir = null, IReadOnlyList<string>? prefix = null, string metrics = "0",
        params string[] extra)
    {
        var args = new List<string>
        {
            "run", "--source", "kubernetes", "--kubeconfig", Kubectl.Kubeconfig, "--node", node,
            "--state-dir", stateDir ?? Path.Combine(Workspace.Root, "state-" + node + "-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(2))),
            "--metrics-bind-address", metrics, "--health-probe-bind-address", "0",
            $"--leader-elect={(leaderElect ? "true" : "false")}", "--leader-election-namespace", Namespace,
        };
        args.AddRange(extra);
        var process = SkiffProcess.StartUnder(prefix ?? [], [.. args]);
        operators.Add(process);
        return process;
    }

    /// <summary>
    /// The arguments of <c>skiff run --source kubernetes --once</c> for a node, with leader election on (the default of the
    /// kubernetes source) in this harness's namespace, and any <paramref name="extra"/>.
    /// </summary>
    public string[] RunOnceArgs(string node = "local", string? stateDir = null, params string[] extra) =>
    [
        "run", "--source", "kubernetes", "--once", "--kubeconfig", Kubectl.Kubeconfig, "--node", node,
        "--state-dir", stateDir ?? Path.Combine(Workspace.Root, "state-once-" + node),
        "--leader-election-namespace", Namespace, .. extra,
    ];

    public Task<Kubectl.Result> KubectlAsync(params string[] args) => Kubectl.RunAsync(TimeSpan.FromSeconds(120), ["-n", Namespace, .. args]);

    public async Task ApplyAsync(string yaml)
    {
        var file = Kubectl.WriteFile($"r{Guid.NewGuid():N}.yaml", yaml);
        var result = await KubectlAsync("apply", "-f", file);
        Assert.True(result.ExitCode == 0, $"kubectl apply failed: {result.Stderr}");
    }

    public async Task<AppDeployment?> GetAsync(string name)
    {
        try
        {
            var obj = await Client.CustomObjects.GetNamespacedCustomObjectAsync(SkiffApi.Group, SkiffApi.Version, Namespace, AppDeployment.Plural, name);
            return JsonSerializer.Deserialize<AppDeployment>(JsonSerializer.Serialize(obj));
        }
        catch (k8s.Autorest.HttpOperationException e) when (e.Response.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            return null;
        }
    }

    /// <summary>kubectl wait for Ready, with a bounded timeout; returns kubectl's result.</summary>
    public Task<Kubectl.Result> WaitReadyAsync(string name, int seconds = 120) =>
        KubectlAsync("wait", "--for=condition=Ready", $"appdeployment/{name}", $"--timeout={seconds}s");

    public async ValueTask DisposeAsync()
    {
        foreach (var p in operators)
        {
            await p.DisposeAsync();
        }

        await Workspace.DisposeAsync();
        Kubectl.Dispose();
        Client.Dispose();
        await Server.DisposeAsync();
    }

    /// <summary>
    /// The seed API (<see cref="Stacks.Api"/>) as YAML for kubectl; <paramref name="migrateSeconds"/> makes the migration work
    /// that long; <paramref name="edit"/> changes the spec first.
    /// </summary>
    public string Api(string name = "api", string image = TestImages.App1, int deadline = 60, string node = "local", int migrateSeconds = 0,
        Action<AppDeploymentSpec>? edit = null)
    {
        var api = Stacks.Api(name, image: image, node: node, deadline: deadline);
        if (migrateSeconds > 0)
        {
            api.WithEnv("TESTAPP_MIGRATE_SECONDS", migrateSeconds);
        }

        return Stacks.Yaml(api.With(edit));
    }

    /// <summary>The app alone (<see cref="Stacks.Stateless"/>) as YAML for kubectl; <paramref name="edit"/> changes the spec first.</summary>
    public string Stateless(string name, string node, Action<AppDeploymentSpec>? edit = null) =>
        Stacks.Yaml(Stacks.Stateless(name, node: node).With(edit));

    internal static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Operator.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("Operator.sln not found above " + AppContext.BaseDirectory);
    }
}
