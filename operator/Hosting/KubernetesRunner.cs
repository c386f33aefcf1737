using System.Collections.Concurrent;
using k8s;
using k8s.LeaderElection.ResourceLock;
using k8s.Models;
using Microsoft.Extensions.Logging;
using Skiff.Api;
using Skiff.Docker;
using Skiff.KubeRuntime;
using Skiff.ImageGC;
using Skiff.Observability;
using Skiff.Reconcile;
using Skiff.Runtime;
using Skiff.State;
using Skiff.Sources.Kubernetes;
using Skiff.Sources;

namespace Skiff.Hosting;

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
    /// <summary>
    /// <c>--once</c>: reconcile this node's resources, wait until each is Ready or failed, print the table, exit 0 only if
    /// all are Ready; like the folder's, without HTTP endpoints.
    /// </summary>
    public bool Once { get; init; }

    /// <summary>controller-runtime's defaults: lease 15 s, renew deadline 10 s, retry every 2 s.</summary>
    public LeaseTimings Lease { get; init; } = LeaseTimings.Default;

    /// <summary>The live pull lines and the status table of <c>--once</c>.</summary>
    public required RunConsole Console { get; init; }

    /// <summary>How long one image pull may take (<c>--pull-timeout</c>).</summary>
    public TimeSpan PullTimeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>The subnets of stack networks (<c>--network-pool</c>, <c>--network-prefix</c>).</summary>
    public NetworkPool NetworkPool { get; init; } = NetworkPool.Default;

    /// <summary>The node proxy (<c>--proxy-image</c>), or null: apps publish their ports themselves.</summary>
    public NodeProxySettings? Proxy { get; init; }

    /// <summary>Where certificates for the stacks' domains come from (<c>--acme-directory</c>, <c>--acme-email</c>).</summary>
    public Acme.AcmeOptions Acme { get; init; } = new();
}

/// <summary>
/// <c>skiff run --source kubernetes</c>: watches AppDeployments through the API and reconciles the
/// ones of this node into its Docker engine. With leader election (one Lease per node,
/// <c>skiff-NODE</c>) two instances of one node never work at once; an instance that loses its lease
/// stops taking work and exits, as controller-runtime does, so its supervisor restarts it.
/// </summary>
public static class KubernetesRunner
{
    public static async Task<int> RunAsync(KubernetesRunOptions options, ILoggerFactory logging, TextWriter output, TextWriter error, CancellationToken ct)
    {
        var log = logging.CreateLogger("Skiff.Run");
        // The node in the scope of every log line from here on (the workers, the informers and image GC start below,
        // so they inherit it): several nodes' logs can be told apart where they are collected.
        using var nodeScope = log.BeginScope(new Dictionary<string, object> { ["Node"] = options.Node });
        KubernetesClientConfiguration config;
        try
        {
            config = KubeConfigFile.Build(options.Kubeconfig, options.Context);
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
        using (var engine = new DockerEngine(options.DockerHost, services.Metrics.Docker) { NetworkPool = options.NetworkPool })
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
            using var proxy = options.Proxy?.Create(state.Root, options.Node, logging);
            var context = new StackContext(options.Node, StateStore.SourceId("kubernetes", config.Host ?? "in-cluster"), "kubernetes") { PullTimeout = options.PullTimeout, Proxy = proxy is not null };
            var mirror = new StateMirror(state, informer, context.SourceId, log);
            // The latest status of each resource this process reconciled: --once shows them (the cache may lag behind).
            var latest = new ConcurrentDictionary<ObjectKey, AppDeploymentStatus>();
            var node = options.Node;
            // ImageGCPolicies are watched (the long-running mode): a new or changed policy takes effect at once, with a pass
            // of its own, rather than at the next interval of the old one (10 minutes with the built-in policy).
            var policies = options.Once ? null : new Informer<ImageGCPolicy>(
                KubernetesListWatch<ImageGCPolicy>.ForCustomResource(client, SkiffApi.Group, SkiffApi.Version, ImageGCPolicy.Plural),
                logging.CreateLogger<Informer<ImageGCPolicy>>());
            var policy = new PolicyChoice(ImageGC.GcPolicy.BuiltIn, null);
            var requeueAll = (Action)(() => { });
            var gc = await ImageGcService.CreateAsync(
                engine,
                state,
                node,
                () => [.. informer.List().Where(a => a.Spec.Node == node)
                    .Select(a => DeploymentImagesFrom.Status(a.Metadata.NamespaceProperty ?? "default", a.Metadata.Name, a.Spec,
                        latest.GetValueOrDefault(ObjectKey.From(a)) ?? a.Status))],
                async token =>
                {
                    try
                    {
                        var all = policies is { HasSynced: true } ? policies.List() : await KubernetesGcReporter.ListPoliciesAsync(client, token);
                        var chosen = ImageGcPlanner.ResolvePolicy(all, node, out var warning);
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
                () => requeueAll(),
                ct);

            var secrets = new KubernetesSecretSource(client);
            var backups = new NodeBackups();
            // The stacks read their containers from a copy the engine's events keep current (see DirectoryRunner).
            var containers = new CachedContainerEngine(engine, engine, logging.CreateLogger<CachedContainerEngine>());
            using var stacks = new StackReconciler(
                containers,
                secrets,
                context,
                new KubernetesEventSink(client, options.Node, logging.CreateLogger<KubernetesEventSink>()),
                logging.CreateLogger<StackReconciler>(),
                services.StackServices(gc, options.Console.Display) with { Routes = proxy, ReportBackups = backups.Ledger.Apply, ReportCertificates = proxy is null ? null : proxy.ReportCertificates, ProvideCertificates = proxy is null ? null : proxy.ProvideCertificatesAsync });
            var nodeStore = new KubernetesStackStore(client, informer, stacks.Context);
            var reconciler = new StackController(
                nodeStore,
                stacks,
                (key, status) =>
                {
                    if (status is null)
                    {
                        latest.TryRemove(key, out _);
                    }
                    else
                    {
                        latest[key] = status;
                    }

                    services.Report(key, status);
                    mirror.Record(key, status);
                },
                logging.CreateLogger<StackController>());
            // The Docker path never runs a runtime: kubernetes stack; it hands a switched one over (RuntimeSwitch).
            var docker = new DockerRuntimeGate(reconciler, informer, nodeStore, stacks, engine, client, log);
            // Cancelled the moment the lease is given up: in-flight reconciles stop at once, not after the graceful
            // shutdown's timeout, because another instance may take the node as soon as the lease expires.
            using var lost = new CancellationTokenSource();
            var guarded = new LeaseBoundReconciler(docker, lost.Token);
            var lease = options.LeaderElect ? await CreateElectorAsync(client, options, log, ct) : null;
            Runnable? cluster = null;
            WorkQueue<ObjectKey>? clusterQueue = null;
            Func<CancellationToken, Task<int>>? once = null;
            IReadOnlyList<Runnable>? runnables = null;
            WorkQueue<ObjectKey>? queue = null;
            if (options.Once)
            {
                once = async token =>
                {
                    await NodeProxySettings.StartAsync(proxy, engine, state.Root, log, token);
                    return await RunOnceAsync(informer, stacks, guarded, gc, latest, output, log, options.Node, options.Console, engine, token);
                };
            }
            else
            {
                var controller = services.Controller("appdeployment", guarded, workers: 4, out var controllerQueue);
                queue = controllerQueue;
                // A container that died or changed health outside a rollout: its stack is looked at now.
                containers.StackChanged = stack => controllerQueue.Add(ObjectKey.Parse(stack));
                cluster = ClusterRunnable(client, informer, secrets, options, services, logging, log, out clusterQueue);
                requeueAll = () =>
                {
                    foreach (var a in informer.List().Where(a => a.Spec.Node == node))
                    {
                        controllerQueue.Add(ObjectKey.From(a));
                    }
                };
                Connect(informer, controllerQueue);
                informer.OnUpdate += backups.OnUpdate;
                var backupRunnable = backups.Runnable(
                    () => informer.List(), secrets, context, engine, stacks.Events,
                    names => controllerQueue.Add(new ObjectKey(names.Namespace, names.Name)), services,
                    () => policy.Policy.HighThresholdPercent);
                services.AddStandardChecks(() => informer.HasSynced, engine);
                if (lease is not null)
                {
                    services.Health.AddReadiness("leader", () => lease.IsLeader);
                }

                await services.StartHttpAsync(
                    options.MetricsBindAddress,
                    options.HealthProbeBindAddress,
                    () => new ClusterOperatorStatus(
                        options.Node,
                        [.. informer.List().Where(a => a.Spec.Node == options.Node)
                            .Select(a => new ClusterResourceStatus(a.Metadata.NamespaceProperty, a.Metadata.Name, a.Status))],
                        gc.Loop.LastReport),
                    ct);
                // After the first sync only: the startup pass reads the policies that exist already.
                var policiesSynced = false;
                policies!.OnAdd += _ =>
                {
                    if (policiesSynced)
                    {
                        gc.Loop.Trigger("ImageGCPolicy added");
                    }
                };
                policies.OnDelete += _ => gc.Loop.Trigger("ImageGCPolicy deleted");
                policies.OnUpdate += (old, changed) =>
                {
                    // Spec changes only: its status is what this loop (and the other nodes') write after each pass.
                    if (old.Metadata.Generation != changed.Metadata.Generation)
                    {
                        gc.Loop.Trigger("ImageGCPolicy changed");
                    }
                };
                runnables =
                [
                    new Runnable("informers", token => Task.WhenAll(informer.RunAsync(token), policies.RunAsync(token))),
                    new Runnable("appdeployment controller", async token =>
                    {
                        await informer.WaitForSyncAsync(token);
                        await policies.WaitForSyncAsync(token);
                        await containers.WaitFirstSyncAsync(token);
                        policiesSynced = true;
                        log.LogInformation("Cache synced; reconciling the AppDeployments of node {Node}", options.Node);
                        await controller.RunAsync(token);
                    }),
                    // GC only while this instance serves the node (after the lease, with the synced cache for protection).
                    new Runnable("image GC", async token =>
                    {
                        await informer.WaitForSyncAsync(token);
                        await gc.RunAsync(engine, log, token, t => ImageGcService.AfterFirstPassAsync(containers, queue!, t)).ContinueWith(_ => { }, TaskScheduler.Default);
                    }),
                    new Runnable(backupRunnable.Name, async token =>
                    {
                        await informer.WaitForSyncAsync(token);
                        await backupRunnable.RunAsync(token);
                    }),
                    new Runnable("container copy", containers.RunAsync),
                    .. NodeProxySettings.Runnables(proxy, engine, options.Acme, state.Root, services),
                    cluster!,
                ];
            }

            using var disposeQueue = queue;
            using var disposeClusterQueue = clusterQueue;
            var host = new OperatorHost(services, log);
            var gate = lease is null ? null : new LeaseGate(lease, options.Node, options.Once, options.Lease.RenewDeadline);
            try
            {
                return options.Once
                    ? gate is null ? await once!(ct) : await host.RunLeadingAsync(gate, once!, lost, error, ct)
                    : await host.RunAsync(runnables!, gate, lost, error, ct);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return options.Once ? ExitCodes.NotOk : ExitCodes.Ok;
            }
            catch (EngineUnreachableException e) when (options.Once)
            {
                error.WriteLine($"skiff run: {e.Message}");
                return ExitCodes.Unreachable;
            }
        }
    }

    /// <summary>
    /// <c>--once</c>: the resources of this node (and stacks of this source whose resource is gone or moved), each
    /// reconciled until its rollout is over, one GC pass, the table; the same steps as the folder's <c>--once</c>.
    /// </summary>
    private static async Task<int> RunOnceAsync(
        Informer<AppDeployment> informer,
        StackReconciler stacks,
        IReconciler reconciler,
        ImageGcService gc,
        ConcurrentDictionary<ObjectKey, AppDeploymentStatus> latest,
        TextWriter output,
        ILogger log,
        string node,
        RunConsole console,
        DockerEngine engine,
        CancellationToken ct)
    {
        using var watching = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var informerTask = informer.RunAsync(watching.Token);
        try
        {
            await informer.WaitForSyncAsync(ct);
            var resources = informer.List().Where(a => a.Spec.Node == node).ToList();
            var keys = resources.Select(ObjectKey.From)
                .Concat((await stacks.ListStacksAsync(ct)).Select(ObjectKey.Parse))
                .Distinct()
                .ToList();
            log.LogInformation("Reconciling {Count} AppDeployments of node {Node} once", keys.Count, node);
            var failed = await OnceRun.ReconcileAllAsync(
                reconciler, keys, key => Conditions.RolloutInProgress(latest.GetValueOrDefault(key)),
                OnceRun.Deadline(resources.Select(a => a.Spec), stacks.Context.PullTimeout), log, ct,
                StackWake.Follow(engine, log, watching.Token));

            // One GC pass, as the folder's --once makes: a node deployed only by `run --once` collects its old images too.
            await gc.Loop.RunPassAsync("skiff run --once", ct);

            var shown = keys
                .Select(key => latest.GetValueOrDefault(key) is { } status && informer.Get(key) is { } resource
                    ? StateMirror.RecordOf(resource, status, stacks.Context.SourceId)
                    : null)
                .OfType<StatusRecord>()
                .ToList();
            return OnceRun.Report(shown, [], failed, output, console.PrintTable);
        }
        finally
        {
            await watching.CancelAsync();
            await informerTask.ContinueWith(_ => { }, TaskScheduler.Default);
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
                || (old.Metadata.DeletionTimestamp is null) != (obj.Metadata.DeletionTimestamp is null)
                || RolloutRequests.Changed(old, obj);
            if (specChanged)
            {
                queue.Add(ObjectKey.From(obj));
            }
        };
    }

    /// <summary>
    /// The controller of <c>runtime: kubernetes</c> stacks (<see cref="ClusterStackController"/>), run by one instance among
    /// all: the holder of the Lease <c>skiff-cluster</c> (with leader election; without it, this instance alone). It waits for
    /// the lease beside the node's work, and an instance that loses it exits, as one that loses its node's lease does.
    /// </summary>
    private static Runnable ClusterRunnable(
        IKubernetes client,
        Informer<AppDeployment> informer,
        KubernetesSecretSource secrets,
        KubernetesRunOptions options,
        OperatorServices services,
        ILoggerFactory logging,
        ILogger log,
        out WorkQueue<ObjectKey> queue)
    {
        // A node that matches no resource: the cluster's store reads every resource as "not a node's" (no node transition rule).
        var store = new KubernetesStackStore(client, informer, new StackContext("", StateStore.SourceId("kubernetes", "cluster"), "kubernetes"));
        var runtime = new KubernetesStackRuntime(client, secrets, logging.CreateLogger<KubernetesStackRuntime>());
        var reconciler = new ClusterStackController(
            store,
            runtime,
            client,
            new KubernetesEventSink(client, ClusterLease, logging.CreateLogger<KubernetesEventSink>()),
            services.Report,
            logging.CreateLogger<ClusterStackController>());
        var leaseLost = new CancellationTokenSource();
        var controller = services.Controller("appdeployment-cluster", new LeaseBoundReconciler(reconciler, leaseLost.Token), workers: 2, out var clusterQueue);
        queue = clusterQueue;
        Connect(informer, clusterQueue);
        // The stacks' Deployments, StatefulSets, Jobs and Pods are watched: a change reconciles its stack at once.
        var workloads = new WorkloadWatch(client, logging);
        Task RunAsync(CancellationToken token) => Task.WhenAll(controller.RunAsync(token), workloads.RunAsync(clusterQueue.Add, token));
        return new Runnable("runtime kubernetes controller", async token =>
        {
            using (leaseLost)
            {
                await informer.WaitForSyncAsync(token);
                if (!options.LeaderElect)
                {
                    log.LogInformation("Reconciling the AppDeployments of runtime kubernetes (no leader election: this instance alone)");
                    await RunAsync(token);
                    return;
                }

                var elector = await CreateElectorAsync(client, options, ClusterLease, log, token);
                services.Metrics.SetLeader(ClusterLease, false);
                var acquired = await elector.AcquireAsync(yieldToLiveHolder: false, token);
                if (!acquired.Acquired)
                {
                    return;
                }

                services.Metrics.SetLeader(ClusterLease, true);
                log.LogInformation("Acquired lease {Lease}; reconciling the AppDeployments of runtime kubernetes", elector.Name);
                using var working = CancellationTokenSource.CreateLinkedTokenSource(token, leaseLost.Token);
                using var holding = new CancellationTokenSource();
                var renewing = elector.HoldAsync(holding.Token);
                var running = RunAsync(working.Token);
                if (await Task.WhenAny(running, renewing) == renewing && await renewing is { } reason)
                {
                    services.Metrics.SetLeader(ClusterLease, false);
                    await leaseLost.CancelAsync();
                    await Task.WhenAny(running, Task.Delay(OperatorHost.StopAfterLostLease, CancellationToken.None));
                    log.LogError("Lost lease {Lease}: {Reason}; exiting so that the supervisor restarts this one", elector.Name, reason);
                    throw new LeaseLostException($"lost lease {elector.Name}: {reason}; exiting so that the supervisor restarts this one");
                }

                try
                {
                    await running;
                }
                finally
                {
                    await holding.CancelAsync();
                    await renewing;
                    services.Metrics.SetLeader(ClusterLease, false);
                    // Stopped: another instance takes the cluster's stacks at once rather than after the lease expires.
                    using var release = new CancellationTokenSource(options.Lease.RenewDeadline);
                    await elector.ReleaseAsync(release.Token);
                }
            }
        });
    }

    /// <summary>The Lease of the one instance that reconciles runtime: kubernetes stacks.</summary>
    public const string ClusterLease = "skiff-cluster";

    private static Task<LeaseElector> CreateElectorAsync(IKubernetes client, KubernetesRunOptions options, ILogger log, CancellationToken ct) =>
        CreateElectorAsync(client, options, $"skiff-{options.Node}", log, ct);

    private static async Task<LeaseElector> CreateElectorAsync(IKubernetes client, KubernetesRunOptions options, string name, ILogger log, CancellationToken ct)
    {
        var ns = options.LeaderElectionNamespace
            ?? (File.Exists("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
                ? (await File.ReadAllTextAsync("/var/run/secrets/kubernetes.io/serviceaccount/namespace", ct)).Trim()
                : "skiff-system");
        var identity = $"{Environment.MachineName}_{Guid.NewGuid():N}"[..Math.Min(63, Environment.MachineName.Length + 33)];
        var elector = new LeaseElector(new LeaseLock(client, ns, name, identity), options.Lease, log);
        elector.NewLeader += leader => log.LogInformation("Lease {Lease} is held by {Leader}", elector.Name, leader);
        return elector;
    }

    /// <summary>Runs each reconcile under the lease: when the lease is given up, in-flight reconciles are cancelled.</summary>
    private sealed class LeaseBoundReconciler(IReconciler inner, CancellationToken lease) : IReconciler
    {
        public async Task<ReconcileResult> ReconcileAsync(ObjectKey key, CancellationToken cancellationToken)
        {
            using var both = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, lease);
            try
            {
                return await inner.ReconcileAsync(key, both.Token);
            }
            catch (OperationCanceledException) when (lease.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                // Not a failure of the object: this instance stopped serving the node.
                return ReconcileResult.Done;
            }
        }
    }
}
