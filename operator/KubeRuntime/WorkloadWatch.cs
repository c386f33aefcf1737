using k8s;
using k8s.Models;
using Microsoft.Extensions.Logging;
using Skiff.Reconcile;
using Skiff.Runtime;

namespace Skiff.KubeRuntime;

/// <summary>
/// Watches the workloads of <c>runtime: kubernetes</c> stacks (Deployments, StatefulSets, Jobs and Pods carrying Skiff's
/// label <c>dev.skiff.managed-by=skiff</c>, in every namespace) and names the stack a change belongs to, so that the
/// controller acts on a Job that completed, a pod that crash-loops or a Deployment that rolled out as soon as the API
/// server says so. The runtime's own poll (<see cref="KubeRolloutPlanner.PollInterval"/>) stays, as a resync.
/// </summary>
/// <remarks>
/// # Guarantees
/// - Each kind is listed, then watched, by an <see cref="Informer{T}"/>: reopened after a break, listed again after a 410.
/// - An update counts when what the runtime reads changed (status, generation, labels, deletion), not for a write that
///   only touched annotations or managed fields (the runtime's own applies), so an apply does not wake its own stack.
/// # Caveats
/// - The informers keep the watched objects in memory: the stacks' Deployments, StatefulSets, Jobs and Pods.
/// </remarks>
public sealed class WorkloadWatch(IKubernetes client, ILoggerFactory logging)
{
    private const string Selector = SkiffLabels.ManagedBy + "=" + SkiffLabels.ManagedByValue;

    /// <summary>Runs until <paramref name="ct"/> is cancelled, calling <paramref name="changed"/> with the stack of each relevant change.</summary>
    public Task RunAsync(Action<ObjectKey> changed, CancellationToken ct) => Task.WhenAll(
        Watch(changed, new KubernetesListWatch<V1Deployment>(
            async c => List(await client.AppsV1.ListDeploymentForAllNamespacesAsync(labelSelector: Selector, cancellationToken: c)),
            (rv, timeout, onError, c) => client.AppsV1.WatchListDeploymentForAllNamespacesAsync(
                allowWatchBookmarks: true, labelSelector: Selector, resourceVersion: rv, timeoutSeconds: timeout, onError: onError, cancellationToken: c)), d => d.Status, ct),
        Watch(changed, new KubernetesListWatch<V1StatefulSet>(
            async c => List(await client.AppsV1.ListStatefulSetForAllNamespacesAsync(labelSelector: Selector, cancellationToken: c)),
            (rv, timeout, onError, c) => client.AppsV1.WatchListStatefulSetForAllNamespacesAsync(
                allowWatchBookmarks: true, labelSelector: Selector, resourceVersion: rv, timeoutSeconds: timeout, onError: onError, cancellationToken: c)), s => s.Status, ct),
        Watch(changed, new KubernetesListWatch<V1Job>(
            async c => List(await client.BatchV1.ListJobForAllNamespacesAsync(labelSelector: Selector, cancellationToken: c)),
            (rv, timeout, onError, c) => client.BatchV1.WatchListJobForAllNamespacesAsync(
                allowWatchBookmarks: true, labelSelector: Selector, resourceVersion: rv, timeoutSeconds: timeout, onError: onError, cancellationToken: c)), j => j.Status, ct),
        Watch(changed, new KubernetesListWatch<V1Pod>(
            async c => List(await client.CoreV1.ListPodForAllNamespacesAsync(labelSelector: Selector, cancellationToken: c)),
            (rv, timeout, onError, c) => client.CoreV1.WatchListPodForAllNamespacesAsync(
                allowWatchBookmarks: true, labelSelector: Selector, resourceVersion: rv, timeoutSeconds: timeout, onError: onError, cancellationToken: c)), p => p.Status, ct));

    /// <summary>The stack an object of a stack belongs to: its namespace and its <c>dev.skiff.app</c> label.</summary>
    public static ObjectKey? StackOf(V1ObjectMeta? meta) =>
        KubernetesStackRuntime.Value(meta?.Labels, SkiffLabels.App) is { Length: > 0 } app ? new ObjectKey(meta!.NamespaceProperty ?? "default", app) : null;

    /// <summary>An update the runtime would read differently: status, generation, labels or deletion changed.</summary>
    public static bool Relevant<T>(T old, T updated, Func<T, object?> status)
        where T : IKubernetesObject<V1ObjectMeta>
    {
        ArgumentNullException.ThrowIfNull(status);
        return old.Metadata.Generation != updated.Metadata.Generation
            || (old.Metadata.DeletionTimestamp is null) != (updated.Metadata.DeletionTimestamp is null)
            || Json(old.Metadata.Labels) != Json(updated.Metadata.Labels)
            || Json(status(old)) != Json(status(updated));
    }

    private static string Json(object? value) => value is null ? "" : KubernetesJson.Serialize(value);

    private static (IReadOnlyList<T>, string) List<T>(IItems<T> list) => ([.. list.Items ?? []], (list as IMetadata<V1ListMeta>)?.Metadata?.ResourceVersion ?? "");

    private Task Watch<T>(Action<ObjectKey> changed, IListWatch<T> listWatch, Func<T, object?> status, CancellationToken ct)
        where T : class, IKubernetesObject<V1ObjectMeta>
    {
        var informer = new Informer<T>(listWatch, logging.CreateLogger<Informer<T>>());
        void Queue(T obj)
        {
            if (StackOf(obj.Metadata) is { } key)
            {
                changed(key);
            }
        }

        informer.OnAdd += Queue;
        informer.OnDelete += Queue;
        informer.OnUpdate += (old, updated) =>
        {
            if (Relevant(old, updated, status))
            {
                Queue(updated);
            }
        };
        return informer.RunAsync(ct);
    }
}
