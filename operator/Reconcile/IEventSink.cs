using Skiff.Api;

namespace Skiff.Reconcile;

/// <summary>
/// Records a change of state of a resource. The Kubernetes source writes core/v1 Events (with the
/// resource's uid); the folder source logs them and keeps the latest in the state folder.
/// </summary>
public interface IEventSink
{
    void Record(AppDeployment resource, EventKind kind, string reason, string message);
}

/// <summary>Normal or Warning, as core/v1 Events.</summary>
public enum EventKind
{
    Normal,
    Warning,
}
