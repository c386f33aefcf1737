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
/// Carries out a <see cref="GcPlan"/> through an <see cref="IImageStore"/>. Under pressure it removes
/// images in plan order one by one, re-measuring the disk after each removal because the plan's
/// projection cannot know which layers are shared; without pressure every planned image goes, so it
/// removes <see cref="RemovalConcurrency"/> at a time and measures once at the end.
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
    /// <summary>Removals in flight at once when there is no disk pressure (under pressure: one).</summary>
    public const int RemovalConcurrency = 4;

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
        var outcomes = new List<(int Index, GcDecision Decision, RemoveOutcome? Outcome, string? Message)>();
        var disk = before;
        if (plan.UnderPressure)
        {
            // One by one, re-measuring: stop as soon as the disk is below the low threshold.
            var index = 0;
            foreach (var decision in queue)
            {
                if (!disk.AtOrAbove(disk.UsedBytes, policy.LowThresholdPercent))
                {
                    break;
                }

                ct.ThrowIfCancellationRequested();
                var (outcome, message) = await RemoveAsync(decision, ct).ConfigureAwait(false);
                outcomes.Add((index++, decision, outcome, message));
                if (outcome == RemoveOutcome.Removed)
                {
                    disk = await store.MeasureAsync(ct).ConfigureAwait(false);
                    logger.LogInformation("Image GC removed image {ImageId} ({Reason}: {Detail}); disk {Percent:0.0}% used",
                        decision.Image.Id, decision.Reason, decision.Detail, disk.Percent);
                }
            }
        }
        else
        {
            // Without pressure the whole list goes: a few at a time, as the daemon removes layers of
            // different images independently. Results keep the plan's order.
            var options = new ParallelOptions { MaxDegreeOfParallelism = RemovalConcurrency, CancellationToken = ct };
            await Parallel.ForEachAsync(queue.Select((d, i) => (Decision: d, Index: i)), options, async (item, token) =>
            {
                var (outcome, message) = await RemoveAsync(item.Decision, token).ConfigureAwait(false);
                if (outcome == RemoveOutcome.Removed)
                {
                    logger.LogInformation("Image GC removed image {ImageId} ({Reason}: {Detail})", item.Decision.Image.Id, item.Decision.Reason, item.Decision.Detail);
                }

                lock (outcomes)
                {
                    outcomes.Add((item.Index, item.Decision, outcome, message));
                }
            }).ConfigureAwait(false);
            outcomes.Sort((a, b) => a.Index.CompareTo(b.Index));
            disk = await store.MeasureAsync(ct).ConfigureAwait(false);
        }

        var removed = outcomes.Where(o => o.Outcome == RemoveOutcome.Removed).Select(o => o.Decision).ToList();
        var skipped = outcomes.Where(o => o.Outcome is { } x && x != RemoveOutcome.Removed).Select(o => new GcSkip(o.Decision, o.Message!)).ToList();
        var failed = outcomes.Where(o => o.Outcome is null).Select(o => new GcSkip(o.Decision, o.Message!)).ToList();

        var aboveHigh = disk.AtOrAbove(disk.UsedBytes, policy.HighThresholdPercent);
        var belowLow = !disk.AtOrAbove(disk.UsedBytes, policy.LowThresholdPercent);
        // Debug: the caller writes the one summary line per run, with the trigger and policy.
        logger.LogDebug("Image GC removed {Removed} images, skipped {Skipped}, failed {Failed}; disk {Before:0.0}% -> {After:0.0}%",
            removed.Count, skipped.Count, failed.Count, before.Percent, disk.Percent);
        return new GcRunResult(false, removed, skipped, failed, [], before, disk, plan.UnderPressure, aboveHigh, belowLow);
    }

    /// <summary>Removes one image; a null outcome is a failure, with the error's message.</summary>
    private async Task<(RemoveOutcome? Outcome, string Message)> RemoveAsync(GcDecision decision, CancellationToken ct)
    {
        var id = decision.Image.Id;
        RemoveResult result;
        try
        {
            result = await store.RemoveImageAsync(id, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            logger.LogWarning(e, "Image GC could not remove image {ImageId} ({Reason})", id, decision.Reason);
            return (null, e.Message);
        }

        if (result.Outcome != RemoveOutcome.Removed)
        {
            logger.LogInformation("Image GC skipped image {ImageId}: {Outcome} {Message}", id, result.Outcome, result.Message);
            return (result.Outcome, result.Message is null ? result.Outcome.ToString() : $"{result.Outcome}: {result.Message}");
        }

        return (RemoveOutcome.Removed, "");
    }
}
