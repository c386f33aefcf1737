namespace Skiff.Runtime;

/// <summary>
/// Level-based reconcile of one object: read its current state by key and move the world towards
/// it. Both sources (the Kubernetes API and the folder) call the same reconciler through the same
/// queue.
/// </summary>
/// <remarks>
/// # Guarantees
/// The <see cref="Controller"/> never runs two reconciles of one key at once.
///
/// # Caveats
/// The key may name an object that no longer exists (it was deleted after it was queued): treat
/// "not found" as "clean up if needed, then done". Throwing means "retry with backoff"; throw
/// <see cref="TerminalException"/> for an error that retrying cannot fix.
/// </remarks>
public interface IReconciler
{
    Task<ReconcileResult> ReconcileAsync(ObjectKey key, CancellationToken cancellationToken);
}

/// <summary>What a successful reconcile asks for next (controller-runtime's <c>reconcile.Result</c>).</summary>
/// <param name="Requeue">Retry through the rate limiter (backoff), without counting it as an error.</param>
/// <param name="RequeueAfter">Come back after this delay (when positive); wins over <paramref name="Requeue"/>.</param>
public readonly record struct ReconcileResult(bool Requeue = false, TimeSpan RequeueAfter = default)
{
    /// <summary>Done until something changes.</summary>
    public static ReconcileResult Done => default;

    /// <summary>Done for now; look again after <paramref name="delay"/> (the periodic resync of a healthy object).</summary>
    public static ReconcileResult After(TimeSpan delay) => new(RequeueAfter: delay);
}

/// <summary>
/// An error that retrying will not fix (an invalid spec, an unsupported runtime): the controller
/// logs it, forgets the key's backoff and does not retry until the object changes and is queued again.
/// </summary>
public class TerminalException : Exception
{
    public TerminalException()
    {
    }

    public TerminalException(string message)
        : base(message)
    {
    }

    public TerminalException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }
}
