using Microsoft.Extensions.Logging;

namespace Skiff.Hosting;

/// <summary>
/// Gives back to the OS the memory a burst of work (a converge of many stacks, a Git commit touching all of them) left
/// committed in the GC heap, once the heap has stopped using it: the GC keeps such memory for the next burst, and on a
/// small host it would stay for as long as the operator runs.
/// </summary>
/// <remarks>
/// # Rule
/// Every <see cref="Period"/> it reads the heap's committed bytes and the bytes its objects held after the last
/// collection. The difference is the slack. When the slack is at least <see cref="MinSlackBytes"/> and at least as
/// large as what the objects hold, at two readings one period apart (the burst is over: a heap still growing uses its
/// slack), it runs one blocking, compacting, aggressive collection, which decommits every free region. At most once
/// per <see cref="MinInterval"/>.
///
/// After that collection, and once at the reading <see cref="SettleReadings"/> periods after the start (the start's
/// own work is done by then), it also gives back the file pages the process no longer uses (<see cref="FilePages"/>).
///
/// # Measured
/// 200 steady stacks on the native build, RSS after converging and 300 s idle: 78.2 MiB with it, 89.8 MiB without
/// (docs/PERFORMANCE.md, "P4: type data paged from the file"); with the file pages given back too, 45.5 MiB
/// ("P4: the start's file pages given back").
/// </remarks>
/// <param name="log">Says what each trim returned, at debug level.</param>
/// <param name="time">The clock (a fake one in tests).</param>
/// <param name="read">The heap's figures (the GC's own, <see cref="ReadGc"/>, unless a test gives others).</param>
/// <param name="collect">The collection (<see cref="CollectAggressively"/> unless a test gives another).</param>
/// <param name="release">Gives back the unused file pages (<see cref="FilePages.Release"/> unless a test gives
/// another).</param>
public sealed class MemoryTrim(ILogger log, TimeProvider? time = null, Func<MemoryTrim.Reading>? read = null, Action? collect = null,
    Func<FilePages.Result?>? release = null)
{
    /// <summary>The heap's figures after its last collection.</summary>
    /// <param name="LiveBytes">What its objects held (the heap size less its fragmentation).</param>
    /// <param name="CommittedBytes">What the GC holds from the OS.</param>
    public readonly record struct Reading(long LiveBytes, long CommittedBytes)
    {
        /// <summary>Committed and not holding objects.</summary>
        public long SlackBytes => Math.Max(0, CommittedBytes - LiveBytes);
    }

    /// <summary>How often the heap is read.</summary>
    public static readonly TimeSpan Period = TimeSpan.FromMinutes(1);

    /// <summary>The least time between two trims.</summary>
    public static readonly TimeSpan MinInterval = TimeSpan.FromMinutes(10);

    /// <summary>Less slack than this is left alone (a few of the GC's 4 MiB regions are normal).</summary>
    public const long MinSlackBytes = 16L << 20;

    /// <summary>The reading, counted from the start, at which the start's file pages are given back.</summary>
    public const int SettleReadings = 2;

    private readonly TimeProvider time = time ?? TimeProvider.System;
    private readonly Func<Reading> read = read ?? ReadGc;
    private readonly Action collect = collect ?? CollectAggressively;
    private readonly Func<FilePages.Result?> release = release ?? (() => FilePages.Release());
    private int readings;
    private bool slackBefore;
    private DateTimeOffset? lastTrim;

    /// <summary>The GC's figures after its last collection.</summary>
    public static Reading ReadGc()
    {
        var info = GC.GetGCMemoryInfo();
        return new Reading(info.HeapSizeBytes - info.FragmentedBytes, info.TotalCommittedBytes);
    }

    /// <summary>A blocking, compacting collection of every generation that decommits what it frees.</summary>
    public static void CollectAggressively() =>
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);

    /// <summary>Reads the heap every <see cref="Period"/> until <paramref name="ct"/> ends.</summary>
    public async Task RunAsync(CancellationToken ct)
    {
        using var timer = new PeriodicTimer(Period, time);
        try
        {
            while (await timer.WaitForNextTickAsync(ct))
            {
                Check();
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }

    /// <summary>One reading; true when it trimmed.</summary>
    public bool Check()
    {
        readings++;
        var trimmed = TrimHeap();
        if (trimmed || readings == SettleReadings)
        {
            ReleaseFilePages();
        }

        return trimmed;
    }

    private bool TrimHeap()
    {
        var reading = read();
        var slack = reading.SlackBytes >= Math.Max(MinSlackBytes, reading.LiveBytes);
        var settled = slack && slackBefore;
        slackBefore = slack;
        var now = time.GetUtcNow();
        if (!settled || (lastTrim is { } last && now - last < MinInterval))
        {
            return false;
        }

        var started = time.GetTimestamp();
        collect();
        lastTrim = now;
        slackBefore = false;
        var after = read();
        log.LogDebug("Returned unused heap memory to the OS in {Milliseconds:F0} ms: committed {Before:F1} MiB, now {After:F1} MiB; objects hold {Live:F1} MiB",
            time.GetElapsedTime(started).TotalMilliseconds, reading.CommittedBytes / 1048576.0, after.CommittedBytes / 1048576.0, after.LiveBytes / 1048576.0);
        return true;
    }

    private void ReleaseFilePages()
    {
        try
        {
            if (release() is { } done)
            {
                log.LogDebug("Gave back {Released:F1} MiB of file pages no longer used ({Mappings} mappings): resident {Before:F1} MiB, now {After:F1} MiB",
                    done.Bytes / 1048576.0, done.Mappings, done.ResidentBefore / 1048576.0, done.ResidentAfter / 1048576.0);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or DllNotFoundException or EntryPointNotFoundException)
        {
            // A /proc without pagemap (some sandboxes) or a C library without madvise: the pages stay, as before.
            log.LogDebug("Could not give back unused file pages: {Message}", e.Message);
        }
    }
}
