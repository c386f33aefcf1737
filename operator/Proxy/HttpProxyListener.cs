using System.Diagnostics;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Forwarder;

namespace Skiff.Proxy;

/// <summary>A running listener: its socket stays while its upstream switches.</summary>
internal interface IProxyListener
{
    /// <summary>The listener as it runs now (its upstream is where new requests or connections go).</summary>
    ProxyListener Route { get; }

    /// <summary>Binds and starts accepting.</summary>
    /// <exception cref="System.Net.Sockets.SocketException">The address cannot be bound.</exception>
    /// <exception cref="IOException">Kestrel could not bind (it wraps the socket error).</exception>
    Task StartAsync(CancellationToken ct);

    /// <summary>Sends new requests (HTTP) or connections (TCP) to <paramref name="route"/>'s upstream; those under way stay where they are.</summary>
    void SwitchTo(ProxyListener route);

    /// <summary>Stops accepting at once, then gives what is open up to <paramref name="drain"/> to finish.</summary>
    Task StopAsync(TimeSpan drain);
}

/// <summary>
/// An HTTP listener: one small Kestrel server on its address, forwarding every request through YARP to
/// the upstream current when the request arrived.
/// </summary>
internal sealed class HttpProxyListener : IProxyListener
{
    private readonly HttpForwarding forwarding;
    private readonly ProxyMetrics.ListenerMetrics metrics;
    private readonly ILogger logger;
    private readonly LogThrottle errorLog = new(TimeSpan.FromSeconds(5));
    private readonly ProxyKestrel.KestrelApp app;
    private volatile Target target;

    public HttpProxyListener(ProxyListener route, HttpForwarding forwarding, ProxyMetrics.ListenerMetrics metrics, TimeSpan drain, ILoggerFactory loggerFactory)
    {
        this.forwarding = forwarding;
        this.metrics = metrics;
        logger = loggerFactory.CreateLogger("Skiff.Proxy");
        target = new Target(route);
        app = ProxyKestrel.Create(
            route.EndPoint,
            drain,
            loggerFactory,
            web => web.Run(ForwardAsync),
            listen => listen.Use(next => async connection =>
            {
                metrics.ActiveConnections.Inc();
                try
                {
                    await next(connection);
                }
                finally
                {
                    metrics.ActiveConnections.Dec();
                }
            }));
    }

    public ProxyListener Route => target.Route;

    public Task StartAsync(CancellationToken ct) => app.StartAsync(ct);

    public void SwitchTo(ProxyListener route) => target = new Target(route);

    public Task StopAsync(TimeSpan drain) => app.StopAndDisposeAsync(drain);

    private async Task ForwardAsync(HttpContext http)
    {
        var started = Stopwatch.GetTimestamp();

        // Read once: a switch during this request does not move it.
        var to = target;
        var error = await forwarding.Forwarder.SendAsync(http, to.Prefix, forwarding.Invoker, forwarding.RequestConfig, forwarding.Transformer, http.RequestAborted);
        if (error != ForwarderError.None && HttpForwarding.IsUpstreamError(error))
        {
            metrics.UpstreamErrors.Inc();
            if (errorLog.TryEnter(out var suppressed))
            {
                var exception = http.Features.Get<IForwarderErrorFeature>()?.Exception;
                logger.LogWarning("{Listener}: upstream {Upstream} ({Stack} {Port}, revision {Revision}) failed: {Error}: {Reason} ({Suppressed} more since the last line)",
                    to.Route.Address, to.Route.Upstream, to.Route.Stack, to.Route.Port, to.Route.Revision, error,
                    exception?.GetBaseException().Message ?? "no detail", suppressed);
            }
        }

        metrics.Answered(http.Response.StatusCode);
        metrics.Duration.Observe(Stopwatch.GetElapsedTime(started).TotalSeconds);
    }

    /// <summary>The route and its URI prefix, swapped as one.</summary>
    private sealed class Target(ProxyListener route)
    {
        public ProxyListener Route { get; } = route;

        public string Prefix { get; } = $"http://{route.Upstream}/";
    }
}
