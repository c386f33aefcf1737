using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Skiff.Api;
using Skiff.Observability;
using Skiff.Reconcile;

namespace Skiff.Backup;

/// <summary>
/// The node's backups inside <c>skiff run</c> (either source): takes each stack's backup when its schedule says, or at
/// once when asked (<see cref="Trigger"/>: the <c>skiff.dev/backup-now</c> annotation), one at a time on the node, and
/// reports each through the ledger (status), an Event, metrics and the log.
/// </summary>
/// <remarks>
/// # Guarantees
/// - One backup at a time per node (they run one after another), so never two of one stack at once; <c>skiff backup</c>
///   from another process is kept apart by the runner's dump container name.
/// - A failed backup is a Warning Event <c>BackupFailed</c> and the condition BackupFailed; the app's Ready is untouched.
/// </remarks>
public sealed class BackupScheduler(
    Func<IReadOnlyList<AppDeployment>> stacks,
    ISecretSource secrets,
    StackContext context,
    BackupRunner runner,
    BackupLedger ledger,
    IEventSink events,
    Action<StackNames> requeue,
    SkiffMetrics? metrics,
    ILogger logger,
    TimeProvider? timeProvider = null)
{
    private readonly TimeProvider time = timeProvider ?? TimeProvider.System;
    private readonly BackupSchedule schedule = new();
    private readonly ConcurrentDictionary<string, bool> asked = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim wake = new(0);

    /// <summary>How often the list of stacks is read again when no backup is due sooner.</summary>
    public TimeSpan Resync { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>The next scheduled backup of a stack (for tests and the log).</summary>
    public DateTimeOffset? NextFor(StackNames names) => schedule.NextFor(names.Key);

    /// <summary>Takes a backup of the stack as soon as the running one (if any) is done.</summary>
    public void Trigger(StackNames names)
    {
        asked[names.Key] = true;
        wake.Release();
    }

    public async Task RunAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            var now = time.GetUtcNow();
            var current = stacks().Where(s => s.Spec.Node == context.Node && s.Spec.Database is not null).ToList();
            var scheduled = current.Where(s => s.Spec.Database!.Backup is not null).ToList();
            var due = schedule.Due(scheduled.Select(s => (Key(s), s.Spec.Database!.Backup!.Schedule)), now).ToHashSet(StringComparer.Ordinal);
            foreach (var key in asked.Keys.ToList())
            {
                asked.TryRemove(key, out _);
                due.Add(key);
            }

            foreach (var resource in current.Where(s => due.Contains(Key(s))))
            {
                await BackupAsync(resource, ct);
                schedule.Ran(Key(resource), time.GetUtcNow());
            }

            foreach (var resource in scheduled)
            {
                if (Validation.CronSchedule.TryParse(resource.Spec.Database!.Backup!.Schedule, out _)?.Interval(now) is { } interval)
                {
                    metrics?.SetBackupInterval(resource.Metadata.NamespaceProperty ?? "default", resource.Metadata.Name, interval);
                }
            }

            var wait = schedule.Earliest is { } earliest ? earliest - time.GetUtcNow() : Resync;
            wait = wait < TimeSpan.Zero ? TimeSpan.Zero : wait > Resync ? Resync : wait;
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
            var woken = wake.WaitAsync(stop.Token);
            await Task.WhenAny(Task.Delay(wait, time, stop.Token), woken).ConfigureAwait(false);
            await stop.CancelAsync();
            try
            {
                await woken;
            }
            catch (OperationCanceledException)
            {
            }
        }
    }

    /// <summary>One backup of <paramref name="resource"/>, reported; never throws but for cancellation.</summary>
    public async Task<BackupResult> BackupAsync(AppDeployment resource, CancellationToken ct)
    {
        var names = new StackNames(resource.Metadata.NamespaceProperty ?? "default", resource.Metadata.Name);
        BackupResult result;
        try
        {
            var db = Defaults.Apply(resource.Spec).Database!;
            var credentials = await secrets.EnsureDatabaseCredentialsAsync(names, db.Name!, db.User!, ct);
            var job = BackupJob.For(resource, credentials, context)!;
            logger.LogInformation("{Stack}: backing up into {Folder}", names.Key, job.Folder);
            result = await runner.BackupAsync(job, ct);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            result = new BackupResult(false, e.Message, null, TimeSpan.Zero);
        }

        var now = time.GetUtcNow();
        ledger.Record(names, result, now);
        metrics?.BackupEnded(names.Namespace, names.Name, result.Ok, result.Duration, result.File?.Bytes, result.File?.Time);
        if (result.Ok)
        {
            events.Record(resource, EventKind.Normal, Reasons.BackupSucceeded, result.Message);
        }
        else
        {
            logger.LogWarning("{Stack}: backup failed: {Message}", names.Key, result.Message);
            events.Record(resource, EventKind.Warning, Reasons.BackupFailed, result.Message);
        }

        requeue(names);
        return result;
    }

    private static string Key(AppDeployment resource) => $"{resource.Metadata.NamespaceProperty ?? "default"}/{resource.Metadata.Name}";
}
