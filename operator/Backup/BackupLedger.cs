using System.Collections.Concurrent;
using Skiff.Api;
using Skiff.Reconcile;

namespace Skiff.Backup;

/// <summary>
/// What this process knows of each stack's backups, written into its status on every reconcile
/// (<see cref="StackServices.ReportBackups"/>): <c>lastBackup</c> and the <c>BackupFailed</c> condition. The backups
/// never write a status themselves, so a status has one writer, the reconcile.
/// </summary>
public sealed class BackupLedger
{
    private readonly ConcurrentDictionary<string, Entry> entries = new(StringComparer.Ordinal);

    /// <summary>A backup ended (scheduled or asked for).</summary>
    public void Record(StackNames names, BackupResult result, DateTimeOffset at)
    {
        entries.AddOrUpdate(
            names.Key,
            _ => new Entry(result.Ok ? Success(result) : null, result.Ok ? null : result.Message, at),
            (_, old) => new Entry(result.Ok ? Success(result) : old.Last, result.Ok ? null : result.Message, at));
    }

    /// <summary>The newest successful backup this process took of the stack, or null.</summary>
    public BackupRecord? Last(StackNames names) => entries.TryGetValue(names.Key, out var e) ? e.Last : null;

    /// <summary>Writes lastBackup and BackupFailed into <paramref name="status"/>; leaves both alone for a stack it knows nothing of.</summary>
    public void Apply(StackNames names, AppDeploymentStatus status, long? generation)
    {
        if (!entries.TryGetValue(names.Key, out var entry))
        {
            return;
        }

        if (entry.Last is { } last)
        {
            status.LastBackup = last;
        }

        if (entry.Failure is { } failure)
        {
            Conditions.Set(status, ConditionTypes.BackupFailed, true, Reasons.BackupFailed, failure, generation, entry.At);
        }
        else if (Conditions.Get(status, ConditionTypes.BackupFailed) is not null)
        {
            Conditions.Set(status, ConditionTypes.BackupFailed, false, Reasons.BackupSucceeded, "the last backup succeeded", generation, entry.At);
        }
    }

    /// <summary>The stack is gone: forget it.</summary>
    public void Forget(StackNames names) => entries.TryRemove(names.Key, out _);

    private static BackupRecord Success(BackupResult result) => new()
    {
        Time = result.File!.Time,
        File = result.File.Path,
        Bytes = result.File.Bytes,
        Verified = result.Verified is not null,
    };

    private sealed record Entry(BackupRecord? Last, string? Failure, DateTimeOffset At);
}
