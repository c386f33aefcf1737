using k8s;

namespace Skiff.Runtime;

/// <summary>
/// The two calls an <see cref="Informer{T}"/> needs from an API server: a consistent list, and a
/// watch that starts at a resourceVersion. Selectors and the namespace belong to the implementation.
/// </summary>
/// <remarks>
/// # Guarantees (expected of implementations)
/// - <see cref="ListAsync"/> returns every matching object and the list's resourceVersion.
/// - <see cref="WatchAsync"/> yields events after that version, including BOOKMARK events whose
///   object carries only a newer resourceVersion; it ends normally when the server closes the
///   watch (its timeout), and throws <see cref="WatchExpiredException"/> when the version is too
///   old (HTTP 410 Gone / an ERROR event with code 410), so the informer relists.
/// </remarks>
public interface IListWatch<T>
{
    Task<(IReadOnlyList<T> Items, string ResourceVersion)> ListAsync(CancellationToken cancellationToken);

    IAsyncEnumerable<(WatchEventType Type, T Object)> WatchAsync(string resourceVersion, CancellationToken cancellationToken);
}

/// <summary>
/// The watch's resourceVersion is too old (HTTP 410 Gone, reason Expired): events were lost, so
/// the watcher must list again from scratch.
/// </summary>
public sealed class WatchExpiredException : Exception
{
    public WatchExpiredException()
        : base("the watch's resourceVersion has expired")
    {
    }

    public WatchExpiredException(string message)
        : base(message)
    {
    }

    public WatchExpiredException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }
}
