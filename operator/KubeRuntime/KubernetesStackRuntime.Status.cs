using Microsoft.Extensions.Logging;
using Skiff.Api;
using Skiff.Reconcile;

namespace Skiff.KubeRuntime;

/// <summary>
/// The status a rollout writes: the same history records, phases, conditions and reasons as the Docker target's
/// (<see cref="StackReconciler"/>), so <c>kubectl wait</c>, <c>skiff status</c>, Flux and Argo CD read both alike.
/// </summary>
public sealed partial class KubernetesStackRuntime
{
    /// <summary>Records a rollout that begins; false when it is on record already.</summary>
    private bool Begin(AppDeploymentStatus status, BeginRollout begin, long? generation)
    {
        status.History ??= [];
        if (status.History.LastOrDefault(h => h.Revision == begin.Revision && h.SpecHash == begin.Hash) is { Outcome: Outcomes.Progressing })
        {
            return false;
        }

        var now = time.GetUtcNow();
        status.History.Add(new RevisionRecord
        {
            Revision = begin.Revision,
            SpecHash = begin.Hash,
            Image = begin.Image,
            DeployedAt = now,
            Outcome = Outcomes.Progressing,
        });
        status.ObservedGeneration = generation;
        status.Phase = Phases.Progressing;
        Conditions.Summarize(status, Summary.Progressing, Reasons.RolloutInProgress, $"Rolling out revision {begin.Revision} ({begin.Image})", generation, now);
        return true;
    }

    private StackResult Waiting(AppDeploymentStatus status, KubeDesired desired, StackAction wait, long? generation)
    {
        if (status.History?.LastOrDefault(h => h.SpecHash == desired.Hash)?.Outcome is Outcomes.Failed or Outcomes.RolledBack)
        {
            return new StackResult(status, wait.RequeueAfter);
        }

        status.ObservedGeneration = generation;
        status.Phase = Phases.Progressing;
        Conditions.Summarize(status, Summary.Progressing, Reasons.RolloutInProgress, wait.Waiting, generation, time.GetUtcNow());
        return new StackResult(status, wait.RequeueAfter);
    }

    private void Complete(StackNames names, AppDeploymentStatus status, KubeDesired desired, long revision, int historyLimit, long? generation)
    {
        var record = status.History?.LastOrDefault(h => h.Revision == revision);
        if (record is not { Outcome: Outcomes.Progressing })
        {
            return;
        }

        record.Outcome = Outcomes.Succeeded;
        record.Image = desired.Image;
        status.LastGoodImage = record.Image;
        status.Revision = record.Revision;
        status.Image = record.Image;
        TrimHistory(status, historyLimit);
        status.ObservedGeneration = generation;
        logger.LogInformation("{Stack}: revision {Revision} ({Image}) rolled out", names.Key, revision, desired.Image);
    }

    /// <summary>As the Docker target's failed rollout: the record RolledBack (autoRollback with a last good revision) or Failed, Stalled with the reason.</summary>
    private void Fail(StackNames names, AppDeploymentStatus status, KubeDesired desired, FailRollout failure, int historyLimit, long? generation)
    {
        var now = time.GetUtcNow();
        var lastGood = status.History?.LastOrDefault(h => h.Outcome == Outcomes.Succeeded);
        var rolledBack = desired.AutoRollback && lastGood is not null;
        status.History ??= [];
        var record = status.History.LastOrDefault(h => h.Revision == failure.Revision && h.SpecHash == desired.Hash);
        if (record is null)
        {
            record = new RevisionRecord { Revision = failure.Revision, SpecHash = desired.Hash, Image = desired.Image, DeployedAt = now };
            status.History.Add(record);
        }

        record.Outcome = rolledBack ? Outcomes.RolledBack : Outcomes.Failed;
        record.Reason = failure.Reason;
        var message = $"revision {failure.Revision} ({desired.Image}) failed: {failure.Message}" +
            (rolledBack ? $"; rolled back to revision {lastGood!.Revision} ({lastGood.Image})" : "");
        TrimHistory(status, historyLimit);
        status.ObservedGeneration = generation;
        status.Phase = rolledBack ? Phases.Degraded : Phases.Failed;
        if (rolledBack)
        {
            status.Revision = lastGood!.Revision;
            status.Image = lastGood.Image;
        }

        Conditions.Summarize(status, Summary.Stalled, failure.Reason, message, generation, now);
        if (failure.Reason == Reasons.MigrationFailed)
        {
            Conditions.Set(status, ConditionTypes.Migrated, false, failure.Reason, failure.Message, generation, now);
        }
        else
        {
            Conditions.Set(status, ConditionTypes.AppReady, false, failure.Reason, failure.Message, generation, now);
        }

        logger.LogWarning("{Stack}: rollout of revision {Revision} failed ({Reason}): {Message}", names.Key, failure.Revision, failure.Reason, failure.Message);
    }

    private StackResult Stalled(AppDeploymentStatus status, long? generation, string reason, string message, TimeSpan? requeue)
    {
        status.ObservedGeneration = generation;
        status.Phase = status.History?.Any(h => h.Outcome == Outcomes.Succeeded) == true ? Phases.Degraded : Phases.Failed;
        Conditions.Summarize(status, Summary.Stalled, reason, message, generation, time.GetUtcNow());
        return new StackResult(status, requeue);
    }

    /// <summary>
    /// Another manager owns fields Skiff would change: nothing is overwritten, the stack stalls naming the object, the
    /// fields and the managers, and is looked at again (the other manager may let go).
    /// </summary>
    private StackResult Conflict(AppDeploymentStatus status, long? generation, FieldConflictException e)
    {
        var fields = string.Join("; ", e.Conflicts.GroupBy(c => c.Manager).Select(g => $"{string.Join(", ", g.Select(c => c.Field))} managed by {g.Key}"));
        var message = $"{e.Kind} {e.Namespace}/{e.Name}: server-side apply refused: {fields}. Skiff does not overwrite another manager's fields: " +
            "have that manager stop setting them (or remove its managedFields entry), or change the AppDeployment instead";
        return Stalled(status, generation, Reasons.FieldConflict, message, ResyncInterval);
    }

    /// <summary>Keeps the newest revisionHistoryLimit+1 revisions, and always the last good one (rollbacks need it).</summary>
    private static void TrimHistory(AppDeploymentStatus status, int historyLimit)
    {
        if (status.History is not { } history)
        {
            return;
        }

        var lastGood = history.LastOrDefault(h => h.Outcome == Outcomes.Succeeded);
        var newest = history.OrderByDescending(h => h.Revision).Take(historyLimit + 1).ToHashSet();
        history.RemoveAll(h => !newest.Contains(h) && h != lastGood);
    }
}
