using System.Globalization;
using System.Net;
using System.Text.Json;
using k8s;
using k8s.Autorest;
using k8s.Models;
using Microsoft.Extensions.Logging;
using Skiff.Api;
using Skiff.KubeRender;
using Skiff.Reconcile;

namespace Skiff.KubeRuntime;

/// <summary>
/// Reconciles one AppDeployment with <c>runtime: kubernetes</c> into native workloads (DESIGN §8): resolve the database
/// credentials, observe the workloads, plan (<see cref="KubeRolloutPlanner"/>), act with server-side apply
/// (<see cref="KubernetesApplier"/>) until the first wait, and return the status, as <see cref="StackReconciler"/> does
/// for the Docker target. Split by concern: <c>.Status.cs</c> keeps history and conditions, <c>.Objects.cs</c> observes,
/// prunes and deletes.
/// </summary>
/// <remarks>
/// # Guarantees
/// - The Deployment's pod template changes to a revision only after that revision's migration Job completed.
/// - A rollback applies the last good revision's template again, exactly: before a new template replaces it, the
///   live one is kept in the Deployment's annotation <see cref="LastGoodTemplateAnnotation"/>.
/// - A field another manager owns is never overwritten: the stack stalls with reason <c>FieldConflict</c>.
/// # Caveats
/// The runtime reads the workloads when it runs; <see cref="WorkloadWatch"/> runs it when they change, and a rollout
/// that waits is looked at again every <see cref="KubeRolloutPlanner.PollInterval"/> besides (a resync).
/// </remarks>
public sealed partial class KubernetesStackRuntime(
    IKubernetes client,
    ISecretSource secrets,
    ILogger<KubernetesStackRuntime> logger,
    TimeProvider? timeProvider = null)
{
    /// <summary>On the Deployment: the pod template of the last good revision, kept while a new one rolls out, for the rollback.</summary>
    public const string LastGoodTemplateAnnotation = "skiff.dev/last-good-template";

    /// <summary>How often a stack that is live (or stalled) is looked at again: drift, a conflict released, availability.</summary>
    public static readonly TimeSpan ResyncInterval = TimeSpan.FromMinutes(1);

    private const int MaxPlanRounds = 4;
    private readonly ILogger<KubernetesStackRuntime> logger = logger;
    private readonly KubernetesApplier applier = new(client);
    private readonly TimeProvider time = timeProvider ?? TimeProvider.System;

    /// <summary>Brings the stack's workloads to its spec; the caller writes the returned status (through /status) and requeues.</summary>
    public Task<StackResult> ReconcileAsync(AppDeployment resource, CancellationToken ct) => ReconcileAsync(resource, null, ct);

    /// <summary>
    /// As <see cref="ReconcileAsync(AppDeployment, CancellationToken)"/>, with <paramref name="publish"/> called with the
    /// status as a rollout begins, before its Job or template is applied (as <see cref="StackReconciler"/> does), so that
    /// a crash mid-rollout leaves the revision on record and the next reconcile goes on with it instead of a new one.
    /// </summary>
    public async Task<StackResult> ReconcileAsync(AppDeployment resource, Func<AppDeploymentStatus, CancellationToken, Task>? publish, CancellationToken ct)
    {
        var status = StackReconciler.CloneStatus(resource.Status);
        var generation = resource.Metadata.Generation;
        var spec = Defaults.Apply(resource.Spec);
        var names = new StackNames(resource.Metadata.NamespaceProperty ?? "default", resource.Metadata.Name);
        if (string.IsNullOrEmpty(spec.App.Image))
        {
            return Stalled(status, generation, Reasons.InvalidSpec,
                "spec.app.build is not supported with runtime: kubernetes: set spec.app.image to an image in a registry the cluster can pull from", null);
        }

        if (await MissingSecretAsync(names.Namespace, spec, ct) is { } missing)
        {
            return Stalled(status, generation, Reasons.SecretNotFound, missing, TimeSpan.FromSeconds(30));
        }

        DatabaseCredentials? creds = null;
        if (spec.Database is { } db)
        {
            creds = await secrets.EnsureDatabaseCredentialsAsync(names, db.Name!, db.User!, ct);
        }

        var desired = new KubeDesired(
            SpecHash.Compute(resource.Spec),
            spec.App.Image,
            spec.App.Migrate is not null,
            spec.Rollout!.AutoRollback!.Value,
            new[] { spec.Database is null ? null : StackNames.DatabaseComponent, spec.Cache is null ? null : StackNames.CacheComponent }.OfType<string>().ToList());
        var run = new Run(this, resource, spec, names, desired, creds, status, generation, publish);
        try
        {
            for (var round = 0; round < MaxPlanRounds; round++)
            {
                var observed = await ObserveAsync(names, desired, ct);
                var plan = KubeRolloutPlanner.Plan(desired, observed.State, status.History ?? []);
                var (stop, replan) = await run.ExecuteAsync(plan, observed, ct);
                if (stop is not null)
                {
                    return stop;
                }

                if (!replan)
                {
                    return run.Settle(observed);
                }
            }
        }
        catch (FieldConflictException e)
        {
            logger.LogWarning("{Stack}: server-side apply refused, fields owned by another manager: {Conflict}", names.Key, e.Message);
            return Conflict(status, generation, e);
        }
        catch (ApplyRefusedException e)
        {
            logger.LogWarning("{Stack}: {Refusal}", names.Key, e.Message);
            return Stalled(status, generation, Reasons.InvalidSpec,
                e.Message + "; Kubernetes does not let this field change on a live object: change the AppDeployment back, or delete the object for Skiff to create it again", ResyncInterval);
        }

        return new StackResult(status, KubeRolloutPlanner.PollInterval);
    }

    /// <summary>One reconcile's actions and the status they write.</summary>
    private sealed class Run(
        KubernetesStackRuntime owner,
        AppDeployment resource,
        AppDeploymentSpec spec,
        StackNames names,
        KubeDesired desired,
        DatabaseCredentials? creds,
        AppDeploymentStatus status,
        long? generation,
        Func<AppDeploymentStatus, CancellationToken, Task>? publish)
    {
        private KubeObjects? rendered;

        /// <summary>Runs the plan until a wait (the reconcile ends), its end, or a failure (plan again: the rollback).</summary>
        public async Task<(StackResult? Stop, bool Replan)> ExecuteAsync(StackPlan plan, Observed observed, CancellationToken ct)
        {
            foreach (var action in plan.Actions)
            {
                owner.logger.LogDebug("{Stack}: {Action}", names.Key, action.Describe());
                switch (action)
                {
                    case ApplyStackObjects:
                        await ApplyStackObjectsAsync(ct);
                        break;
                    case BeginRollout b:
                        if (owner.Begin(status, b, generation) && publish is not null)
                        {
                            await publish(status, ct);
                        }

                        break;
                    case WaitDataReady w:
                        SetDataConditions(observed.State);
                        return (owner.Waiting(status, desired, w, generation), false);
                    case StopStaleMigrations stale:
                        foreach (var r in stale.Revisions)
                        {
                            await owner.applier.DeleteAsync("Job", names.Namespace, KubeRenderer.MigrationJobName(names.Name, r), ct);
                        }

                        break;
                    case ApplyMigrationJob j:
                        await owner.applier.ApplyAsync(Render(j.Revision, desired.Image).MigrationJob!, force: true, ct);
                        break;
                    case WaitMigrationJob w:
                        Conditions.Set(status, ConditionTypes.Migrated, false, Reasons.Migrating, w.Waiting, generation, owner.time.GetUtcNow());
                        return (owner.Waiting(status, desired, w, generation), false);
                    case ApplyAppDeployment a:
                        await ApplyDeploymentAsync(a, observed.Deployment, ct);
                        break;
                    case WaitDeploymentRollout w:
                        return (owner.Waiting(status, desired, w, generation), false);
                    case CompleteRollout c:
                        owner.Complete(names, status, desired, c.Revision, spec.Rollout!.RevisionHistoryLimit!.Value, generation);
                        break;
                    case FailRollout f:
                        owner.Fail(names, status, desired, f, spec.Rollout!.RevisionHistoryLimit!.Value, generation);
                        return (null, true);
                    case PruneObjects:
                        await owner.PruneAsync(resource, names, Render(1, desired.Image), observed, ct);
                        break;
                    default:
                        throw new InvalidOperationException($"unknown action {action.GetType().Name}");
                }
            }

            SetDataConditions(observed.State);
            return (null, false);
        }

        /// <summary>The plan ran to its end: the stack is live (Ready when its Deployment is available), or its spec failed.</summary>
        public StackResult Settle(Observed observed)
        {
            var now = owner.time.GetUtcNow();
            var record = status.History?.LastOrDefault(h => h.SpecHash == desired.Hash);
            if (record?.Outcome is Outcomes.Failed or Outcomes.RolledBack)
            {
                // The failure stays what the resource says until the spec changes.
                return new StackResult(status, ResyncInterval);
            }

            status.ObservedGeneration = generation;
            if (observed.State.Deployment is { RolledOut: true })
            {
                var message = $"revision {record?.Revision.ToString(CultureInfo.InvariantCulture)} is available ({desired.Image})";
                status.Phase = Phases.Ready;
                Conditions.Summarize(status, Summary.Ready, Reasons.Ready, message, generation, now);
                Conditions.Set(status, ConditionTypes.AppReady, true, Reasons.Ready, message, generation, now);
            }
            else
            {
                var d = observed.State.Deployment;
                var message = $"the Deployment has {d?.AvailableReplicas ?? 0} of {d?.Replicas ?? 1} pods available";
                status.Phase = Phases.Degraded;
                Conditions.Summarize(status, Summary.NotReady, Reasons.AppNotRunning, message, generation, now);
                Conditions.Set(status, ConditionTypes.AppReady, false, Reasons.AppNotRunning, message, generation, now);
            }

            return new StackResult(status, ResyncInterval);
        }

        private KubeObjects Render(long revision, string image) =>
            KubeRenderer.Render(resource, new RenderInputs(revision, image, creds));

        private async Task ApplyStackObjectsAsync(CancellationToken ct)
        {
            rendered ??= Render(1, desired.Image);
            foreach (var obj in rendered.All().Where(o => o is not V1Deployment and not V1Job))
            {
                await owner.applier.ApplyAsync(obj, force: obj is V1Secret, ct);
            }
        }

        private async Task ApplyDeploymentAsync(ApplyAppDeployment apply, V1Deployment? live, CancellationToken ct)
        {
            var deployment = Render(apply.Revision, apply.Image).Deployment;
            var kept = Value(live?.Metadata.Annotations, LastGoodTemplateAnnotation);
            var liveRevision = RevisionOf(live?.Spec?.Template);
            if (apply.Rollback && kept is not null && RevisionOf(Deserialize(kept)) == apply.Revision)
            {
                deployment.Spec.Template = Deserialize(kept)!;
            }
            else if (!apply.Rollback && live is not null && liveRevision != apply.Revision
                && liveRevision == status.History?.LastOrDefault(h => h.Outcome == Outcomes.Succeeded)?.Revision)
            {
                // A new template replaces the last good one: keep that for a rollback.
                kept = KubernetesJson.Serialize(live.Spec.Template);
            }

            if (kept is not null)
            {
                deployment.Metadata.Annotations ??= new Dictionary<string, string>();
                deployment.Metadata.Annotations[LastGoodTemplateAnnotation] = kept;
            }

            if (!apply.Rollback && desired.HasMigration && liveRevision != apply.Revision)
            {
                Conditions.Set(status, ConditionTypes.Migrated, true, Reasons.MigrationSucceeded,
                    $"the migration Job of revision {apply.Revision.ToString(CultureInfo.InvariantCulture)} completed", generation, owner.time.GetUtcNow());
            }

            await owner.applier.ApplyAsync(deployment, force: false, ct);
        }

        private void SetDataConditions(KubeObserved observed)
        {
            var now = owner.time.GetUtcNow();
            foreach (var (component, ready) in observed.DataReady)
            {
                var type = component == StackNames.DatabaseComponent ? ConditionTypes.DatabaseReady : ConditionTypes.CacheReady;
                var sts = KubeRenderer.ObjectName(names.Name, component);
                Conditions.Set(status, type, ready, ready ? Reasons.Healthy : Reasons.NotHealthy,
                    ready ? $"StatefulSet {sts} has a ready pod" : $"StatefulSet {sts} has no ready pod yet", generation, now);
            }
        }
    }

    /// <summary>
    /// A Secret the pods would reference and that does not exist, in the Docker target's words: the stack stalls at once
    /// rather than leave a migration Job or a Deployment waiting on a pod that cannot start.
    /// </summary>
    private async Task<string?> MissingSecretAsync(string ns, AppDeploymentSpec spec, CancellationToken ct)
    {
        var env = spec.App.Env ?? [];
        for (var i = 0; i < env.Count; i++)
        {
            if (env[i].ValueFrom?.SecretKeyRef is not { } reference)
            {
                continue;
            }

            var secret = await secrets.GetSecretAsync(ns, reference.Name, ct);
            if (secret is null)
            {
                return $"spec.app.env[{i}].valueFrom.secretKeyRef: Secret \"{reference.Name}\" not found in namespace \"{ns}\"; create it (Skiff retries by itself)";
            }

            if (!secret.ContainsKey(reference.Key))
            {
                return $"spec.app.env[{i}].valueFrom.secretKeyRef: Secret \"{reference.Name}\" has no key \"{reference.Key}\"";
            }
        }

        if (!string.IsNullOrEmpty(spec.App.ImagePullSecret) && await secrets.GetSecretAsync(ns, spec.App.ImagePullSecret, ct) is null)
        {
            return $"spec.app.imagePullSecret: Secret \"{spec.App.ImagePullSecret}\" not found in namespace \"{ns}\"; create it (Skiff retries by itself)";
        }

        return null;
    }

    private static V1PodTemplateSpec? Deserialize(string json)
    {
        try
        {
            return KubernetesJson.Deserialize<V1PodTemplateSpec>(json);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    internal static long? RevisionOf(V1PodTemplateSpec? template) =>
        Value(template?.Metadata?.Labels, SkiffLabels.Revision) is { } label
        && long.TryParse(label, NumberStyles.None, CultureInfo.InvariantCulture, out var revision)
            ? revision
            : null;

    /// <summary>A label's or annotation's value (the models' maps are IDictionary).</summary>
    internal static string? Value(IDictionary<string, string>? map, string key) =>
        map is not null && map.TryGetValue(key, out var value) ? value : null;

    private static bool IsNotFound(HttpOperationException e) => e.Response.StatusCode == HttpStatusCode.NotFound;
}
