using k8s;
using k8s.Models;

namespace Skiff.Runtime;

/// <summary>
/// Read access to the current objects of one kind, whatever their source: the
/// <see cref="Informer{T}"/>'s cache for the Kubernetes source, the parsed folder for the
/// directory source. A reconciler reads through this, so it does not care where specs come from.
/// </summary>
/// <remarks>
/// # Guarantees (expected of implementations)
/// Thread-safe; <see cref="Get"/> returns null for an object that is gone (the reconciler then
/// cleans up). Before <see cref="HasSynced"/> the contents may be incomplete: a controller should
/// not start its workers until then, or it would prune what it has not seen yet.
/// </remarks>
public interface IObjectCache<T>
    where T : class, IKubernetesObject<V1ObjectMeta>
{
    bool HasSynced { get; }

    T? Get(ObjectKey key);

    IReadOnlyList<T> List();
}
