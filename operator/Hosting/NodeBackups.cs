using Microsoft.Extensions.Logging;
using Skiff.Api;
using Skiff.Backup;
using Skiff.Reconcile;

namespace Skiff.Hosting;

/// <summary>
/// The node's backups inside <c>skiff run</c>, the same for both sources: the ledger the reconciler reads into each
/// status, and the scheduler that runs beside the controller (docs/BACKUP.md).
/// </summary>
public sealed class NodeBackups
{
    /// <summary>The annotation whose every new value takes a backup now (Kubernetes source).</summary>
    public const string BackupNowAnnotation = "skiff.dev/backup-now";

    /// <summary>Written into every status by the reconciler (<see cref="StackServices.ReportBackups"/>).</summary>
    public BackupLedger Ledger { get; } = new();

    /// <summary>The scheduler, once <see cref="Runnable"/> made it.</summary>
    public BackupScheduler? Scheduler { get; private set; }

    /// <summary>
    /// The scheduler as one of the operator's runnables; <c>highThresholdPercent</c> is the node's image GC high threshold
    /// now: a backup that would take the disk over it is refused.
    /// </summary>
    public Runnable Runnable(
        Func<IReadOnlyList<AppDeployment>> stacks, ISecretSource secrets, StackContext context, IContainerEngine engine, IEventSink events,
        Action<StackNames> requeue, OperatorServices services, Func<int> highThresholdPercent)
    {
        var log = services.Logging.CreateLogger<BackupScheduler>();
        var runner = new BackupRunner(engine, log) { HighThresholdPercent = highThresholdPercent };
        Scheduler = new BackupScheduler(stacks, secrets, context, runner, Ledger, events, requeue, services.Metrics, log);
        return new Runnable("backups", Scheduler.RunAsync);
    }

    /// <summary>A new value of <see cref="BackupNowAnnotation"/> between two versions of a resource: take a backup now.</summary>
    public void OnUpdate(AppDeployment old, AppDeployment changed)
    {
        string? before = null, after = null;
        old.Metadata.Annotations?.TryGetValue(BackupNowAnnotation, out before);
        changed.Metadata.Annotations?.TryGetValue(BackupNowAnnotation, out after);
        if (!string.IsNullOrEmpty(after) && after != before && changed.Spec.Database is not null)
        {
            Scheduler?.Trigger(new StackNames(changed.Metadata.NamespaceProperty ?? "default", changed.Metadata.Name));
        }
    }
}
