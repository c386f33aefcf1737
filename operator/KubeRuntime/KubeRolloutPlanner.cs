using System.Globalization;
using Skiff.Api;
using Skiff.Reconcile;

namespace Skiff.KubeRuntime;

/// <summary>What the runtime wants of one stack, from its spec: enough for the planner, nothing rendered.</summary>
/// <param name="Hash">The spec hash (<see cref="SpecHash"/>), the same one the Docker target keys its history by.</param>
/// <param name="Image">spec.app.image.</param>
/// <param name="HasMigration">spec.app.migrate is set: its Job must complete before the Deployment's template changes.</param>
/// <param name="AutoRollback">spec.rollout.autoRollback.</param>
/// <param name="DataComponents">database and/or cache: their StatefulSets must be ready before the migration or the app.</param>
public sealed record KubeDesired(string Hash, string Image, bool HasMigration, bool AutoRollback, IReadOnlyList<string> DataComponents);

/// <summary>The app's Deployment as the API shows it.</summary>
/// <param name="Revision">The <c>dev.skiff.revision</c> label of its pod template: the revision it runs (or rolls out).</param>
/// <param name="Generation">metadata.generation.</param>
/// <param name="ObservedGeneration">status.observedGeneration: the controller has seen the template when it is at least <paramref name="Generation"/>.</param>
/// <param name="Replicas">spec.replicas.</param>
/// <param name="StatusReplicas">status.replicas: pods of every ReplicaSet, old ones too.</param>
/// <param name="UpdatedReplicas">status.updatedReplicas.</param>
/// <param name="AvailableReplicas">status.availableReplicas.</param>
/// <param name="ProgressDeadlineExceeded">The condition Progressing is False with reason ProgressDeadlineExceeded; its message.</param>
public sealed record ObservedDeployment(
    long? Revision,
    long Generation,
    long? ObservedGeneration,
    int Replicas,
    int StatusReplicas,
    int UpdatedReplicas,
    int AvailableReplicas,
    string? ProgressDeadlineExceeded)
{
    /// <summary>The Deployment controller has acted on the current template.</summary>
    public bool Observed => ObservedGeneration >= Generation;

    /// <summary>kubectl rollout status's "successfully rolled out": every pod updated and available, no old ones left.</summary>
    public bool RolledOut => Observed && UpdatedReplicas >= Replicas && AvailableReplicas >= Replicas && StatusReplicas <= UpdatedReplicas;
}

/// <summary>A migration Job of one revision; <paramref name="Failure"/> is the message of its Failed condition.</summary>
public sealed record ObservedJob(long Revision, bool Complete, string? Failure)
{
    public bool Finished => Complete || Failure is not null;
}

/// <summary>What the API shows of one stack's workloads.</summary>
/// <param name="Deployment">The app's Deployment, or null before the first rollout creates it.</param>
/// <param name="Jobs">The stack's migration Jobs (the TTL controller removes them an hour after they finish).</param>
/// <param name="DataReady">Per data component: its StatefulSet has a ready pod of its current template.</param>
public sealed record KubeObserved(ObservedDeployment? Deployment, IReadOnlyList<ObservedJob> Jobs, IReadOnlyDictionary<string, bool> DataReady);

/// <summary>Apply the objects that do not change with a revision: the -db Secret, data StatefulSets and Services, NetworkPolicies, the app's Service.</summary>
public sealed record ApplyStackObjects : StackAction
{
    public override string Describe() => "apply the Secret, StatefulSets, Services and NetworkPolicies (server-side apply)";
}

/// <summary>The database and/or cache StatefulSets have no ready pod yet.</summary>
public sealed record WaitDataReady(IReadOnlyList<string> Components) : StackAction
{
    public override bool IsWait => true;

    public override TimeSpan RequeueAfter => KubeRolloutPlanner.PollInterval;

    public override string Waiting => $"waiting for the {string.Join(" and the ", Components)} StatefulSet to have a ready pod";

    public override string Describe() => $"wait until the {string.Join(" and ", Components)} StatefulSet is ready";
}

/// <summary>Create the revision's migration Job.</summary>
public sealed record ApplyMigrationJob(long Revision) : StackAction
{
    public override string Describe() => $"create the migration Job of revision {Revision.ToString(CultureInfo.InvariantCulture)}";
}

/// <summary>Delete migration Jobs of superseded revisions that still run: two migrations never run against one database.</summary>
public sealed record StopStaleMigrations(IReadOnlyList<long> Revisions) : StackAction
{
    public override string Describe() =>
        $"delete the running migration Job of superseded revision {string.Join(", ", Revisions.Select(r => r.ToString(CultureInfo.InvariantCulture)))}";
}

/// <summary>The revision's migration Job runs; the Deployment is not touched meanwhile.</summary>
public sealed record WaitMigrationJob(long Revision) : StackAction
{
    public override bool IsWait => true;

    public override TimeSpan RequeueAfter => KubeRolloutPlanner.PollInterval;

    public override string Waiting => $"migrating: revision {Revision.ToString(CultureInfo.InvariantCulture)}'s migration Job is running";

    public override string Describe() => $"wait until the migration Job of revision {Revision.ToString(CultureInfo.InvariantCulture)} completes";
}

/// <summary>
/// Apply the Deployment with the revision's pod template. A rollback applies the last good revision's template again
/// (kept on the Deployment, see <see cref="KubernetesStackRuntime"/>), never the failed spec with an old image.
/// </summary>
public sealed record ApplyAppDeployment(long Revision, string Image, bool Rollback) : StackAction
{
    public override string Describe() => Rollback
        ? $"roll the Deployment back to revision {Revision.ToString(CultureInfo.InvariantCulture)}'s template ({Image})"
        : $"apply the Deployment with revision {Revision.ToString(CultureInfo.InvariantCulture)}'s template ({Image})";
}

/// <summary>The Deployment's own rolling update (maxUnavailable 0) runs; its controller reports progress in its status.</summary>
public sealed record WaitDeploymentRollout(long Revision) : StackAction
{
    public override bool IsWait => true;

    public override TimeSpan RequeueAfter => KubeRolloutPlanner.PollInterval;

    public override string Waiting => $"waiting for the Deployment to roll out revision {Revision.ToString(CultureInfo.InvariantCulture)}";

    public override string Describe() => $"wait until the Deployment has rolled out revision {Revision.ToString(CultureInfo.InvariantCulture)}";
}

/// <summary>Delete the stack's objects that the current spec no longer renders (by label and owner).</summary>
public sealed record PruneObjects : StackAction
{
    public override string Describe() => "delete the stack's objects the spec no longer renders";
}

/// <summary>
/// The rollout step function of <c>runtime: kubernetes</c>: observed workloads and the revision history in, the next
/// actions out, with the Docker target's rules (<see cref="StackPlanner"/>) where Kubernetes has its own mechanisms.
/// </summary>
/// <remarks>
/// # Guarantees
/// - The migration Job of a revision completes before the Deployment's template changes to it; a failed Job leaves
///   the Deployment untouched.
/// - A spec hash whose rollout failed is never retried; with autoRollback the last good template is applied again.
/// - The Deployment is judged only once its controller observed the current generation.
/// - Level-based: the plan depends only on its inputs.
/// </remarks>
public static class KubeRolloutPlanner
{
    /// <summary>How often a wait looks again: the runtime does not watch the workloads, it polls them.</summary>
    public static readonly TimeSpan PollInterval = TimeSpan.FromSeconds(2);

    public static StackPlan Plan(KubeDesired desired, KubeObserved observed, IReadOnlyList<RevisionRecord> history)
    {
        var actions = new List<StackAction> { new ApplyStackObjects() };
        var record = history.LastOrDefault(h => h.SpecHash == desired.Hash);
        var lastGood = history.LastOrDefault(h => h.Outcome == Outcomes.Succeeded);
        if (record is not null && lastGood is not null && lastGood.Revision > record.Revision)
        {
            // A spec seen before, but another revision succeeded since (a revert): a new revision, as on Docker.
            record = null;
        }

        var deployment = observed.Deployment;
        if (record?.Outcome is Outcomes.Failed or Outcomes.RolledBack)
        {
            if (desired.AutoRollback && lastGood?.Image is { } goodImage && deployment is not null && deployment.Revision != lastGood.Revision)
            {
                actions.Add(new ApplyAppDeployment(lastGood.Revision, goodImage, Rollback: true));
            }

            actions.Add(new PruneObjects());
            return new StackPlan(actions);
        }

        if (record?.Outcome == Outcomes.Succeeded && deployment?.Revision == record.Revision)
        {
            // Live: apply again (server-side apply changes nothing unless someone drifted a field Skiff owns).
            actions.Add(new ApplyAppDeployment(record.Revision, desired.Image, Rollback: false));
            actions.Add(new PruneObjects());
            return new StackPlan(actions);
        }

        var revision = record?.Outcome == Outcomes.Progressing ? record.Revision : NextRevision(history, observed);
        actions.Add(new BeginRollout(revision, desired.Hash, desired.Image));

        var notReady = desired.DataComponents.Where(c => !observed.DataReady.GetValueOrDefault(c)).ToList();
        if (notReady.Count > 0)
        {
            actions.Add(new WaitDataReady(notReady));
            return new StackPlan(actions);
        }

        if (desired.HasMigration && deployment?.Revision != revision)
        {
            var job = observed.Jobs.FirstOrDefault(j => j.Revision == revision);
            if (job is null)
            {
                var stale = observed.Jobs.Where(j => j.Revision != revision && !j.Finished).Select(j => j.Revision).ToList();
                if (stale.Count > 0)
                {
                    actions.Add(new StopStaleMigrations(stale));
                }

                actions.Add(new ApplyMigrationJob(revision));
                actions.Add(new WaitMigrationJob(revision));
                return new StackPlan(actions);
            }

            if (job.Failure is { } failure)
            {
                actions.Add(new FailRollout(revision, Reasons.MigrationFailed, failure, null));
                return new StackPlan(actions);
            }

            if (!job.Complete)
            {
                actions.Add(new WaitMigrationJob(revision));
                return new StackPlan(actions);
            }
        }

        actions.Add(new ApplyAppDeployment(revision, desired.Image, Rollback: false));
        if (deployment is { Observed: true } d && d.Revision == revision)
        {
            if (d.ProgressDeadlineExceeded is { } why)
            {
                actions.Add(new FailRollout(revision, Reasons.ProgressDeadlineExceeded, why, null));
                return new StackPlan(actions);
            }

            if (d.RolledOut)
            {
                actions.Add(new CompleteRollout(revision, []));
                actions.Add(new PruneObjects());
                return new StackPlan(actions);
            }
        }

        actions.Add(new WaitDeploymentRollout(revision));
        return new StackPlan(actions);
    }

    private static long NextRevision(IReadOnlyList<RevisionRecord> history, KubeObserved observed) =>
        new[]
        {
            history.Select(h => h.Revision).DefaultIfEmpty(0).Max(),
            observed.Deployment?.Revision ?? 0,
            observed.Jobs.Select(j => j.Revision).DefaultIfEmpty(0).Max(),
        }.Max() + 1;
}
