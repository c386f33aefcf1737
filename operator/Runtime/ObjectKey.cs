using k8s;
using k8s.Models;

namespace Skiff.Runtime;

/// <summary>
/// Identifies one object to reconcile: its namespace (null for cluster-scoped kinds) and name.
/// </summary>
/// <remarks>
/// # Guarantees
/// Value equality, so it can be used as a work-queue and cache key. <see cref="ToString"/> prints
/// <c>namespace/name</c> (or just <c>name</c> when cluster-scoped), the form kubectl and
/// client-go's <c>MetaNamespaceKeyFunc</c> use.
///
/// # Caveats
/// The key carries no kind: one queue serves one kind, as in controller-runtime.
/// </remarks>
public readonly record struct ObjectKey(string? Namespace, string Name)
{
    /// <summary>The key of a Kubernetes object, from its metadata.</summary>
    public static ObjectKey From(IKubernetesObject<V1ObjectMeta> obj)
    {
        ArgumentNullException.ThrowIfNull(obj);
        var meta = obj.Metadata ?? throw new ArgumentException("object has no metadata", nameof(obj));
        return new ObjectKey(string.IsNullOrEmpty(meta.NamespaceProperty) ? null : meta.NamespaceProperty, meta.Name);
    }

    /// <summary>Parses <c>namespace/name</c> or <c>name</c>.</summary>
    public static ObjectKey Parse(string text)
    {
        ArgumentException.ThrowIfNullOrEmpty(text);
        var slash = text.IndexOf('/', StringComparison.Ordinal);
        return slash < 0 ? new ObjectKey(null, text) : new ObjectKey(text[..slash], text[(slash + 1)..]);
    }

    public override string ToString() => Namespace is null ? Name : $"{Namespace}/{Name}";
}
