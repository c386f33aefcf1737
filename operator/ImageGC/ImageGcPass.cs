using Microsoft.Extensions.Logging;
using Skiff.Reconcile;

namespace Skiff.ImageGC;

/// <summary>What one GC pass planned and did.</summary>
/// <param name="Plan">The planner's decisions (for dry-run listings and reports).</param>
/// <param name="Run">What the executor removed, skipped and measured.</param>
/// <param name="BuildCacheBytes">Bytes the build-cache prune reclaimed (pruneBuildCache), else 0.</param>
/// <param name="Elapsed">How long the pass took, from listing the images to saving the first-seen times.</param>
public sealed record GcPassResult(GcPlan Plan, GcRunResult Run, long BuildCacheBytes, TimeSpan Elapsed = default);

/// <summary>
/// One image GC pass on a node, shared by the loop of <c>skiff run</c> and by <c>skiff gc</c>:
/// gather a snapshot (images with first-seen and last-used times, every container, the node's
/// AppDeployments, the images being pulled or started, the disk), plan, and execute under the
/// node's <see cref="ImageEngineLock"/>.
/// </summary>
public sealed class ImageGcPass(
    IGcEngine engine,
    FirstSeenStore firstSeen,
    ImageEngineLock engineLock,
    Func<IReadOnlyList<DeploymentImages>> deployments,
    ILogger<GcExecutor> logger,
    TimeProvider? timeProvider = null)
{
    private readonly TimeProvider time = timeProvider ?? TimeProvider.System;

    /// <summary>
    /// Restricts the images a pass considers (all of them are still recorded as seen). For tests on
    /// a shared engine, which must never touch images that are not theirs; null = every image.
    /// </summary>
    public Func<ImageInfo, bool>? Scope { get; init; }

    /// <summary>Leaves the first-seen file as it is (<c>skiff gc --dry-run</c>, which takes no lock).</summary>
    public bool ReadOnly { get; init; }

    public FirstSeenStore FirstSeen => firstSeen;

    /// <summary>The planner's input as the engine and the sources stand now.</summary>
    public async Task<GcInput> GatherAsync(GcPolicy policy, CancellationToken ct)
    {
        var images = await engine.ListImagesAsync(ct).ConfigureAwait(false);
        var containers = await engine.ListContainersAsync(ct).ConfigureAwait(false);
        var disk = await engine.MeasureAsync(ct).ConfigureAwait(false);
        var now = time.GetUtcNow();
        var known = firstSeen.Observe(images, now);
        if (Scope is { } scope)
        {
            known = [.. known.Where(scope)];
        }

        return new GcInput(known, containers, deployments(), engineLock.InUseNow(), policy, disk, now);
    }

    /// <summary>Plans and carries out one pass (a dry run when the policy says so); saves the first-seen times.</summary>
    public async Task<GcPassResult> RunAsync(GcPolicy policy, CancellationToken ct)
    {
        var started = time.GetTimestamp();
        var input = await GatherAsync(policy, ct).ConfigureAwait(false);
        var plan = ImageGcPlanner.Plan(input);
        var run = await ExecuteAsync(plan, ct).ConfigureAwait(false);
        long cache = 0;
        if (policy.PruneBuildCache && !policy.DryRun)
        {
            try
            {
                cache = await engine.PruneBuildCacheAsync(ct).ConfigureAwait(false);
                run = run with { After = await engine.MeasureAsync(ct).ConfigureAwait(false) };
                run = run with
                {
                    AboveHighThreshold = run.After.AtOrAbove(run.After.UsedBytes, policy.HighThresholdPercent),
                    ReachedLowThreshold = !run.After.AtOrAbove(run.After.UsedBytes, policy.LowThresholdPercent),
                };
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                logger.LogWarning(e, "Image GC could not prune the build cache");
            }
        }

        try
        {
            if (!ReadOnly)
            {
                await firstSeen.SaveAsync(ct).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            logger.LogWarning("Image GC could not save first-seen times to {Path}: {Message}", firstSeen.Path, e.Message);
        }

        return new GcPassResult(plan, run, cache, time.GetElapsedTime(started));
    }

    /// <summary>Carries out a plan, each removal under the node's exclusive engine lock.</summary>
    public Task<GcRunResult> ExecuteAsync(GcPlan plan, CancellationToken ct) =>
        new GcExecutor(new LockedStore(engine, engineLock), logger).ExecuteAsync(plan, ct);

    /// <summary>
    /// Each removal under the exclusive engine lock. No recheck of the rollouts' images is needed
    /// under it: it excludes every use lease, and a rollout releases its lease only once its
    /// containers exist, from when on the engine itself refuses (409) to remove their images.
    /// </summary>
    private sealed class LockedStore(IImageStore inner, ImageEngineLock engineLock) : IImageStore
    {
        public Task<IReadOnlyList<ImageInfo>> ListImagesAsync(CancellationToken ct) => inner.ListImagesAsync(ct);

        public Task<DiskUsage> MeasureAsync(CancellationToken ct) => inner.MeasureAsync(ct);

        public async Task<RemoveResult> RemoveImageAsync(string id, CancellationToken ct)
        {
            using var removal = await engineLock.EnterRemovalAsync(ct).ConfigureAwait(false);
            return await inner.RemoveImageAsync(id, ct).ConfigureAwait(false);
        }
    }
}
