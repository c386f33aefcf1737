using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Skiff.Api;
using Skiff.Runtime;
using Skiff.State;

namespace Skiff.Sources.Kubernetes;

/// <summary>
/// Keeps a record of each of this node's AppDeployments in the state folder, as the folder source does, so
/// that commands run on the node without the API (<c>skiff gc</c>, which must protect every rollback image,
/// and <c>skiff status</c>) know them. Best effort: a write that fails is logged and never fails a reconcile.
/// </summary>
internal sealed class StateMirror(StateStore state, IObjectCache<AppDeployment> cache, string sourceId, ILogger logger)
{
    /// <summary>What was written last per key, so an unchanged status is not written again at every requeue.</summary>
    private readonly ConcurrentDictionary<ObjectKey, byte[]> written = new();

    /// <summary>The state folder's record of a resource read from the API, with the status it has now.</summary>
    public static StatusRecord RecordOf(AppDeployment resource, AppDeploymentStatus status, string sourceId) => new()
    {
        Namespace = resource.Metadata.NamespaceProperty ?? "default",
        Name = resource.Metadata.Name,
        Node = resource.Spec.Node,
        CreatedAt = resource.Metadata.CreationTimestamp is { } created ? new DateTimeOffset(DateTime.SpecifyKind(created, DateTimeKind.Utc)) : DateTimeOffset.UtcNow,
        Generation = resource.Metadata.Generation ?? 0,
        Source = sourceId,
        Spec = resource.Spec,
        Status = status,
    };

    /// <summary>After a reconcile: the resource's record, or its removal when it is gone or not this node's.</summary>
    public void Record(ObjectKey key, AppDeploymentStatus? status)
    {
        var ns = key.Namespace ?? "default";
        try
        {
            if (status is null || cache.Get(key) is not { } resource)
            {
                if (written.TryRemove(key, out _) || state.Read(ns, key.Name)?.Source == sourceId)
                {
                    state.Delete(ns, key.Name);
                }

                return;
            }

            var record = RecordOf(resource, status, sourceId);
            var bytes = StateStore.Serialize(record);
            if (written.TryGetValue(key, out var last) && last.AsSpan().SequenceEqual(bytes))
            {
                return;
            }

            state.EnsureCreated();
            state.Write(record, bytes);
            written[key] = bytes;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            logger.LogWarning("{Namespace}/{Name}: could not record the status in the state folder {StateDir}: {Message}", ns, key.Name, state.Root, e.Message);
        }
    }
}
