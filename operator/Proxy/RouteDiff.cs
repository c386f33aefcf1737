namespace Skiff.Proxy;

/// <summary>A listener whose upstream changes: new requests (HTTP) or connections (TCP) go to <see cref="To"/>.</summary>
/// <param name="From">The listener as it runs.</param>
/// <param name="To">The listener as the routes want it.</param>
public sealed record RouteSwitch(ProxyListener From, ProxyListener To);

/// <summary>
/// What applying new routes does to the running listeners, keyed by address: a pure function, so the
/// proxy's reload is planned here and tested without sockets.
/// </summary>
/// <remarks>
/// # Guarantees
/// - An address in both with the same protocol keeps its socket: it is a <see cref="Switches"/> entry when
///   the upstream changed, an <see cref="Updates"/> entry when only its metadata (stack, port, revision)
///   changed, and in neither when nothing changed.
/// - An address whose protocol changed is stopped and started again (it cannot change in place).
/// - <see cref="IsEmpty"/> is true exactly when the running listeners already are the routes.
/// </remarks>
/// <param name="Start">Listeners to open.</param>
/// <param name="Stop">Listeners to close (they stop accepting and drain).</param>
/// <param name="Switches">Listeners whose upstream changes.</param>
/// <param name="Updates">Listeners whose upstream stays and whose metadata changes.</param>
public sealed record RouteDiff(
    IReadOnlyList<ProxyListener> Start,
    IReadOnlyList<ProxyListener> Stop,
    IReadOnlyList<RouteSwitch> Switches,
    IReadOnlyList<RouteSwitch> Updates)
{
    /// <summary>Nothing to do.</summary>
    public bool IsEmpty => Start.Count == 0 && Stop.Count == 0 && Switches.Count == 0 && Updates.Count == 0;

    /// <summary>Compares the running listeners with the wanted ones.</summary>
    /// <param name="running">The listeners up now (one per address).</param>
    /// <param name="wanted">The listeners of the routes to apply (one per address).</param>
    public static RouteDiff Compute(IEnumerable<ProxyListener> running, IEnumerable<ProxyListener> wanted)
    {
        var now = running.ToDictionary(l => l.Address, StringComparer.Ordinal);
        var start = new List<ProxyListener>();
        var stop = new List<ProxyListener>();
        var switches = new List<RouteSwitch>();
        var updates = new List<RouteSwitch>();
        var wantedAddresses = new HashSet<string>(StringComparer.Ordinal);
        foreach (var want in wanted)
        {
            wantedAddresses.Add(want.Address);
            if (!now.TryGetValue(want.Address, out var have))
            {
                start.Add(want);
            }
            else if (have.Protocol != want.Protocol)
            {
                stop.Add(have);
                start.Add(want);
            }
            else if (!string.Equals(have.Upstream, want.Upstream, StringComparison.Ordinal))
            {
                switches.Add(new RouteSwitch(have, want));
            }
            else if (have != want)
            {
                updates.Add(new RouteSwitch(have, want));
            }
        }

        stop.AddRange(now.Values.Where(l => !wantedAddresses.Contains(l.Address)));
        return new RouteDiff(start, stop, switches, updates);
    }
}
