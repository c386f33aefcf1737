using Prometheus;

namespace Skiff.Proxy;

/// <summary>
/// The proxy's metrics, on a registry of its own (served on <c>skiff proxy</c>'s <c>/metrics</c>, never
/// mixed with the operator's). docs/PROXY.md lists them. The <c>listener</c> label is the listen address
/// (<c>127.0.0.1:3000</c>): unique per node and bounded by the routes file.
/// </summary>
/// <remarks>
/// # Guarantees
/// A listener's series go away with <see cref="Forget"/> once it is removed and drained, so the label
/// values stay those of the routes.
/// </remarks>
internal sealed class ProxyMetrics
{
    // From half a millisecond (a loopback hop) to about half a minute (a long request).
    private static readonly double[] DurationBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

    private readonly Counter requests;
    private readonly Histogram duration;
    private readonly Counter upstreamErrors;
    private readonly Gauge activeConnections;
    private readonly Gauge routesVersion;
    private readonly Counter routeSwitches;

    public ProxyMetrics(CollectorRegistry registry)
    {
        Registry = registry;
        var f = Metrics.WithCustomRegistry(registry);
        requests = f.CreateCounter("skiff_proxy_requests_total", "HTTP requests answered, by listener and status class (2xx, 3xx, 4xx, 5xx).", ["listener", "code"]);
        duration = f.CreateHistogram("skiff_proxy_request_duration_seconds", "Time from a request's arrival until its response ended, by listener.",
            new HistogramConfiguration { LabelNames = ["listener"], Buckets = DurationBuckets });
        upstreamErrors = f.CreateCounter("skiff_proxy_upstream_errors_total",
            "Requests or connections that failed on the upstream's side (refused, reset, timed out), by listener.", ["listener"]);
        activeConnections = f.CreateGauge("skiff_proxy_active_connections", "Client connections open now, by listener and protocol (http, tcp).",
            ["listener", "protocol"]);
        routesVersion = f.CreateGauge("skiff_proxy_routes_version",
            "The fingerprint of the routes applied (ProxyRoutes.Fingerprint, 48 bits); 0 before the first good routes file.");
        routeSwitches = f.CreateCounter("skiff_proxy_route_switches_total", "Times a listener's upstream changed, by listener.", ["listener"]);
        routesVersion.Set(0);
    }

    public CollectorRegistry Registry { get; }

    /// <summary>Records the routes now applied.</summary>
    public void RoutesApplied(long fingerprint) => routesVersion.Set(fingerprint);

    public void Switched(string listener) => routeSwitches.WithLabels(listener).Inc();

    /// <summary>The series of one listener, resolved once (the hot path only increments).</summary>
    public ListenerMetrics For(string listener, ProxyProtocol protocol) => new(this, listener, protocol);

    /// <summary>Drops every series of a listener that is gone.</summary>
    public void Forget(string listener, ProxyProtocol protocol)
    {
        foreach (var code in ListenerMetrics.CodeClasses)
        {
            requests.RemoveLabelled(listener, code);
        }

        duration.RemoveLabelled(listener);
        upstreamErrors.RemoveLabelled(listener);
        activeConnections.RemoveLabelled(listener, Label(protocol));
        routeSwitches.RemoveLabelled(listener);
    }

    internal static string Label(ProxyProtocol protocol) => protocol == ProxyProtocol.Http ? "http" : "tcp";

    /// <summary>One listener's series.</summary>
    internal sealed class ListenerMetrics
    {
        public static readonly string[] CodeClasses = ["1xx", "2xx", "3xx", "4xx", "5xx"];

        private readonly Counter.Child[] requests = [];
        private readonly Histogram.Child? duration;

        public ListenerMetrics(ProxyMetrics metrics, string listener, ProxyProtocol protocol)
        {
            // Requests and their durations are HTTP's; a TCP listener counts connections and errors only.
            if (protocol == ProxyProtocol.Http)
            {
                requests = [.. CodeClasses.Select(c => metrics.requests.WithLabels(listener, c))];
                duration = metrics.duration.WithLabels(listener);
            }

            UpstreamErrors = metrics.upstreamErrors.WithLabels(listener);
            ActiveConnections = metrics.activeConnections.WithLabels(listener, Label(protocol));
            UpstreamErrors.Publish();
            ActiveConnections.Set(0);
        }

        /// <summary>The request duration series (HTTP listeners only).</summary>
        public Histogram.Child Duration => duration ?? throw new InvalidOperationException("a TCP listener has no request durations");

        public Counter.Child UpstreamErrors { get; }

        public Gauge.Child ActiveConnections { get; }

        /// <summary>Counts an answered request by its status class.</summary>
        public void Answered(int statusCode) => requests[Math.Clamp(statusCode / 100, 1, 5) - 1].Inc();
    }
}
