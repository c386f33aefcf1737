using System.Globalization;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Logging;
using Skiff.Observability;
using Skiff.Reconcile;

namespace Skiff.ImageGC;

/// <summary>The policy in effect for this node, and why another one was not (a Warning).</summary>
public sealed record PolicyChoice(GcPolicy Policy, string? Warning);

/// <summary>Where a node's GC reports go: a file in the state folder, or the ImageGCPolicy's status and an Event.</summary>
public interface IGcReporter
{
    Task ReportAsync(GcNodeReport report, CancellationToken ct);
}

/// <summary>
/// The node's image GC loop in <c>skiff run</c> (DESIGN §4): a pass after each successful rollout
/// (<see cref="Trigger"/>), every policy <c>interval</c>, and at once when usage crosses the high
/// threshold (a cheap disk reading every <see cref="PressureCheckInterval"/>). After each pass the
/// <see cref="DiskGuard"/> is raised when usage stays at or above the high threshold, and cleared
/// as soon as a reading is below it.
/// </summary>
/// <remarks>
/// <para><b>Guarantees.</b> A pass never throws into a rollout: errors are logged, counted as
/// <c>skiff_image_gc_runs_total{result="error"}</c> and reported, and the next trigger retries.
/// Passes never overlap. One summary log line per pass.</para>
/// <para><b>Caveats.</b> Under pressure that GC cannot relieve, passes repeat at most every
/// <see cref="PressureRetryAfter"/> rather than every reading.</para>
/// </remarks>
public sealed class ImageGcLoop(
    ImageGcPass pass,
    IDiskMeter meter,
    DiskGuard guard,
    Func<CancellationToken, Task<PolicyChoice>> policies,
    IGcReporter reporter,
    string node,
    SkiffMetrics? metrics,
    ILogger<ImageGcLoop> logger,
    TimeProvider? timeProvider = null)
{
    private readonly TimeProvider time = timeProvider ?? TimeProvider.System;
    private readonly SemaphoreSlim wake = new(0, 1);
    private readonly SemaphoreSlim running = new(1, 1);
    private readonly Lock gate = new();
    private string? pendingTrigger;
    private GcPolicy policy = GcPolicy.BuiltIn;
    private string? lastWarning;
    private DateTimeOffset? lastPass;
    private DateTimeOffset nextInterval;

    public TimeSpan PressureCheckInterval { get; init; } = TimeSpan.FromSeconds(5);

    public TimeSpan PressureRetryAfter { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>The last pass's report, for /status.</summary>
    public GcNodeReport? LastReport { get; private set; }

    /// <summary>The policy of the last pass.</summary>
    public GcPolicy Policy => policy;

    /// <summary>Asks for a pass soon (coalesced with other requests); never blocks, never throws.</summary>
    public void Trigger(string reason)
    {
        lock (gate)
        {
            pendingTrigger ??= reason;
        }

        if (wake.CurrentCount == 0)
        {
            try
            {
                wake.Release();
            }
            catch (SemaphoreFullException)
            {
            }
        }
    }

    /// <summary>The longest the startup pass waits for <c>startAfter</c> when the disk is not under pressure.</summary>
    public static readonly TimeSpan StartupWaitCap = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Runs until <paramref name="ct"/> ends: the first pass, then per trigger, interval and pressure. With
    /// <paramref name="startAfter"/> (the operator's first pass over its stacks), the first pass waits for it (at most
    /// <see cref="StartupWaitCap"/>) unless the disk is under pressure already: a restart's resync of hundreds of
    /// steady stacks and a full image pass (lists, a plan, the first use of the image models) competed
    /// for the same cores, and no rollout waits on a pass the disk does not need. A full disk is collected at once.
    /// </summary>
    public async Task RunAsync(CancellationToken ct, Func<CancellationToken, Task>? startAfter = null)
    {
        if (startAfter is not null)
        {
            await WaitForStartAsync(startAfter, ct).ConfigureAwait(false);
        }

        Skiff.Observability.StartupTrace.Mark("image GC: startup pass begins");
        await RunPassAsync("startup", ct).ConfigureAwait(false);
        Skiff.Observability.StartupTrace.Mark("image GC: startup pass done");
        var saved = pass.FirstSeen.Changes;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await wake.WaitAsync(PressureCheckInterval, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }

            string? trigger;
            lock (gate)
            {
                (trigger, pendingTrigger) = (pendingTrigger, null);
            }

            try
            {
                trigger ??= await CheckPressureAsync(ct).ConfigureAwait(false);
                if (trigger is null && time.GetUtcNow() >= nextInterval)
                {
                    trigger = "interval";
                }

                if (trigger is not null)
                {
                    await RunPassAsync(trigger, ct).ConfigureAwait(false);
                    saved = pass.FirstSeen.Changes;
                }
                else if (pass.FirstSeen.Changes != saved)
                {
                    // Events recorded since the last pass: keep them across a restart.
                    saved = pass.FirstSeen.Changes;
                    await pass.FirstSeen.SaveAsync(ct).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                logger.LogWarning("Image GC: disk check failed: {Message}", e.Message);
            }
        }
    }

    private async Task WaitForStartAsync(Func<CancellationToken, Task> startAfter, CancellationToken ct)
    {
        try
        {
            if (await CheckPressureAsync(ct).ConfigureAwait(false) is not null)
            {
                return;
            }
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            // The disk cannot be read: the pass finds out and reports it, at once as before.
            logger.LogDebug(e, "Image GC: disk check before the startup pass failed");
            return;
        }

        using var cap = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cap.CancelAfter(StartupWaitCap);
        try
        {
            await startAfter(cap.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            // Waited long enough: the pass runs now.
        }
    }

    /// <summary>The cheap reading: a pass when usage is at or above high; the guard cleared when below.</summary>
    internal async Task<string?> CheckPressureAsync(CancellationToken ct)
    {
        var disk = await meter.MeasureAsync(ct).ConfigureAwait(false);
        metrics?.SetDiskUsage(node, disk.Percent / 100);
        if (!disk.AtOrAbove(disk.UsedBytes, policy.HighThresholdPercent))
        {
            if (guard.IsRaised)
            {
                guard.Clear(string.Create(CultureInfo.InvariantCulture,
                    $"disk {disk.Percent:0.0}% used, below the high threshold {policy.HighThresholdPercent}%"));
                logger.LogInformation("Image GC: disk {Percent:0.0}% used, below {High}%; new rollouts may start again", disk.Percent, policy.HighThresholdPercent);
            }

            return null;
        }

        var now = time.GetUtcNow();
        return !guard.IsRaised || lastPass is null || now - lastPass >= PressureRetryAfter ? "pressure" : null;
    }

    /// <summary>One pass with reporting; returns null when it failed (already logged, counted and reported).</summary>
    public async Task<GcPassResult?> RunPassAsync(string trigger, CancellationToken ct)
    {
        await running.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var started = time.GetUtcNow();
            GcPassResult? result = null;
            GcNodeReport report;
            try
            {
                var choice = await policies(ct).ConfigureAwait(false);
                policy = choice.Policy;
                string? newWarning = null;
                if (choice.Warning is { } warning && warning != lastWarning)
                {
                    logger.LogWarning("Image GC policy: {Warning}", warning);
                    newWarning = warning;
                }

                lastWarning = choice.Warning;
                result = await pass.RunAsync(policy, ct).ConfigureAwait(false);
                report = Report(trigger, result, started) with { PolicyWarning = newWarning };
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                throw;
            }
            catch (Exception e)
            {
                metrics?.ImageGcRun(ImageGcResult.Error, 0, 0, 0);
                logger.LogError("Image GC ({Trigger}) failed: {Message}; retrying at the next trigger", trigger, e.Message);
                report = new GcNodeReport
                {
                    Node = node, Policy = policy.Name, Trigger = trigger, Result = "error", LastRun = started,
                    NextRun = started + policy.Interval, DiskUsagePercent = LastReport?.DiskUsagePercent ?? 0,
                    DiskPressure = guard.IsRaised, Message = $"image GC failed: {e.Message}",
                };
            }

            lastPass = time.GetUtcNow();
            nextInterval = lastPass.Value + policy.Interval;
            report = report with { NextRun = nextInterval };
            LastReport = report;
            try
            {
                await reporter.ReportAsync(report, ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                logger.LogWarning("Image GC: could not report the run: {Message}", e.Message);
            }

            return result;
        }
        finally
        {
            running.Release();
        }
    }

    private GcNodeReport Report(string trigger, GcPassResult result, DateTimeOffset started)
    {
        var (plan, run) = (result.Plan, result.Run);
        var after = run.After;
        metrics?.SetDiskUsage(node, after.Percent / 100);
        var outcome = GcNodeReport.Outcome(run);
        var bytes = run.BytesReclaimed;
        metrics?.ImageGcRun(outcome, run.Removed.Count, bytes, plan.Protected.Count);
        var message = GcNodeReport.Summary(result);

        if (!run.DryRun && run.AboveHighThreshold)
        {
            var why = $"disk {after.Percent.ToString("0.0", CultureInfo.InvariantCulture)}% used, at or above the high threshold {policy.HighThresholdPercent}% after image GC; {CannotFree(plan, run)}";
            guard.Raise(why);
            message += "; " + why;
        }
        else if (!run.DryRun && guard.IsRaised)
        {
            guard.Clear(string.Create(CultureInfo.InvariantCulture, $"disk {after.Percent:0.0}% used after image GC, below the high threshold {policy.HighThresholdPercent}%"));
        }

        logger.LogInformation("Image GC ({Trigger}, policy {Policy}): {Message} [{Result}, {Elapsed:0.0}s]",
            trigger, policy.Name, message, outcome.ToString().ToLowerInvariant(), (time.GetUtcNow() - started).TotalSeconds);
        return GcNodeReport.Of(result, node, trigger, time.GetUtcNow(), guard.IsRaised, message);
    }

    /// <summary>What kept GC from freeing more: the protected images by reason, with their sizes.</summary>
    internal static string CannotFree(GcPlan plan, GcRunResult run)
    {
        var groups = plan.Protected.GroupBy(p => p.Reason)
            .OrderByDescending(g => g.Sum(p => p.Image.Size))
            .Select(g => string.Create(CultureInfo.InvariantCulture, $"{g.Count()} {Describe(g.Key)} ({GcPlan.FormatBytes(g.Sum(p => p.Image.Size))})"));
        var text = plan.Protected.Count == 0
            ? "no image is protected, so the space is used by something else (volumes, logs, the build cache, other files)"
            : "could not remove protected images: " + string.Join(", ", groups);
        if (run.Failed.Count + run.Skipped.Count > 0)
        {
            text += $"; {run.Skipped.Count + run.Failed.Count} removals were refused or failed";
        }

        return text;
    }

    private static string Describe(GcReason reason) => reason switch
    {
        GcReason.InUseByRunningContainer => "used by running containers",
        GcReason.InUseByStoppedContainer => "used by stopped containers",
        GcReason.DeploymentCurrent => "current AppDeployment images",
        GcReason.DeploymentHistory => "rollback images",
        GcReason.YoungerThanMinimumAge => "younger than minimumAge",
        GcReason.KeepPattern => "matching keep patterns",
        GcReason.BeingPulledOrStarted => "being pulled or started",
        _ => reason.ToString(),
    };
}
