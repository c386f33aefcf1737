using System.Globalization;
using k8s;
using k8s.Autorest;
using k8s.Models;
using Microsoft.Extensions.Logging;
using Skiff.Api;
using Skiff.KubeRender;
using Skiff.Reconcile;

namespace Skiff.KubeRuntime;

/// <summary>What the API shows of a stack: the planner's view and the live Deployment the executor needs (its template, for a rollback).</summary>
public sealed record Observed(KubeObserved State, V1Deployment? Deployment, IReadOnlyList<V1Job> Jobs);

/// <summary>Observing the workloads, pruning what the spec no longer renders, and deleting a stack.</summary>
public sealed partial class KubernetesStackRuntime
{
    /// <summary>The kinds a stack's objects are pruned from (Secrets and claims never are: they hold its data).</summary>
    private static readonly string[] PrunedKinds = ["Deployment", "StatefulSet", "Service", "NetworkPolicy", "Job"];

    /// <summary>Skiff's labels of one stack's objects.</summary>
    public static string StackSelector(string name) => $"{SkiffLabels.ManagedBy}={SkiffLabels.ManagedByValue},{SkiffLabels.App}={name}";

    public async Task<Observed> ObserveAsync(StackNames names, KubeDesired desired, CancellationToken ct)
    {
        V1Deployment? deployment = null;
        try
        {
            deployment = await client.AppsV1.ReadNamespacedDeploymentAsync(names.Name, names.Namespace, cancellationToken: ct);
        }
        catch (HttpOperationException e) when (IsNotFound(e))
        {
        }

        var jobs = (await client.BatchV1.ListNamespacedJobAsync(
            names.Namespace, labelSelector: $"{StackSelector(names.Name)},{SkiffLabels.Component}={StackNames.MigrateComponent}", cancellationToken: ct)).Items;
        var data = new Dictionary<string, bool>(StringComparer.Ordinal);
        foreach (var component in desired.DataComponents)
        {
            try
            {
                var sts = await client.AppsV1.ReadNamespacedStatefulSetAsync(KubeRenderer.ObjectName(names.Name, component), names.Namespace, cancellationToken: ct);
                data[component] = sts.Status is { } s && s.ObservedGeneration >= sts.Metadata.Generation && (s.ReadyReplicas ?? 0) >= (sts.Spec.Replicas ?? 1);
            }
            catch (HttpOperationException e) when (IsNotFound(e))
            {
                data[component] = false;
            }
        }

        var observedJobs = jobs
            .Select(j => (Job: j, Revision: long.TryParse(Value(j.Metadata.Labels, SkiffLabels.Revision), NumberStyles.None, CultureInfo.InvariantCulture, out var r) ? r : 0))
            .Where(j => j.Revision > 0)
            .Select(j => new ObservedJob(j.Revision, HasCondition(j.Job.Status?.Conditions, "Complete"), JobFailure(j.Job)))
            .ToList();
        var pods = (await client.CoreV1.ListNamespacedPodAsync(names.Namespace, labelSelector: StackSelector(names.Name), cancellationToken: ct)).Items
            .Select(ObservePod)
            .Where(p => p.Component is StackNames.AppComponent or StackNames.MigrateComponent)
            .ToList();
        return new Observed(new KubeObserved(Observe(deployment), observedJobs, data, pods), deployment, jobs.ToList());
    }

    /// <summary>A pod's containers as its kubelet reports them: waiting reasons, restarts and how the last run ended.</summary>
    internal static ObservedPod ObservePod(V1Pod pod)
    {
        var containers = (pod.Status?.ContainerStatuses ?? []).Concat(pod.Status?.InitContainerStatuses ?? [])
            .Select(c =>
            {
                var ended = c.LastState?.Terminated ?? c.State?.Terminated;
                return new ObservedPodContainer(c.Name, c.State?.Waiting?.Reason, c.State?.Waiting?.Message, c.RestartCount, ended?.ExitCode, ended?.Reason);
            })
            .ToList();
        var revision = long.TryParse(Value(pod.Metadata.Labels, SkiffLabels.Revision), NumberStyles.None, CultureInfo.InvariantCulture, out var r) ? r : (long?)null;
        return new ObservedPod(pod.Metadata.Name, Value(pod.Metadata.Labels, SkiffLabels.Component) ?? "", revision, containers);
    }

    private static ObservedDeployment? Observe(V1Deployment? d)
    {
        if (d is null)
        {
            return null;
        }

        var progressing = d.Status?.Conditions?.FirstOrDefault(c => c.Type == "Progressing");
        var deadline = progressing is { Status: "False", Reason: "ProgressDeadlineExceeded" }
            ? $"the Deployment did not become available within its progress deadline ({(d.Spec.ProgressDeadlineSeconds ?? 600).ToString(CultureInfo.InvariantCulture)}s): {progressing.Message}"
            : null;
        return new ObservedDeployment(
            RevisionOf(d.Spec.Template),
            d.Metadata.Generation ?? 0,
            d.Status?.ObservedGeneration,
            d.Spec.Replicas ?? 1,
            d.Status?.Replicas ?? 0,
            d.Status?.UpdatedReplicas ?? 0,
            d.Status?.AvailableReplicas ?? 0,
            deadline);
    }

    private static bool HasCondition(IList<V1JobCondition>? conditions, string type) =>
        conditions?.Any(c => c.Type == type && c.Status == "True") == true;

    /// <summary>A Failed Job, in words: its condition's reason and message (BackoffLimitExceeded: the migration exited non-zero; DeadlineExceeded: migrate.timeoutSeconds).</summary>
    private static string? JobFailure(V1Job job)
    {
        var failed = job.Status?.Conditions?.FirstOrDefault(c => c.Type == "Failed" && c.Status == "True");
        if (failed is null)
        {
            return null;
        }

        var why = failed.Reason switch
        {
            "DeadlineExceeded" => $"it did not finish within migrate.timeoutSeconds ({(job.Spec.ActiveDeadlineSeconds ?? 0).ToString(CultureInfo.InvariantCulture)}s)",
            "BackoffLimitExceeded" => "its pod exited with a non-zero code",
            _ => failed.Reason ?? "failed",
        };
        return $"migration Job {job.Metadata.Name} failed: {why}" + (string.IsNullOrEmpty(failed.Message) ? "" : $" ({failed.Message})") +
            $"; see kubectl logs job/{job.Metadata.Name} -n {job.Metadata.NamespaceProperty}";
    }

    /// <summary>
    /// Deletes the stack's objects (by Skiff's labels and a controller owner reference to this AppDeployment) that the
    /// current render does not have. Secrets and claims are never pruned (the data outlives a spec without a database
    /// until the stack is deleted with reclaimPolicy Delete); finished migration Jobs are left to their TTL, for their logs.
    /// </summary>
    private async Task PruneAsync(AppDeployment resource, StackNames names, KubeObjects rendered, Observed observed, CancellationToken ct)
    {
        var keep = rendered.All().Select(o => (o.Kind, o.Metadata.Name)).ToHashSet();
        var uid = resource.Metadata.Uid;
        foreach (var kind in PrunedKinds)
        {
            IReadOnlyList<IKubernetesObject<V1ObjectMeta>> items = kind switch
            {
                "Deployment" when observed.Deployment is null => [],
                "Job" => observed.Jobs,
                _ => await applier.ListAsync(kind, names.Namespace, StackSelector(names.Name), ct),
            };
            foreach (var item in items)
            {
                var owned = item.Metadata.OwnerReferences?.Any(o => o.Controller == true && o.Uid == uid) == true;
                var finishedJob = item is V1Job job && (HasCondition(job.Status?.Conditions, "Complete") || HasCondition(job.Status?.Conditions, "Failed"));
                if (!owned || finishedJob || (kind != "Job" && keep.Contains((kind, item.Metadata.Name))))
                {
                    continue;
                }

                logger.LogInformation("{Stack}: deleting {Kind} {Name}: the spec no longer renders it", names.Key, kind, item.Metadata.Name);
                await applier.DeleteAsync(kind, names.Namespace, item.Metadata.Name, ct);
            }
        }
    }

    /// <summary>
    /// Deletes a stack's workloads: Deployment, Jobs, StatefulSets, Services and NetworkPolicies. The database's claims
    /// and its <c>NAME-db</c> Secret go only with <c>database.storage.reclaimPolicy: Delete</c>, the cache's claims only
    /// with <c>cache.storage.reclaimPolicy: Delete</c>. Explicit rather than left to the garbage collector (which would
    /// also remove what owner references tie to the AppDeployment once it is gone): the result is the same on a cluster,
    /// and done when this returns. Works for a stack that never existed; call it again after a failure.
    /// </summary>
    /// <param name="names">The stack.</param>
    /// <param name="spec">Its last known spec (the reclaim policies), or null when unknown: then the data is kept.</param>
    /// <param name="ct">Cancels the teardown; a later call finishes it.</param>
    public async Task DeleteAsync(StackNames names, AppDeploymentSpec? spec, CancellationToken ct)
    {
        var selector = StackSelector(names.Name);
        foreach (var kind in PrunedKinds)
        {
            foreach (var item in await applier.ListAsync(kind, names.Namespace, selector, ct))
            {
                await applier.DeleteAsync(kind, names.Namespace, item.Metadata.Name, ct);
            }
        }

        var defaulted = spec is null ? null : Defaults.Apply(spec);
        var dropped = new List<string>();
        if (defaulted?.Database is { Storage.ReclaimPolicy: ReclaimPolicies.Delete })
        {
            dropped.Add(StackNames.DatabaseComponent);
            await applier.DeleteAsync("Secret", names.Namespace, names.DatabaseSecret, ct);
        }

        if (defaulted?.Cache is { Storage.ReclaimPolicy: ReclaimPolicies.Delete })
        {
            dropped.Add(StackNames.CacheComponent);
        }

        foreach (var component in dropped)
        {
            foreach (var claim in await applier.ListAsync("PersistentVolumeClaim", names.Namespace, $"{selector},{SkiffLabels.Component}={component}", ct))
            {
                await applier.DeleteAsync("PersistentVolumeClaim", names.Namespace, claim.Metadata.Name, ct);
            }
        }

        logger.LogInformation("{Stack}: deleted its workloads; {Kept}", names.Key,
            dropped.Count == 0 ? "its claims and Secret are kept (reclaimPolicy Retain)" : $"deleted the claims of the {string.Join(" and the ", dropped)}");
    }
}
