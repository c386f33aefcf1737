using Microsoft.Extensions.Logging;

namespace Skiff.ImageGC;

/// <summary>An image the executor did not remove, and why (the engine's answer or the error).</summary>
public sealed record GcSkip(GcDecision Decision, string Reason);

/// <summary>
/// What one GC pass did: the figures DESIGN §4 asks every run to report (status, events, metrics,
/// logs). <see cref="BytesReclaimed"/> is measured on the disk, not summed from image sizes,
/// because images share layers.
/// </summary>
public sealed record GcRunResult(
    bool DryRun,
    IReadOnlyList<GcDecision> Removed,
    IReadOnlyList<GcSkip> Skipped,
    IReadOnlyList<GcSkip> Failed,
    IReadOnlyList<GcDecision> WouldRemove,
    DiskUsage Before,
    DiskUsage After,
    bool StartedUnderPressure,
    bool AboveHighThreshold,
    bool ReachedLowThreshold)
{
    /// <summary>How much the disk usage fell during the pass (never negative).</summary>
    public long BytesReclaimed => Math.Max(0, Before.UsedBytes - After.UsedBytes);

    /// <summary>
    /// Whether the pass did all it had to: no removal failed and, when it started under pressure,
    /// usage ended below the low threshold. <c>skiff gc</c> exits 1 otherwise.
    /// </summary>
    public bool Complete => Failed.Count == 0 && (!StartedUnderPressure || ReachedLowThreshold || DryRun);
}

/// <summary>
/// Carries out a <see cref="GcPlan"/>: removes images in plan order through an
/// <see cref="IImageStore"/>, re-measuring the disk after each removal because the plan's
/// projection cannot know which layers are shared.
/// </summary>
/// <remarks>
/// <para><b>Guarantees.</b> Only images in <see cref="GcPlan.Delete"/> are removed, plus, under
/// pressure, the plan's <see cref="GcReason.BelowLowThreshold"/> reserve (already in LRU order)
/// when the real disk freed less than projected. Under pressure it stops as soon as the measured
/// usage is below the low threshold. A dry run removes nothing. A removal that fails is recorded
/// and the pass goes on: one stuck image must not keep the disk full.</para>
/// <para><b>Caveats.</b> Cancellation throws and leaves the images removed so far removed.
/// A failing disk measurement throws: without it, a pass under pressure cannot know when to stop.</para>
/// </remarks>
public sealed class GcExecutor(IImageStore store, ILogger<GcExecutor> logger)
{
    public async Task<GcRunResult> ExecuteAsync(GcPlan plan, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(plan);
        var policy = plan.Policy;
        var before = await store.MeasureAsync(ct).ConfigureAwait(false);
        if (policy.DryRun)
        {
            logger.LogInformation("Image GC dry run: would remove {Count} images ({Bytes} bytes)", plan.Delete.Count, plan.PlannedBytes);
            return new GcRunResult(true, [], [], [], plan.Delete, before, before, plan.UnderPressure,
                before.AtOrAbove(before.UsedBytes, policy.HighThresholdPercent), !before.AtOrAbove(before.UsedBytes, policy.LowThresholdPercent));
        }

        var queue = plan.UnderPressure
            ? plan.Delete.Concat(plan.Kept.Where(k => k.Reason == GcReason.BelowLowThreshold))
            : plan.Delete;
        var removed = new List<GcDecision>();
        var skipped = new List<GcSkip>();
        var failed = new List<GcSkip>();
        var disk = before;
        foreach (var decision in queue)
        {
            if (plan.UnderPressure && !disk.AtOrAbove(disk.UsedBytes, policy.LowThresholdPercent))
            {
                break;
            }

            ct.ThrowIfCancellationRequested();
            var id = decision.Image.Id;
            RemoveResult result;
            try
            {
                result = await store.RemoveImageAsync(id, ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                logger.LogWarning(e, "Image GC could not remove image {ImageId} ({Reason})", id, decision.Reason);
                failed.Add(new GcSkip(decision, e.Message));
                continue;
            }

            if (result.Outcome != RemoveOutcome.Removed)
            {
                logger.LogInformation("Image GC skipped image {ImageId}: {Outcome} {Message}", id, result.Outcome, result.Message);
                skipped.Add(new GcSkip(decision, result.Message is null ? result.Outcome.ToString() : $"{result.Outcome}: {result.Message}"));
                continue;
            }

            removed.Add(decision);
            disk = await store.MeasureAsync(ct).ConfigureAwait(false);
            logger.LogInformation("Image GC removed image {ImageId} ({Reason}: {Detail}); disk {Percent:0.0}% used",
                id, decision.Reason, decision.Detail, disk.Percent);
        }

        var aboveHigh = disk.AtOrAbove(disk.UsedBytes, policy.HighThresholdPercent);
        var belowLow = !disk.AtOrAbove(disk.UsedBytes, policy.LowThresholdPercent);
        // Debug: the caller writes the one summary line per run, with the trigger and policy.
        logger.LogDebug("Image GC removed {Removed} images, skipped {Skipped}, failed {Failed}; disk {Before:0.0}% -> {After:0.0}%",
            removed.Count, skipped.Count, failed.Count, before.Percent, disk.Percent);
        return new GcRunResult(false, removed, skipped, failed, [], before, disk, plan.UnderPressure, aboveHigh, belowLow);
    }
}
