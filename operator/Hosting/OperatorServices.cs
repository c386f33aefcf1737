using Microsoft.Extensions.Logging;
using Prometheus;
using Skiff.Api;
using Skiff.Docker;
using Skiff.Observability;
using Skiff.Reconcile;
using Skiff.Runtime;

namespace Skiff.Hosting;

/// <summary>
/// The operational parts every source shares, registered in one place: metrics, the watchdog,
/// health checks, the HTTP endpoints, and the hooks that feed them from the reconciler.
/// </summary>
public sealed class OperatorServices : IAsyncDisposable
{
    private OperatorHttp? http;

    public OperatorServices(ILoggerFactory logging)
    {
        Logging = logging;
        Registry = Prometheus.Metrics.NewCustomRegistry();
        Metrics = new SkiffMetrics(Registry);
    }

    public ILoggerFactory Logging { get; }

    public CollectorRegistry Registry { get; }

    public SkiffMetrics Metrics { get; }

    public Watchdog Watchdog { get; } = new();

    public HealthChecks Health { get; } = new();

    public OperatorHttp? Http => http;

    /// <summary>
    /// What the node's reconciler works with: the image lock and disk guard of its image GC, the pull listeners
    /// (<paramref name="display"/> too: the live lines of <c>run --once</c> on a terminal), the rollout metrics, GC's pass
    /// after each rollout, and the log redactor that learns every secret value before anything could log it.
    /// </summary>
    public StackServices StackServices(ImageGcService gc, IPullListener? display = null) => new()
    {
        EngineLock = gc.EngineLock,
        DiskGuard = gc.Guard,
        Pulls = PullListener(display),
        RolloutCompleted = (desired, record, elapsed) =>
        {
            Metrics.RolloutSucceeded(elapsed);
            gc.Loop.Trigger($"rollout of {desired.Names.Key} r{record.Revision}");
        },
        RolloutFailed = (_, record, reason) => Metrics.RolloutFailed(reason, record.Outcome == Outcomes.RolledBack),
        SecretsResolved = values =>
        {
            foreach (var value in values)
            {
                SecretRedactor.Shared.Register(value);
            }
        },
    };

    /// <summary>
    /// Who watches image pulls: the log, <c>skiff_image_pull_duration_seconds</c>, and <paramref name="display"/>
    /// (the live lines of <c>run --once</c> on a terminal) when given.
    /// </summary>
    public IPullListener PullListener(IPullListener? display = null)
    {
        IPullListener[] listeners = [new PullLog(Logging.CreateLogger<PullLog>()), new PullMetricsListener(Metrics)];
        return new PullListeners(display is null ? listeners : [.. listeners, display]);
    }

    /// <summary>Reports a resource's readiness and phase as metrics (or forgets it when it is gone).</summary>
    public void Report(ObjectKey key, AppDeploymentStatus? status)
    {
        var ns = key.Namespace ?? "default";
        if (status is null)
        {
            Metrics.ForgetAppDeployment(ns, key.Name);
            return;
        }

        Metrics.SetAppDeployment(ns, key.Name, Conditions.IsTrue(status, ConditionTypes.Ready), status.Phase);
    }

    /// <summary>A controller with its queue, wired to metrics and the watchdog.</summary>
    public Controller Controller(string name, IReconciler reconciler, int workers, out WorkQueue<ObjectKey> queue)
    {
        queue = new WorkQueue<ObjectKey>(name, RateLimiters.Default<ObjectKey>(TimeProvider.System), metrics: Metrics.ForQueue(name));
        var component = "controller/" + name;
        Watchdog.Register(component, Watchdog.DefaultReconcileLimit);
        return new Controller(
            new ControllerOptions { Name = name, MaxConcurrentReconciles = workers },
            queue,
            new WatchdogReconciler(reconciler, Watchdog, component),
            Logging.CreateLogger<Controller>(),
            Metrics.ForController(name));
    }

    /// <summary>Liveness from the watchdog, readiness from the cache and the engine.</summary>
    public void AddStandardChecks(Func<bool> synced, DockerEngine engine)
    {
        Health.AddLiveness("workers", () => Watchdog.Healthy);
        Health.AddReadiness("cache-synced", synced);
        Health.AddReadiness("docker", async ct =>
        {
            try
            {
                await engine.VersionAsync(ct);
                return true;
            }
            catch (EngineUnreachableException)
            {
                return false;
            }
        }, TimeSpan.FromSeconds(2));
    }

    /// <summary>Starts <c>/metrics</c>, <c>/status</c> (and <paramref name="posts"/>, such as the Git source's <c>/sync</c>) and the probes.</summary>
    public async Task StartHttpAsync(string metricsAddress, string healthAddress, Func<object> status, CancellationToken ct, IReadOnlyDictionary<string, Microsoft.AspNetCore.Http.RequestDelegate>? posts = null)
    {
        http = await OperatorHttp.StartAsync(metricsAddress, healthAddress, Registry, Health, status, Logging, ct, posts, OperatorStatusJson.Default);
        var log = Logging.CreateLogger<OperatorServices>();
        if (http.MetricsEndpoint is { } m)
        {
            log.LogInformation("Serving /metrics and /status on {Endpoint}", m);
        }

        if (http.HealthEndpoint is { } h)
        {
            log.LogInformation("Serving /healthz and /readyz on {Endpoint}", h);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (http is not null)
        {
            await http.DisposeAsync();
        }
    }
}

/// <summary>Times every pull in <c>skiff_image_pull_duration_seconds{result}</c>.</summary>
internal sealed class PullMetricsListener(SkiffMetrics metrics) : IPullListener
{
    public void Started(string stack, string image)
    {
    }

    public void Progress(string stack, PullProgress progress)
    {
    }

    public void Finished(PullResult result) => metrics.ImagePulled(result.Result, result.Duration);
}
