using k8s;
using k8s.LeaderElection;
using k8s.LeaderElection.ResourceLock;
using k8s.Models;
using Microsoft.Extensions.Logging;
using Skiff.Api;
using Skiff.Cli;
using Skiff.Docker;
using Skiff.ImageGC;
using Skiff.Observability;
using Skiff.Reconcile;
using Skiff.Runtime;
using Skiff.State;

namespace Skiff.Sources.Kubernetes;

/// <summary>Options of <c>skiff run</c> with the Kubernetes source.</summary>
public sealed record KubernetesRunOptions(
    string? Kubeconfig,
    string? Context,
    string Node,
    string? DockerHost,
    string StateDir,
    string MetricsBindAddress,
    string HealthProbeBindAddress,
    bool LeaderElect,
    string? LeaderElectionNamespace)
{
    /// <summary>controller-runtime's defaults: lease 15 s, renew deadline 10 s, retry every 2 s.</summary>
    public TimeSpan LeaseDuration { get; init; } = TimeSpan.FromSeconds(15);

    public TimeSpan RenewDeadline { get; init; } = TimeSpan.FromSeconds(10);

    public TimeSpan RetryPeriod { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>How long one image pull may take (<c>--pull-timeout</c>).</summary>
    public TimeSpan PullTimeout { get; init; } = TimeSpan.FromMinutes(10);
}

/// <summary>
/// <c>skiff run --source kubernetes</c>: watches AppDeployments through the API and reconciles the
/// ones of this node into its Docker engine. With leader election (one Lease per node,
/// <c>skiff-NODE</c>) two instances of one node never work at once; an instance that loses its lease
/// stops taking work and exits, as controller-runtime does, so its supervisor restarts it.
/// </summary>
public static class KubernetesRunner
{
    public static async Task<int> RunAsync(KubernetesRunOptions options, ILoggerFactory logging, TextWriter error, CancellationToken ct)
    {
        var log = logging.CreateLogger("Skiff.Run");
        KubernetesClientConfiguration config;
        try
        {
            config = options.Kubeconfig is not null
                ? KubernetesClientConfiguration.BuildConfigFromConfigFile(options.Kubeconfig, options.Context)
                : KubernetesClientConfiguration.IsInCluster()
                    ? KubernetesClientConfiguration.InClusterConfig()
                    : KubernetesClientConfiguration.BuildConfigFromConfigFile(currentContext: options.Context);
        }
        catch (Exception e) when (e is k8s.Exceptions.KubeConfigException or IOException or UnauthorizedAccessException)
        {
            error.WriteLine($"--kubeconfig: {e.Message}");
            return ExitCodes.UsageOrIo;
        }

        var state = new StateStore(options.StateDir);
        var stateLock = Preflight.LockState(state, $"skiff run --source kubernetes --node {options.Node}", error, out var lockExit);
        if (stateLock is null)
        {
            return lockExit;
        }

        await using var services = new OperatorServices(logging);
        using (stateLock)
        using (var client = new k8s.Kubernetes(config, new RestClientMetricsHandler(services.Metrics)))
        using (var engine = new DockerEngine(options.DockerHost, services.Metrics.Docker))
        {
            try
            {
                var version = await client.Version.GetCodeAsync(ct);
                log.LogInformation("Kubernetes API {Version} at {Host}", version.GitVersion, config.Host);
            }
            catch (Exception e) when (e is HttpRequestException or k8s.Autorest.HttpOperationException or TaskCanceledException && !ct.IsCancellationRequested)
            {
                error.WriteLine($"skiff run: Kubernetes API server unreachable at {config.Host}: {e.Message}");
                return ExitCodes.Unreachable;
            }

            if (!await Preflight.EngineAnswersAsync(engine, log, error, ct))
            {
                return ExitCodes.Unreachable;
            }

            var informer = new Informer<AppDeployment>(
                KubernetesListWatch<AppDeployment>.ForCustomResource(client, SkiffApi.Group, SkiffApi.Version, AppDeployment.Plural),
                logging.CreateLogger<Informer<AppDeployment>>());
            var stacks = new StackReconciler(
                engine,
                new KubernetesSecretSource(client),
                new StackContext(options.Node, StateStore.SourceId("kubernetes", config.Host ?? "in-cluster"), "kubernetes") { PullTimeout = options.PullTimeout },
                new KubernetesEventSink(client, options.Node, logging.CreateLogger<KubernetesEventSink>()),
                logging.CreateLogger<StackReconciler>(),
                services.PullListener());
            services.Attach(stacks);
            var mirror = new StateMirror(state, informer, stacks.Context.SourceId, log);
            var reconciler = new KubernetesReconciler(client, informer, stacks, logging.CreateLogger<KubernetesReconciler>())
            {
                Reconciled = (key, status) =>
                {
                    services.Report(key, status);
                    mirror.Record(key, status);
                },
            };
            var controller = services.Controller("appdeployment", reconciler, workers: 4, out var queue);
            using var disposeQueue = queue;
            var node = options.Node;
            var policy = new PolicyChoice(ImageGC.GcPolicy.BuiltIn, null);
            var gc = await ImageGcService.CreateAsync(
                engine,
                stacks,
                state,
                node,
                () => [.. informer.List().Where(a => a.Spec.Node == node)
                    .Select(a => DeploymentImagesFrom.Status(a.Metadata.NamespaceProperty ?? "default", a.Metadata.Name, a.Spec, a.Status))],
                async token =>
                {
                    try
                    {
                        var chosen = ImageGcPlanner.ResolvePolicy(await KubernetesGcReporter.ListPoliciesAsync(client, token), node, out var warning);
                        return policy = new PolicyChoice(chosen, warning);
                    }
                    catch (Exception e) when (e is HttpRequestException or k8s.Autorest.HttpOperationException)
                    {
                        // GC must go on without the API: a GC that never runs is how disks fill.
                        return policy with { Warning = $"cannot list ImageGCPolicies ({e.Message}); using policy {policy.Policy.Name} as last read" };
                    }
                },
                new KubernetesGcReporter(client, logging.CreateLogger<KubernetesGcReporter>()),
                services,
                () =>
                {
                    foreach (var a in informer.List().Where(a => a.Spec.Node == node))
                    {
                        queue.Add(ObjectKey.From(a));
                    }
                },
                ct);

            Connect(informer, queue);
            services.AddStandardChecks(() => informer.HasSynced, engine);
            await services.StartHttpAsync(
                options.MetricsBindAddress,
                options.HealthProbeBindAddress,
                () => new
                {
                    node = options.Node,
                    resources = informer.List().Where(a => a.Spec.Node == options.Node)
                        .Select(a => new { a.Metadata.NamespaceProperty, a.Metadata.Name, a.Status }),
                    imageGc = gc.Loop.LastReport,
                },
                ct);

            using var work = CancellationTokenSource.CreateLinkedTokenSource(ct);
            async Task RunControllersAsync()
            {
                var informerTask = informer.RunAsync(work.Token);
                await informer.WaitForSyncAsync(work.Token);
                log.LogInformation("Cache synced; reconciling the AppDeployments of node {Node}", options.Node);
                // GC only while this instance serves the node (after the lease, with the synced cache for protection).
                var collecting = gc.RunAsync(engine, log, work.Token);
                await controller.RunAsync(work.Token);
                await informerTask;
                await collecting.ContinueWith(_ => { }, TaskScheduler.Default);
            }

            if (!options.LeaderElect)
            {
                await RunControllersAsync().ContinueWith(_ => { }, TaskScheduler.Default);
                return ExitCodes.Ok;
            }

            return await RunWithLeaseAsync(client, options, services, log, RunControllersAsync, work, ct);
        }
    }

    /// <summary>
    /// Enqueues resources on spec changes and deletions (not on status writes). Other nodes' resources too: the
    /// reconciler only notes their spec, which the twin of the spec.node transition rule needs when one moves here.
    /// </summary>
    private static void Connect(Informer<AppDeployment> informer, WorkQueue<ObjectKey> queue)
    {
        informer.OnAdd += obj => queue.Add(ObjectKey.From(obj));
        informer.OnDelete += obj => queue.Add(ObjectKey.From(obj));
        informer.OnUpdate += (old, obj) =>
        {
            // Like controller-runtime's GenerationChangedPredicate: status writes do not trigger a reconcile.
            var specChanged = old.Metadata.Generation != obj.Metadata.Generation
                || (old.Metadata.DeletionTimestamp is null) != (obj.Metadata.DeletionTimestamp is null);
            if (specChanged)
            {
                queue.Add(ObjectKey.From(obj));
            }
        };
    }

    private static async Task<int> RunWithLeaseAsync(
        IKubernetes client,
        KubernetesRunOptions options,
        OperatorServices services,
        ILogger log,
        Func<Task> runControllers,
        CancellationTokenSource work,
        CancellationToken ct)
    {
        var ns = options.LeaderElectionNamespace
            ?? (File.Exists("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
                ? (await File.ReadAllTextAsync("/var/run/secrets/kubernetes.io/serviceaccount/namespace", ct)).Trim()
                : "skiff-system");
        var leaseName = $"skiff-{options.Node}";
        var identity = $"{Environment.MachineName}_{Guid.NewGuid():N}"[..Math.Min(63, Environment.MachineName.Length + 33)];
        var leaseLock = new LeaseLock(client, ns, leaseName, identity);
        using var elector = new LeaderElector(new LeaderElectionConfig(leaseLock)
        {
            LeaseDuration = options.LeaseDuration,
            RenewDeadline = options.RenewDeadline,
            RetryPeriod = options.RetryPeriod,
        });
        var leading = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        elector.OnStartedLeading += () =>
        {
            services.Metrics.SetLeader(leaseName, true);
            leading.TrySetResult();
        };
        elector.OnStoppedLeading += () => services.Metrics.SetLeader(leaseName, false);
        elector.OnNewLeader += leader => log.LogInformation("Lease {Namespace}/{Lease} is held by {Leader}", ns, leaseName, leader);
        services.Metrics.SetLeader(leaseName, false);
        services.Health.AddReadiness("leader", () => elector.IsLeader());
        log.LogInformation("Waiting for lease {Namespace}/{Lease} as {Identity}", ns, leaseName, identity);

        // Runs until the lease is lost (or shutdown); it keeps renewing meanwhile.
        var election = elector.RunUntilLeadershipLostAsync(ct);
        var first = await Task.WhenAny(leading.Task, election);
        if (first != leading.Task)
        {
            await election.ContinueWith(_ => { }, TaskScheduler.Default);
            return ct.IsCancellationRequested ? ExitCodes.Ok : LeaseLost(log, ns, leaseName);
        }

        log.LogInformation("Acquired lease {Namespace}/{Lease}; starting to reconcile", ns, leaseName);
        var controllers = runControllers();
        var done = await Task.WhenAny(controllers, election);
        if (done == election && !ct.IsCancellationRequested)
        {
            // Stop taking work at once: another instance may already be reconciling this node.
            await work.CancelAsync();
            await controllers.ContinueWith(_ => { }, TaskScheduler.Default);
            return LeaseLost(log, ns, leaseName);
        }

        await work.CancelAsync();
        await controllers.ContinueWith(_ => { }, TaskScheduler.Default);
        return ExitCodes.Ok;
    }

    private static int LeaseLost(ILogger log, string ns, string lease)
    {
        log.LogError("Lost lease {Namespace}/{Lease}: another instance now serves this node; exiting so that the supervisor restarts this one", ns, lease);
        return ExitCodes.NotOk;
    }
}
