using Microsoft.Extensions.Logging;
using Skiff.Docker;
using Skiff.ImageGC;
using Skiff.Reconcile;
using Skiff.Runtime;
using Skiff.State;

namespace Skiff.Hosting;

/// <summary>
/// A node's image GC inside <c>skiff run</c>, the same for both sources: the loop, the engine-event
/// tracker, the disk guard, and their hooks into the reconciler (the engine lock, the trigger after
/// each successful rollout, the guard that holds new rollouts).
/// </summary>
/// <remarks>
/// <b>skiff gc beside skiff run.</b> Both take the state folder's lock (a real pass; a dry run
/// only reads), so they never collect at once and never write the first-seen file together; the
/// engine lock only works inside one process, which is the process holding that state lock.
/// </remarks>
public sealed class ImageGcService
{
    private ImageGcService(ImageGcLoop loop, DiskGuard guard, ImageActivityTracker tracker, ImageEngineLock engineLock)
    {
        Loop = loop;
        Guard = guard;
        Tracker = tracker;
        EngineLock = engineLock;
    }

    public ImageGcLoop Loop { get; }

    public DiskGuard Guard { get; }

    public ImageActivityTracker Tracker { get; }

    /// <summary>The node's engine lock: rollouts hold a use lease on the images they pull and start (see <see cref="StackServices"/>).</summary>
    public ImageEngineLock EngineLock { get; }

    /// <summary>
    /// Builds the node's GC. <paramref name="requeueAll"/> is called when the disk guard is raised or cleared, so every
    /// AppDeployment of the node gets its DiskPressure condition and waiting rollouts start.
    /// </summary>
    public static async Task<ImageGcService> CreateAsync(
        DockerEngine engine,
        StateStore state,
        string node,
        Func<IReadOnlyList<DeploymentImages>> deployments,
        Func<CancellationToken, Task<PolicyChoice>> policies,
        IGcReporter reporter,
        OperatorServices services,
        Action requeueAll,
        CancellationToken ct,
        IDiskMeter? meter = null)
    {
        var log = services.Logging.CreateLogger<ImageGcService>();
        meter ??= new DataRootDiskMeter(engine);
        var firstSeen = await FirstSeenStore.LoadAsync(state.FirstSeenPath, ct);
        if (firstSeen.LoadWarning is { } warning)
        {
            log.LogWarning("Image GC: {Warning}", warning);
        }

        var guard = new DiskGuard();
        var engineLock = new ImageEngineLock();
        var pass = new ImageGcPass(new DockerImageStore(engine, meter), firstSeen, engineLock, deployments, services.Logging.CreateLogger<GcExecutor>());
        var loop = new ImageGcLoop(pass, meter, guard, policies, reporter, node, services.Metrics, services.Logging.CreateLogger<ImageGcLoop>());
        guard.Changed += raised =>
        {
            log.Log(raised ? LogLevel.Warning : LogLevel.Information, "Disk guard {State} on node {Node}: {Message}",
                raised ? "raised" : "cleared", node, guard.Message);
            requeueAll();
        };
        return new ImageGcService(loop, guard, new ImageActivityTracker(firstSeen, ImageActivityTracker.EngineResolver(engine)), engineLock);
    }

    /// <summary>
    /// The <c>startAfter</c> of a long-running operator's loop (<see cref="ImageGcLoop.RunAsync"/>): the stacks' first
    /// pass has begun everywhere, i.e. the container copy's first list landed and every queued stack went to a worker.
    /// </summary>
    public static async Task AfterFirstPassAsync(CachedContainerEngine containers, WorkQueue<ObjectKey> queue, CancellationToken ct)
    {
        await containers.WaitFirstSyncAsync(ct);
        while (queue.Len > 0)
        {
            await Task.Delay(StackAction.PollInterval, ct);
        }
    }

    /// <summary>Runs the loop and the event tracker until <paramref name="ct"/> ends.</summary>
    public Task RunAsync(DockerEngine engine, ILogger logger, CancellationToken ct, Func<CancellationToken, Task>? startAfter = null) =>
        Task.WhenAll(
            Task.Run(() => Tracker.FollowAsync(engine, logger, ct), CancellationToken.None),
            Task.Run(() => Loop.RunAsync(ct, startAfter), CancellationToken.None));
}
