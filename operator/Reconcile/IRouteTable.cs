namespace Skiff.Reconcile;

/// <summary>
/// One published port of a stack as the node proxy routes it: where it listens and which revision's container gets
/// the traffic (DESIGN §7, docs/PROXY.md).
/// </summary>
/// <param name="Address">The <c>hostIP:hostPort</c> the proxy listens on; empty for a domain (served on the node's shared ports).</param>
/// <param name="Protocol">http or tcp.</param>
/// <param name="Port">The port's name in the spec (its container port when unnamed).</param>
/// <param name="Revision">The revision <paramref name="Upstream"/> runs.</param>
/// <param name="Upstream">The container's <c>IP:port</c> on the stack network.</param>
/// <param name="Domain">For a route by domain (<c>ports[].domains</c>): the domain; null for a published host port.</param>
/// <param name="Tls">For a domain: served over HTTPS once a certificate is there (<c>ports[].tls</c>).</param>
public sealed record StackRoute(string Address, string Protocol, string Port, long Revision, string Upstream, string? Domain = null, bool Tls = false);

/// <summary>The routes of a stack and when they last changed.</summary>
/// <param name="Routes">Every published port of the stack; empty when the proxy routes nothing to it.</param>
/// <param name="Switched">When they were last written (for the drain of the revision they replaced).</param>
public sealed record StackRoutes(IReadOnlyList<StackRoute> Routes, DateTimeOffset Switched)
{
    public static readonly StackRoutes None = new([], DateTimeOffset.MinValue);

    /// <summary>Whether these are exactly <paramref name="wanted"/>, in any order.</summary>
    public bool Match(IReadOnlyList<StackRoute> wanted) =>
        Routes.Count == wanted.Count && wanted.All(Routes.Contains);
}

/// <summary>
/// The node proxy's routes, as the reconciler sees them: one entry per stack, written atomically. Hosting implements
/// it over the routes file the proxy follows.
/// </summary>
/// <remarks>
/// # Guarantees expected of an implementation
/// - <see cref="SetAsync"/> writes the whole table atomically; other stacks' routes are left as they were.
/// - <see cref="AppliedAsync"/> is true only once the proxy serves the routes last written (or nothing is known to be
///   pending), so an old revision is never stopped before the switch is live.
/// </remarks>
public interface IRouteTable
{
    /// <summary>The stack's routes now (<see cref="StackRoutes.None"/> when it has none).</summary>
    StackRoutes Get(string stackKey);

    /// <summary>Replaces the stack's routes (none: removes them); records the time of the switch.</summary>
    Task SetAsync(string stackKey, IReadOnlyList<StackRoute> routes, CancellationToken ct);

    /// <summary>Whether the proxy serves what was last written.</summary>
    Task<bool> AppliedAsync(CancellationToken ct);
}
