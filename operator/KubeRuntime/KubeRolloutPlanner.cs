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

/// <summary>One container of a pod, as the kubelet reports it in the pod's status.</summary>
/// <param name="Name">The container's name.</param>
/// <param name="WaitingReason">state.waiting.reason: CrashLoopBackOff, ErrImagePull, ImagePullBackOff, ContainerCreating...</param>
/// <param name="WaitingMessage">state.waiting.message: the kubelet's words (the pull error, the back-off).</param>
/// <param name="RestartCount">restartCount.</param>
/// <param name="LastExitCode">lastState.terminated.exitCode (or state.terminated's): how the last run ended.</param>
/// <param name="LastReason">lastState.terminated.reason (Error, OOMKilled...).</param>
public sealed record ObservedPodContainer(string Name, string? WaitingReason, string? WaitingMessage, int RestartCount, int? LastExitCode, string? LastReason);

/// <summary>A pod of the stack's app Deployment or migration Job.</summary>
/// <param name="Name">metadata.name.</param>
/// <param name="Component">The <c>dev.skiff.component</c> label: app or migrate.</param>
/// <param name="Revision">The <c>dev.skiff.revision</c> label: the revision whose template made the pod.</param>
/// <param name="Containers">Its containers' statuses (none before the kubelet reported).</param>
public sealed record ObservedPod(string Name, string Component, long? Revision, IReadOnlyList<ObservedPodContainer> Containers);

/// <summary>What the API shows of one stack's workloads.</summary>
/// <param name="Deployment">The app's Deployment, or null before the first rollout creates it.</param>
/// <param name="Jobs">The stack's migration Jobs (the TTL controller removes them an hour after they finish).</param>
/// <param name="DataReady">Per data component: its StatefulSet has a ready pod of its current template.</param>
/// <param name="Pods">The pods of the app and of the migration Jobs: a revision whose pods crash-loop or cannot pull fails before the progress deadline.</param>
public sealed record KubeObserved(
    ObservedDeployment? Deployment,
    IReadOnlyList<ObservedJob> Jobs,
    IReadOnlyDictionary<string, bool> DataReady,
    IReadOnlyList<ObservedPod>? Pods = null)
{
    public IReadOnlyList<ObservedPod> Pods { get; init; } = Pods ?? [];
}

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
    /// <summary>As the Docker target: a container that restarted this many times during its rollout failed it.</summary>
    public const int CrashRestarts = 2;

    /// <summary>
    /// How often a wait looks again by itself: a resync, since the workloads are watched (<see cref="WorkloadWatch"/>) and
    /// a change reconciles its stack at once.
    /// </summary>
    public static readonly TimeSpan PollInterval = TimeSpan.FromSeconds(10);

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

            if (!job.Complete && PodFailure(observed.Pods, StackNames.MigrateComponent, revision, crashes: false) is { } pull)
            {
                // The Job would wait for its image for ever (its pod never starts, so no backoff limit is reached).
                actions.Add(new FailRollout(revision, pull.Reason, pull.Message, null));
                return new StackPlan(actions);
            }

            if (!job.Complete)
            {
                actions.Add(new WaitMigrationJob(revision));
                return new StackPlan(actions);
            }
        }

        actions.Add(new ApplyAppDeployment(revision, desired.Image, Rollback: false));
        if (deployment?.Revision == revision && PodFailure(observed.Pods, StackNames.AppComponent, revision, crashes: true) is { } failed)
        {
            // The Docker target's ContainerExited and image reasons, without waiting for the progress deadline.
            actions.Add(new FailRollout(revision, failed.Reason, failed.Message, null));
            return new StackPlan(actions);
        }

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

    /// <summary>
    /// A pod of <paramref name="component"/> made by <paramref name="revision"/>'s template that cannot run: its image
    /// cannot be pulled (ImageNotFound when the registry says it does not exist, else ImagePullFailed), or (with
    /// <paramref name="crashes"/>) its container crash-loops or restarted <see cref="CrashRestarts"/> times, as a
    /// Docker container that exited or restarted twice during its rollout (ContainerExited).
    /// </summary>
    internal static (string Reason, string Message)? PodFailure(IEnumerable<ObservedPod> pods, string component, long revision, bool crashes)
    {
        foreach (var pod in pods.Where(p => p.Component == component && p.Revision == revision).OrderBy(p => p.Name, StringComparer.Ordinal))
        {
            foreach (var c in pod.Containers)
            {
                if (c.WaitingReason is "ErrImagePull" or "ImagePullBackOff" or "InvalidImageName")
                {
                    var notFound = c.WaitingReason == "InvalidImageName" || ImageMissing(c.WaitingMessage);
                    var detail = string.IsNullOrWhiteSpace(c.WaitingMessage) ? "" : $": {c.WaitingMessage}";
                    return (notFound ? Reasons.ImageNotFound : Reasons.ImagePullFailed,
                        $"container {c.Name} of pod {pod.Name} cannot pull its image ({c.WaitingReason}{detail})");
                }

                if (crashes && (c.WaitingReason == "CrashLoopBackOff" || c.RestartCount >= CrashRestarts))
                {
                    var code = c.LastExitCode is { } exit ? exit.ToString(CultureInfo.InvariantCulture) : "unknown";
                    var why = c.LastReason is { Length: > 0 } and not "Error" and not "Completed" ? $", {c.LastReason}" : "";
                    return (Reasons.ContainerExited,
                        $"container {c.Name} of pod {pod.Name} exited with code {code}{why} (restarted {c.RestartCount.ToString(CultureInfo.InvariantCulture)} times); " +
                        $"see kubectl logs {pod.Name} -c {c.Name} --previous");
                }
            }
        }

        return null;
    }

    /// <summary>The kubelet's (container runtime's) words for an image that does not exist, as against one it may not pull.</summary>
    private static bool ImageMissing(string? message) =>
        message is not null && (message.Contains("not found", StringComparison.OrdinalIgnoreCase)
            || message.Contains("manifest unknown", StringComparison.OrdinalIgnoreCase)
            || message.Contains("does not exist", StringComparison.OrdinalIgnoreCase))
        && !message.Contains("may require authorization", StringComparison.OrdinalIgnoreCase);

    private static long NextRevision(IReadOnlyList<RevisionRecord> history, KubeObserved observed) =>
        new[]
        {
            history.Select(h => h.Revision).DefaultIfEmpty(0).Max(),
            observed.Deployment?.Revision ?? 0,
            observed.Jobs.Select(j => j.Revision).DefaultIfEmpty(0).Max(),
        }.Max() + 1;
}
