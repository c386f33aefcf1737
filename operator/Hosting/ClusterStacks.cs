using System.Globalization;
using k8s;
using k8s.Models;
using Microsoft.Extensions.Logging;
using Skiff.Api;
using Skiff.KubeRuntime;
using Skiff.Reconcile;
using Skiff.Runtime;
using Skiff.Sources;
using Skiff.Sources.Kubernetes;

namespace Skiff.Hosting;

/// <summary>
/// Who runs a stack, read from the cluster and the node alone (no memory of earlier specs, so a restarted instance decides
/// alike): which runtime holds it now, and whether it has data that a switch of <c>spec.runtime</c> would leave behind.
/// </summary>
/// <remarks>
/// # Guarantees
/// - One writer of a stack's status at a time: the node's instance while the stack has containers there (the status lists
///   them in <c>status.components</c>), the <c>skiff-cluster</c> lease holder otherwise.
/// - A stack is never started empty on one runtime while its data is on the other: the switch is refused (InvalidSpec,
///   as a move of <c>spec.node</c> is) while the Docker volumes or the PersistentVolumeClaims exist.
/// </remarks>
public static class RuntimeSwitch
{
    /// <summary>How often a stack waiting for the other runtime to let go of it is looked at again.</summary>
    public static readonly TimeSpan HandOverPoll = TimeSpan.FromSeconds(5);

    public static bool IsKubernetes(AppDeploymentSpec spec) => spec.Runtime == Runtimes.Kubernetes;

    /// <summary>The node's instance still has the stack's containers (it wrote them into the status, and clears them when they go).</summary>
    public static bool HeldByNode(AppDeploymentStatus? status) => status?.Components is { Count: > 0 };

    /// <summary>The refusal, in the words of the refused move of spec.node.</summary>
    public static string Refused(string from, string to, string data) =>
        $"spec.runtime: is immutable while the stack has data (it was {Quote(from)}; {data}): back up the data, delete the stack, " +
        $"recreate it with runtime: {to} and restore (the stack keeps running on runtime {from})";

    /// <summary>The Deployments and StatefulSets of the stack (runtime kubernetes workloads), by Skiff's labels.</summary>
    public static async Task<bool> HasWorkloadsAsync(IKubernetes client, StackNames names, CancellationToken ct)
    {
        var selector = KubernetesStackRuntime.StackSelector(names.Name);
        return (await client.AppsV1.ListNamespacedDeploymentAsync(names.Namespace, labelSelector: selector, cancellationToken: ct)).Items.Count > 0
            || (await client.AppsV1.ListNamespacedStatefulSetAsync(names.Namespace, labelSelector: selector, cancellationToken: ct)).Items.Count > 0;
    }

    /// <summary>The stack's PersistentVolumeClaims (its data on the cluster), by name.</summary>
    public static async Task<IReadOnlyList<string>> ClaimsAsync(IKubernetes client, StackNames names, CancellationToken ct) =>
        [.. (await client.CoreV1.ListNamespacedPersistentVolumeClaimAsync(names.Namespace, labelSelector: KubernetesStackRuntime.StackSelector(names.Name), cancellationToken: ct))
            .Items.Select(c => c.Metadata.Name).Order(StringComparer.Ordinal)];

    /// <summary>The stack's Docker volumes on this node (its data there): the database's, an adopted one, the cache's.</summary>
    public static async Task<IReadOnlyList<string>> VolumesAsync(IContainerEngine engine, StackNames names, AppDeploymentSpec spec, CancellationToken ct)
    {
        var found = new List<string>();
        foreach (var volume in new[] { names.DatabaseVolume, spec.Database?.Volume, names.CacheVolume }.OfType<string>().Where(v => v.Length > 0).Distinct())
        {
            if (await engine.InspectVolumeAsync(volume, ct) is not null)
            {
                found.Add(volume);
            }
        }

        return found;
    }

    /// <summary>The nodes whose kubelet reports DiskPressure=True, by name.</summary>
    public static async Task<IReadOnlyList<string>> NodesUnderDiskPressureAsync(IKubernetes client, CancellationToken ct) =>
        [.. (await client.CoreV1.ListNodeAsync(cancellationToken: ct)).Items
            .Where(n => n.Status?.Conditions?.Any(c => c.Type == "DiskPressure" && c.Status == "True") == true)
            .Select(n => n.Metadata.Name)
            .Order(StringComparer.Ordinal)];

    /// <summary>A status of a spec that is not applied (the running stack is left as it is): Stalled, with the reason.</summary>
    public static AppDeploymentStatus Stalled(AppDeployment resource, string reason, string message, DateTimeOffset now)
    {
        var status = StackReconciler.CloneStatus(resource.Status);
        status.ObservedGeneration = resource.Metadata.Generation;
        status.Phase = status.History?.Any(h => h.Outcome == Outcomes.Succeeded) == true ? Phases.Degraded : Phases.Failed;
        Conditions.Summarize(status, Summary.Stalled, reason, message, resource.Metadata.Generation, now);
        return status;
    }

    /// <summary>Stores a status through the store (only when it changed), with the Events of what changed after the write.</summary>
    public static async Task WriteAsync(IStackStore store, IEventSink events, StoredStack stored, AppDeploymentStatus status, TimeProvider time, CancellationToken ct)
    {
        var resource = stored.Resource!;
        var before = resource.Status;
        store.Annotate(stored, status);
        if (await store.WriteStatusAsync(stored, status, ct))
        {
            StatusEvents.Record(events, resource, before, resource.Status!, time.GetUtcNow());
        }
    }

    private static string Quote(string s) => "\"" + s + "\"";
}

/// <summary>
/// The node's Docker path in front of <see cref="StackController"/>: it never runs a <c>runtime: kubernetes</c> stack.
/// Switched to kubernetes, a stateless stack's containers are removed here (nothing kept: it has no data) and the cluster
/// instance takes it; a stack with volumes here is refused and keeps running. Switched back to docker, the containers
/// wait until the cluster instance has removed the workloads.
/// </summary>
public sealed class DockerRuntimeGate(
    IReconciler inner,
    IObjectCache<AppDeployment> cache,
    IStackStore store,
    StackReconciler stacks,
    IContainerEngine engine,
    IKubernetes client,
    ILogger logger,
    TimeProvider? timeProvider = null) : IReconciler
{
    private readonly TimeProvider time = timeProvider ?? TimeProvider.System;

    public async Task<ReconcileResult> ReconcileAsync(ObjectKey key, CancellationToken cancellationToken)
    {
        var resource = cache.Get(key);
        if (resource is null)
        {
            return await inner.ReconcileAsync(key, cancellationToken);
        }

        var names = new StackNames(key.Namespace ?? "default", key.Name);
        var node = stacks.Context.Node;
        if (!RuntimeSwitch.IsKubernetes(resource.Spec))
        {
            if (resource.Spec.Node == node && resource.Metadata.DeletionTimestamp is null
                && !(await stacks.ListStacksAsync(cancellationToken)).Contains(names.Key)
                && await RuntimeSwitch.HasWorkloadsAsync(client, names, cancellationToken))
            {
                // Back from runtime kubernetes: the cluster instance removes the workloads first (or refuses, with data).
                logger.LogDebug("{Stack}: waiting for the instance holding Lease skiff-cluster to remove its Kubernetes workloads before starting containers on node {Node}", names.Key, node);
                return ReconcileResult.After(RuntimeSwitch.HandOverPoll);
            }

            return await inner.ReconcileAsync(key, cancellationToken);
        }

        if (!(await stacks.ListStacksAsync(cancellationToken)).Contains(names.Key))
        {
            // Not this node's: the cluster instance runs it.
            return ReconcileResult.Done;
        }

        var stored = await store.ReadAsync(key, cancellationToken);
        if (stored.Resource is not { } current)
        {
            return ReconcileResult.Done;
        }

        if (stored.Deleting)
        {
            // Deleted while its switch was refused: the containers are here, so the cleanup (and the finalizer) is ours.
            if (stored.HasFinalizer)
            {
                await stacks.DeleteAsync(names, current.Spec, cancellationToken);
                await store.ReleaseAsync(stored, cancellationToken);
            }

            store.Forget(stored);
            return ReconcileResult.Done;
        }

        var volumes = await RuntimeSwitch.VolumesAsync(engine, names, current.Spec, cancellationToken);
        if (volumes.Count > 0)
        {
            var message = RuntimeSwitch.Refused(Runtimes.Docker, Runtimes.Kubernetes, $"volumes {string.Join(", ", volumes)} on node {node}");
            logger.LogWarning("{Stack}: {Message}", names.Key, message);
            var refused = RuntimeSwitch.Stalled(current, Reasons.InvalidSpec, message, time.GetUtcNow());
            if (refused.Components is not { Count: > 0 })
            {
                // A stack that never converged here has none listed yet: list them, so the cluster instance keeps off it.
                refused.Components = await ContainersAsync(names, cancellationToken);
            }

            await RuntimeSwitch.WriteAsync(store, stacks.Events, stored, refused, time, cancellationToken);
            return ReconcileResult.After(KubernetesStackRuntime.ResyncInterval);
        }

        logger.LogInformation("{Stack}: switched to runtime kubernetes; removing its containers from node {Node} (it has no data)", names.Key, node);
        await stacks.DeleteAsync(names, null, cancellationToken);
        var status = StackReconciler.CloneStatus(current.Status);
        status.Components = null;
        status.Endpoint = null;
        status.ObservedGeneration = current.Metadata.Generation;
        Conditions.Summarize(status, Summary.Progressing, Reasons.RolloutInProgress,
            $"switched to runtime kubernetes: the containers on node {node} are removed; the instance holding Lease skiff-cluster creates the workloads",
            current.Metadata.Generation, time.GetUtcNow());
        await RuntimeSwitch.WriteAsync(store, stacks.Events, stored, status, time, cancellationToken);
        store.Forget(stored);
        return ReconcileResult.Done;
    }

    private async Task<List<ComponentStatus>> ContainersAsync(StackNames names, CancellationToken ct)
    {
        var containers = await engine.ListContainersAsync(
            new Dictionary<string, string> { [SkiffLabels.ManagedBy] = SkiffLabels.ManagedByValue, [SkiffLabels.App] = names.Key, [SkiffLabels.Source] = stacks.Context.SourceId },
            ct);
        return [.. containers.Where(c => c.Component is not null).DistinctBy(c => c.Component).Select(c => new ComponentStatus
        {
            Name = c.Component!,
            ContainerId = c.Id.Length > 12 ? c.Id[..12] : c.Id,
            Image = c.Image,
            State = c.State,
            Health = c.Health ?? "none",
            Restarts = c.RestartCount,
        })];
    }
}

/// <summary>
/// The controller of <c>runtime: kubernetes</c> stacks, run only by the instance holding the Lease <c>skiff-cluster</c>:
/// finalizer, <see cref="KubernetesStackRuntime"/>, status through /status with its Events, deletion, the disk guard
/// (nodes with DiskPressure hold new rollouts) and the switch of a stateless stack back to docker.
/// </summary>
public sealed class ClusterStackController(
    IStackStore store,
    KubernetesStackRuntime runtime,
    IKubernetes client,
    IEventSink events,
    Action<ObjectKey, AppDeploymentStatus?> reconciled,
    ILogger<ClusterStackController> logger,
    TimeProvider? timeProvider = null) : IReconciler
{
    /// <summary>How often a rollout held by DiskPressure is looked at again.</summary>
    public static readonly TimeSpan DiskPressurePoll = TimeSpan.FromSeconds(30);

    private readonly TimeProvider time = timeProvider ?? TimeProvider.System;

    public async Task<ReconcileResult> ReconcileAsync(ObjectKey key, CancellationToken cancellationToken)
    {
        var names = new StackNames(key.Namespace ?? "default", key.Name);
        var stored = await store.ReadAsync(key, cancellationToken);
        if (stored.Resource is not { } resource)
        {
            // Gone without the finalizer's cleanup (or a docker stack): what owner references do not remove goes; data stays.
            reconciled(key, null);
            return ReconcileResult.Done;
        }

        if (!RuntimeSwitch.IsKubernetes(resource.Spec))
        {
            return await LetGoAsync(stored, resource, names, cancellationToken);
        }

        if (RuntimeSwitch.HeldByNode(resource.Status))
        {
            // Switched from docker: the node's instance removes its containers first (or refuses, with data), and writes.
            return ReconcileResult.After(RuntimeSwitch.HandOverPoll);
        }

        if (stored.Deleting)
        {
            if (stored.HasFinalizer)
            {
                logger.LogInformation("{Stack}: deleting its workloads (reclaimPolicy {Policy})", names.Key, Defaults.Apply(resource.Spec).Database?.Storage?.ReclaimPolicy);
                await runtime.DeleteAsync(names, resource.Spec, cancellationToken);
                await store.ReleaseAsync(stored, cancellationToken);
            }

            store.Forget(stored);
            reconciled(key, null);
            return ReconcileResult.Done;
        }

        await store.EnsureFinalizerAsync(stored, cancellationToken);
        var now = time.GetUtcNow();
        if (stored.Problems.Count > 0)
        {
            var message = string.Join("\n", stored.Problems);
            logger.LogWarning("{Stack}: invalid spec, the running workloads (if any) are left as they are:\n{Problems}", names.Key, message);
            await WriteAsync(stored, RuntimeSwitch.Stalled(resource, Reasons.InvalidSpec, message, now), cancellationToken);
            return ReconcileResult.Done;
        }

        if (RolloutRequests.ApplyRollbackAnnotation(resource, out var rollbackProblem) is not { } effective)
        {
            await WriteAsync(stored, RuntimeSwitch.Stalled(resource, Reasons.InvalidSpec, $"metadata.annotations[{RolloutRequests.RollbackTo}]: {rollbackProblem}", now), cancellationToken);
            return ReconcileResult.Done;
        }

        var pressure = await RuntimeSwitch.NodesUnderDiskPressureAsync(client, cancellationToken);
        var hash = SpecHash.Compute(effective.Spec);
        var begins = resource.Status?.History?.Any(h => h.SpecHash == hash) != true;
        if (pressure.Count > 0 && begins)
        {
            var status = WaitForDisk(resource, pressure, now);
            await WriteAsync(stored, status, cancellationToken);
            return ReconcileResult.After(DiskPressurePoll);
        }

        var result = await runtime.ReconcileAsync(effective, (s, ct) => WriteAsync(stored, ApplyDiskPressure(s, pressure, resource.Metadata.Generation), ct), cancellationToken);
        await WriteAsync(stored, ApplyDiskPressure(result.Status, pressure, resource.Metadata.Generation), cancellationToken);
        return result.RequeueAfter is { } after ? ReconcileResult.After(after) : ReconcileResult.Done;
    }

    /// <summary>
    /// A stack switched to docker: a stateless one's workloads are deleted for the node's instance to take it; one with
    /// PersistentVolumeClaims is refused and keeps running here.
    /// </summary>
    private async Task<ReconcileResult> LetGoAsync(StoredStack stored, AppDeployment resource, StackNames names, CancellationToken ct)
    {
        if (stored.Deleting || !await RuntimeSwitch.HasWorkloadsAsync(client, names, ct))
        {
            return ReconcileResult.Done;
        }

        var claims = await RuntimeSwitch.ClaimsAsync(client, names, ct);
        if (claims.Count > 0)
        {
            var message = RuntimeSwitch.Refused(Runtimes.Kubernetes, Runtimes.Docker, $"PersistentVolumeClaims {string.Join(", ", claims)}");
            logger.LogWarning("{Stack}: {Message}", names.Key, message);
            await WriteAsync(stored, RuntimeSwitch.Stalled(resource, Reasons.InvalidSpec, message, time.GetUtcNow()), ct);
            return ReconcileResult.After(KubernetesStackRuntime.ResyncInterval);
        }

        logger.LogInformation("{Stack}: switched to runtime docker; deleting its Kubernetes workloads (it has no data) for node {Node}'s instance to take it", names.Key, resource.Spec.Node);
        await runtime.DeleteAsync(names, null, ct);
        reconciled(stored.Key, null);
        return ReconcileResult.Done;
    }

    /// <summary>As the Docker target's disk guard: the new rollout waits, the serving revision stays.</summary>
    private AppDeploymentStatus WaitForDisk(AppDeployment resource, IReadOnlyList<string> nodes, DateTimeOffset now)
    {
        var generation = resource.Metadata.Generation;
        var status = ApplyDiskPressure(StackReconciler.CloneStatus(resource.Status), nodes, generation);
        var message = $"the rollout waits for disk space: {Pressure(nodes)}";
        status.ObservedGeneration = generation;
        status.Phase = status.History?.Any(h => h.Outcome == Outcomes.Succeeded) == true ? Phases.Progressing : Phases.Pending;
        Conditions.Summarize(status, Summary.Progressing, Reasons.DiskPressure, message, generation, now);
        Conditions.Set(status, ConditionTypes.Ready, false, Reasons.DiskPressure, message, generation, now);
        return status;
    }

    /// <summary>DiskPressure follows the nodes: True while one reports it, False once none does (only if it was ever set).</summary>
    private AppDeploymentStatus ApplyDiskPressure(AppDeploymentStatus status, IReadOnlyList<string> nodes, long? generation)
    {
        var now = time.GetUtcNow();
        if (nodes.Count > 0)
        {
            Conditions.Set(status, ConditionTypes.DiskPressure, true, Reasons.DiskPressure, Pressure(nodes), generation, now);
        }
        else if (Conditions.Get(status, ConditionTypes.DiskPressure) is not null)
        {
            Conditions.Set(status, ConditionTypes.DiskPressure, false, Reasons.DiskSpaceAvailable, "no node reports DiskPressure", generation, now);
        }

        return status;
    }

    private static string Pressure(IReadOnlyList<string> nodes) =>
        string.Create(CultureInfo.InvariantCulture, $"node{(nodes.Count == 1 ? "" : "s")} {string.Join(", ", nodes)} report{(nodes.Count == 1 ? "s" : "")} DiskPressure (the kubelet's image GC and eviction free space; see docs/KUBERNETES-RUNTIME.md)");

    private async Task WriteAsync(StoredStack stored, AppDeploymentStatus status, CancellationToken ct)
    {
        await RuntimeSwitch.WriteAsync(store, events, stored, status, time, ct);
        reconciled(stored.Key, stored.Resource!.Status ?? status);
    }
}

/// <summary>This instance stopped holding a lease it worked under: the process exits for its supervisor to restart it.</summary>
public sealed class LeaseLostException(string message) : Exception(message);
