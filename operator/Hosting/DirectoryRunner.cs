using Microsoft.Extensions.Logging;
using Skiff.Api;
using Skiff.Docker;
using Skiff.ImageGC;
using Skiff.Reconcile;
using Skiff.Runtime;
using Skiff.State;
using Skiff.Sources.Directory;
using Skiff.Sources.Git;
using Skiff.Sources;

namespace Skiff.Hosting;

/// <summary>Options of <c>skiff run</c> with the directory source; <c>SourceName</c> (<c>--source-name</c>) names the source instead of the folder's path (<see cref="FolderIdentity"/>).</summary>
public sealed record DirectoryRunOptions(
    string Path,
    string Node,
    string? DockerHost,
    string StateDir,
    bool Once,
    string MetricsBindAddress,
    string HealthProbeBindAddress,
    string? SourceName = null)
{
    /// <summary>The live pull lines and the status table of <c>--once</c>.</summary>
    public required RunConsole Console { get; init; }

    /// <summary>How long one image pull may take (<c>--pull-timeout</c>).</summary>
    public TimeSpan PullTimeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>The subnets of stack networks (<c>--network-pool</c>, <c>--network-prefix</c>).</summary>
    public NetworkPool NetworkPool { get; init; } = NetworkPool.Default;

    /// <summary>The node proxy (<c>--proxy-image</c>), or null: apps publish their ports themselves.</summary>
    public NodeProxySettings? Proxy { get; init; }

    /// <summary>The Git source in front of the folder logic (<c>--source git</c>); then <see cref="Path"/> is unused.</summary>
    public GitFeedPlan? Git { get; init; }

    /// <summary>Where certificates for the stacks' domains come from (<c>--acme-directory</c>, <c>--acme-email</c>).</summary>
    public Acme.AcmeOptions Acme { get; init; } = new();

    /// <summary>The age identity file that decrypts Secret values kept in <c>*.age</c> files (<c>--age-key-file</c>), or null.</summary>
    public string? AgeKeyFile { get; init; }
}

/// <summary>
/// The embedded default: a folder of resources and the local Docker engine, no cluster. Owns the
/// state folder's lock for its whole life.
/// </summary>
public static class DirectoryRunner
{
    public static async Task<int> RunAsync(DirectoryRunOptions options, ILoggerFactory logging, TextWriter output, TextWriter error, CancellationToken ct)
    {
        var log = logging.CreateLogger("Skiff.Run");
        // The node in the scope of every log line from here on (the workers, the informers and image GC start below,
        // so they inherit it): several nodes' logs can be told apart where they are collected.
        using var nodeScope = log.BeginScope(new Dictionary<string, object> { ["Node"] = options.Node });
        if (options.Git is null && !System.IO.Directory.Exists(options.Path))
        {
            error.WriteLine($"--path: folder {options.Path} does not exist");
            return ExitCodes.UsageOrIo;
        }

        if (options.SourceName is { } name && FolderIdentity.CheckName(name) is { } nameProblem)
        {
            error.WriteLine($"--source-name: {nameProblem}");
            return ExitCodes.UsageOrIo;
        }

        AgeCli? age = null;
        if (options.AgeKeyFile is { } keyFile)
        {
            age = new AgeCli(Path.GetFullPath(keyFile), TimeSpan.FromSeconds(30));
            var (recipient, keyProblem) = await age.RecipientAsync(ct);
            if (keyProblem is not null)
            {
                error.WriteLine($"--age-key-file: {keyProblem}");
                return ExitCodes.UsageOrIo;
            }

            // The path and the public key only: never the file's content.
            log.LogInformation("Decrypting *.age Secret files with the key in {AgeKeyFile} (recipient {Recipient})", age.KeyFile, recipient);
        }

        var state = new StateStore(options.StateDir);
        var purpose = options.Git is { } plan ? $"skiff run --source git --url {plan.Remote.DisplayUrl}" : $"skiff run --path {FolderIdentity.CanonicalPath(options.Path)}";
        var stateLock = Preflight.LockState(state, purpose, error, out var lockExit);
        if (stateLock is null)
        {
            return lockExit;
        }

        Observability.StartupTrace.Mark("state locked");
        await using var services = new OperatorServices(logging);
        Observability.StartupTrace.Mark("operator services (metrics)");
        using (stateLock)
        using (var engine = new DockerEngine(options.DockerHost, services.Metrics.Docker) { NetworkPool = options.NetworkPool })
        {
            // Reading and validating the folder and the engine's first answer are both mostly one-time JIT
            // work at start-up: on another core, the first overlaps the second (about 0.1 s per start).
            // The Git source: its first good commit before anything reads the folder it serves.
            var sourceId = options.Git is { } gitPlan ? GitRemote.SourceId(gitPlan.Identity, options.SourceName) : null;
            var git = options.Git is null ? null : await GitFeed.StartAsync(options.Git, state, sourceId!, services, options.Once, error, ct);
            if (git is { Commit: null })
            {
                // run --once and no good commit at all: nothing to serve (serving nothing would prune).
                return ct.IsCancellationRequested ? ExitCodes.Ok : git.LastError?.Reason == GitSource.InvalidCommit ? ExitCodes.NotOk : ExitCodes.UsageOrIo;
            }

            Observability.StartupTrace.Mark("docker client");
            var source = new DirectorySource(git?.FolderPath ?? options.Path, logging.CreateLogger<DirectorySource>(), followLink: git is not null, age);
            var scan = Task.Run(() => { var changed = source.Rescan(); Observability.StartupTrace.Mark("folder read"); return changed; }, CancellationToken.None);
            // A long-running operator starts its HTTP server (Kestrel) now too, beside them: also mostly one-time JIT and
            // type loading. /readyz says 503 until the folder is read and the engine answers, as before; /status shows
            // image GC once it exists.
            ImageGcService? gcForStatus = null;
            // Ready only once the controllers run, not when the server is up: an engine lost before that ends the run.
            var serving = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var http = options.Once ? null : Task.Run(() => StartHttpAsync(source, git, state, engine, () => gcForStatus, () => serving.Task.IsCompleted, services, options, log, ct), CancellationToken.None);
            var answers = await Preflight.EngineAnswersAsync(engine, log, error, ct);
            Observability.StartupTrace.Mark("engine answered");
            await scan;
            if (http is not null)
            {
                try
                {
                    await http;
                }
                catch (Exception) when (!answers)
                {
                    // The engine's absence is what is reported (it was checked first before the server started early).
                }
            }

            if (!answers)
            {
                return ExitCodes.Unreachable;
            }
            using var proxy = options.Proxy?.Create(state.Root, options.Node, logging);
            var context = new StackContext(options.Node, sourceId ?? FolderIdentity.SourceId(source.Path, options.SourceName), git?.Describe(git.Commit) ?? source.Path) { PullTimeout = options.PullTimeout, Proxy = proxy is not null };
            var identity = options.SourceName ?? options.Git?.Identity ?? source.Path;
            // Image GC first: the reconciler shares its engine lock and disk guard, and triggers its pass after each
            // rollout. Waiting rollouts are requeued when the guard changes (nothing to requeue in --once).
            var requeueAll = () => { };
            var gc = await CreateGcAsync(source, state, engine, options.Node, services, () => requeueAll(), ct);
            gcForStatus = gc;
            Observability.StartupTrace.Mark("image GC created");
            var secrets = new FolderSecretSource(state, source.GetSecret, source.GetSecretType);
            var backups = new NodeBackups();
            // The stacks read their containers from a copy the engine's events keep current: a resync of every stack
            // lists nothing (--once reads the engine, as the copy is never started there).
            var containers = new CachedContainerEngine(engine, engine, logging.CreateLogger<CachedContainerEngine>());
            using var stacks = new StackReconciler(
                containers,
                secrets,
                context,
                new LoggingEventSink(logging.CreateLogger<LoggingEventSink>(), state),
                logging.CreateLogger<StackReconciler>(),
                services.StackServices(gc, options.Console.Display) with { Routes = proxy, ReportBackups = backups.Ledger.Apply, ReportCertificates = proxy is null ? null : proxy.ReportCertificates, ProvideCertificates = proxy is null ? null : proxy.ProvideCertificatesAsync });
            IStackStore store = new FolderStackStore(source, state, context, identity, logging.CreateLogger<FolderStackStore>());
            var reconciler = new StackController(
                git is null ? store : new GitStackStore(store, git, new GitBuilds(git, new ImageBuilder(engine), options.Node, logging.CreateLogger<GitBuilds>())),
                stacks,
                services.Report,
                logging.CreateLogger<StackController>());
            Observability.StartupTrace.Mark("reconciler built");
            log.LogInformation(
                "Serving node {Node} from {Path} as source {SourceName} ({SourceId}; state in {StateDir})",
                options.Node, git?.Describe(git.Commit) ?? source.Path, identity, context.SourceId, state.Root);

            try
            {
                await NodeProxySettings.StartAsync(proxy, engine, state.Root, log, ct);
                var keys = await KeysAsync(source, state, stacks, options.Node, ct);
                Observability.StartupTrace.Mark("keys (stacks listed)");
                if (options.Once)
                {
                    var exit = await RunOnceAsync(source, state, reconciler, keys, output, log, gc, options.PullTimeout, options.Console, engine, ct);
                    // A commit not served (the remote unreachable, an invalid commit): the stacks ran from the last good one.
                    return git?.LastError is null ? exit : Math.Max(exit, ExitCodes.NotOk);
                }

                var controller = services.Controller("appdeployment", reconciler, workers: 4, out var queue);
                using var disposeQueue = queue;
                requeueAll = () =>
                {
                    foreach (var record in state.ReadAll().Where(r => r.Node == options.Node))
                    {
                        queue.Add(new ObjectKey(record.Namespace, record.Name));
                    }
                };
                var backupRunnable = backups.Runnable(
                    () => [.. source.Entries().Select(e => e.Resource).OfType<AppDeployment>()], secrets, context, engine, stacks.Events,
                    names => queue.Add(new ObjectKey(names.Namespace, names.Name)), services,
                    () => ImageGcPlanner.ResolvePolicy(source.Policies(), options.Node, out _).HighThresholdPercent);
                // A container that died or changed health outside a rollout: its stack is looked at now, not at its next health period.
                containers.StackChanged = stack => queue.Add(ObjectKey.Parse(stack));
                return await RunForeverAsync(source, git, state, engine, containers, controller, queue, gc, keys, services, options, proxy, backupRunnable, serving, log, ct);
            }
            catch (EngineUnreachableException e)
            {
                error.WriteLine($"skiff run: {e.Message}");
                return ExitCodes.Unreachable;
            }
        }
    }

    /// <summary>
    /// A new commit is served: the folder is read again, the resources whose document changed or went are queued, and
    /// every other one too, for its <c>status.source</c> to name the new commit.
    /// </summary>
    private static void QueueCommit(DirectorySource source, WorkQueue<ObjectKey> queue)
    {
        foreach (var key in source.Rescan().Concat(source.Entries().Select(e => e.Key)).Distinct())
        {
            queue.Add(key);
        }
    }

    /// <summary>Every key to look at: the folder's resources plus stacks and records that lost their document (to prune).</summary>
    private static async Task<List<ObjectKey>> KeysAsync(DirectorySource source, StateStore state, StackReconciler stacks, string node, CancellationToken ct)
    {
        var keys = source.Entries().Where(e => e.Resource is null || e.Resource.Spec.Node == node).Select(e => e.Key).ToList();
        // Records another source mirrored here (the Kubernetes source, on a node that used both) are not this folder's to prune.
        keys.AddRange(state.ReadAll().Where(r => r.Node == node && (r.Source is null || r.Source == stacks.Context.SourceId))
            .Select(r => new ObjectKey(r.Namespace, r.Name)));
        foreach (var stack in await stacks.ListStacksAsync(ct))
        {
            var slash = stack.IndexOf('/', StringComparison.Ordinal);
            if (slash > 0)
            {
                keys.Add(new ObjectKey(stack[..slash], stack[(slash + 1)..]));
            }
        }

        return keys.Distinct().ToList();
    }

    /// <summary>The node's image GC with the folder's ImageGCPolicy (or the built-in one) and records, for either mode.</summary>
    private static Task<ImageGcService> CreateGcAsync(
        DirectorySource source, StateStore state, DockerEngine engine, string node, OperatorServices services, Action requeueAll, CancellationToken ct) =>
        ImageGcService.CreateAsync(
            engine,
            state,
            node,
            () => [.. state.ReadAll().Where(r => r.Node == node).Select(r => DeploymentImagesFrom.Status(r.Namespace, r.Name, r.Spec, r.Status))],
            _ =>
            {
                var policy = ImageGcPlanner.ResolvePolicy(source.Policies(), node, out var warning);
                return Task.FromResult(new PolicyChoice(policy, warning));
            },
            new FolderGcReporter(state),
            services,
            requeueAll,
            ct);

    private static async Task<int> RunOnceAsync(
        DirectorySource source, StateStore state, StackController reconciler, List<ObjectKey> keys, TextWriter output, ILogger log,
        ImageGcService gc, TimeSpan pullTimeout, RunConsole console, DockerEngine engine, CancellationToken ct)
    {
        IReadOnlyCollection<ObjectKey> failed;
        using (var following = CancellationTokenSource.CreateLinkedTokenSource(ct))
        {
            try
            {
                failed = await OnceRun.ReconcileAllAsync(
                    reconciler, keys, key => Conditions.RolloutInProgress(state.Read(key.Namespace ?? "default", key.Name)?.Status),
                    OnceRun.Deadline(source.Entries().Select(e => e.Resource?.Spec).OfType<AppDeploymentSpec>(), pullTimeout), log, ct,
                    StackWake.Follow(engine, log, following.Token));
            }
            finally
            {
                // The event stream ends with the rollouts, however they ended.
                await following.CancelAsync();
            }
        }

        // One GC pass, as a long-running skiff run makes after its rollouts: a node deployed only by
        // `run --once` (from CI or cron) collects its old images too. Its failure never fails the run.
        await gc.Loop.RunPassAsync("skiff run --once", ct);

        var shown = keys.Select(k => state.Read(k.Namespace ?? "default", k.Name)).OfType<StatusRecord>().ToList();
        return OnceRun.Report(shown, source.Problems, failed, output, console.PrintTable);
    }

    /// <summary>The probes (ready once <paramref name="source"/> is read and the engine answers), <c>/metrics</c>, <c>/status</c> and the Git source's <c>/sync</c>.</summary>
    private static async Task StartHttpAsync(
        DirectorySource source,
        GitSource? git,
        StateStore state,
        DockerEngine engine,
        Func<ImageGcService?> gc,
        Func<bool> serving,
        OperatorServices services,
        DirectoryRunOptions options,
        ILogger log,
        CancellationToken ct)
    {
        var node = options.Node;
        services.AddStandardChecks(() => source.HasSynced && serving(), engine);
        Observability.StartupTrace.Mark("http starting");
        await services.StartHttpAsync(
            options.MetricsBindAddress,
            options.HealthProbeBindAddress,
            git is null
                ? () => new FolderOperatorStatus(source.Path, node, state.ReadAll(), source.Problems, gc()?.Loop.LastReport)
                : () => new FolderOperatorStatus(git.Describe(git.Commit), node, state.ReadAll(), source.Problems, gc()?.Loop.LastReport) { Git = git.Status() },
            ct,
            git is null ? null : new Dictionary<string, Microsoft.AspNetCore.Http.RequestDelegate> { ["/sync"] = GitFeed.SyncEndpoint(git, options.Git!.WebhookSecret, log) });
        Observability.StartupTrace.Mark("http started");
    }

    private static async Task<int> RunForeverAsync(
        DirectorySource source,
        GitSource? git,
        StateStore state,
        DockerEngine engine,
        CachedContainerEngine containers,
        Controller controller,
        WorkQueue<ObjectKey> queue,
        ImageGcService gc,
        List<ObjectKey> keys,
        OperatorServices services,
        DirectoryRunOptions options,
        NodeProxy? proxy,
        Runnable backups,
        TaskCompletionSource serving,
        ILogger log,
        CancellationToken ct)
    {
        foreach (var key in keys)
        {
            queue.Add(key);
        }

        serving.TrySetResult();

        using var lost = new CancellationTokenSource();
        return await new OperatorHost(services, log).RunAsync(
            [
                git is null
                    ? new Runnable("folder watch", token => source.WatchAsync(changed => { foreach (var key in changed) { queue.Add(key); } }, TimeSpan.FromSeconds(30), token))
                    : new Runnable("git sync", token => git.RunAsync(_ => QueueCommit(source, queue), token)),
                new Runnable("container copy", containers.RunAsync),
                new Runnable("appdeployment controller", async token =>
                {
                    // As controller-runtime waits for its caches: the first pass over every stack reads the copy, not
                    // the engine once per stack (the engine down: the reads go to it, and say so).
                    await containers.WaitFirstSyncAsync(token);
                    await controller.RunAsync(token);
                }),
                new Runnable("restart and rollback requests", token => FolderRequests.WatchAsync(state, key => queue.Add(key), token)),
                new Runnable("image GC", token => gc.RunAsync(engine, log, token, t => ImageGcService.AfterFirstPassAsync(containers, queue, t)).ContinueWith(_ => { }, TaskScheduler.Default)),
                backups,
                .. NodeProxySettings.Runnables(proxy, engine, options.Acme, state.Root, services),
            ],
            lease: null,
            lost,
            TextWriter.Null,
            ct);
    }
}
