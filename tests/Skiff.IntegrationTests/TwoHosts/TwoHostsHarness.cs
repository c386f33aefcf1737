using Skiff.Docker;
using Skiff.IntegrationTests.FolderSource;
using Skiff.IntegrationTests.KubernetesSource;
using Skiff.Reconcile;
using Skiff.IntegrationTests.Infrastructure;

namespace Skiff.IntegrationTests.TwoHosts;

/// <summary>
/// Two VPSs against one test API server: <c>vps-1</c> is this host with the main engine, <c>vps-2</c> the
/// network namespace of <see cref="SecondEngineFixture"/> with its own engine. The API server listens on
/// the host's veth address, so that both reach it and the request log tells them apart by address.
/// </summary>
public sealed class TwoHostsHarness : IAsyncDisposable
{
    /// <summary>Short leader-election timings (seconds: lease, renew deadline, retry) so that tests stay fast.</summary>
    /// <remarks>
    /// 8/6/1 s: a 3 s renew deadline (with a 4 s lease) lost the lease to the waiting instance under load ~20 while
    /// the leader was alive.
    /// </remarks>
    public static readonly string[] ShortLease =
        ["--leader-election-lease-duration", "8", "--leader-election-renew-deadline", "6", "--leader-election-retry-period", "1"];

    /// <summary>The lease duration of <see cref="ShortLease"/>: a takeover comes no sooner.</summary>
    public static readonly TimeSpan ShortLeaseDuration = TimeSpan.FromSeconds(8);

    /// <summary>
    /// Leader-election timings for tests that do not test a takeover: a renew deadline a loaded 2-core machine (the
    /// unit tests run beside these) meets, so that a slow answer of the API server does not end the instance.
    /// </summary>
    public static readonly string[] SteadyLease =
        ["--leader-election-lease-duration", "15", "--leader-election-renew-deadline", "10", "--leader-election-retry-period", "2"];

    private readonly List<(string Name, SkiffProcess Process)> operators = [];

    private TwoHostsHarness(KubeHarness kube)
    {
        Kube = kube;
        Vps2Engine = new DockerEngine(SecondEngineFixture.DockerHost);
    }

    public KubeHarness Kube { get; }

    public string Namespace => Kube.Namespace;

    public DockerEngine Vps1Engine => Kube.Workspace.Engine;

    public DockerEngine Vps2Engine { get; }

    public static async Task<TwoHostsHarness> StartAsync() =>
        new(await KubeHarness.StartAsync(bindAddress: SecondEngineFixture.HostAddress));

    /// <summary><c>skiff run --node vps-1</c> on this host and the main engine; <paramref name="metrics"/> as in <see cref="KubeHarness.StartOperator"/>.</summary>
    public SkiffProcess StartVps1(string metrics = "0", string[]? lease = null) =>
        Track("vps-1", Kube.StartOperator("vps-1", leaderElect: true, metrics: metrics, extra: lease ?? ShortLease));

    /// <summary><c>skiff run --node vps-2</c> inside the second VPS's network namespace, on its engine.</summary>
    public SkiffProcess StartVps2(string[]? lease = null) =>
        Track("vps-2", Kube.StartOperator("vps-2", leaderElect: true, prefix: SecondEngineFixture.Vps2Prefix,
            extra: [.. lease ?? ShortLease, "--docker-host", SecondEngineFixture.DockerHost]));

    /// <summary>Skiff's containers of this test's namespace on one VPS's engine, optionally of one stack.</summary>
    public Task<IReadOnlyList<ObservedContainer>> ContainersAsync(DockerEngine engine, string? stack = null) =>
        FolderWorkspace.ContainersAsync(engine, Namespace, stack);

    /// <summary>Polls until <paramref name="condition"/> holds; a timeout says what was awaited and shows the operators' logs.</summary>
    public Task UntilAsync(string what, Func<Task<bool>> condition, int seconds = 60) =>
        Eventually.TrueAsync(what, condition, TimeSpan.FromSeconds(seconds), Logs);

    /// <summary>The tail of each operator's log, for failure messages.</summary>
    public string Logs() => string.Join("\n", operators.Select(o =>
    {
        var lines = o.Process.Stderr.Split('\n');
        return $"--- {o.Name} (pid {o.Process.Id}{(o.Process.HasExited ? ", exited" : "")}):\n" + string.Join('\n', lines.TakeLast(40));
    }));

    /// <summary>The seed bot (<see cref="Stacks.Bot"/>) on <paramref name="node"/>, without its token: its Redis keeps an append-only file (a persistent cache).</summary>
    public static string Bot(string name, string node) => Stacks.Yaml(Stacks.Bot(name, node: node).With(s => s.App.Env = null));

    public async ValueTask DisposeAsync()
    {
        // The operators go first (with the harness), so that nothing recreates what the cleanup removes.
        await Kube.DisposeAsync();
        await FolderWorkspace.RemoveNamespaceAsync(Vps2Engine, Namespace);
        Vps2Engine.Dispose();
    }

    private SkiffProcess Track(string name, SkiffProcess process)
    {
        operators.Add((name, process));
        return process;
    }
}
