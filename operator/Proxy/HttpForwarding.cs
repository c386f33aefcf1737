using System.Diagnostics;
using System.Globalization;
using System.Net;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Forwarder;

namespace Skiff.Proxy;

/// <summary>
/// What every HTTP listener shares: YARP's direct forwarder, one <see cref="HttpMessageInvoker"/> (one
/// connection pool per upstream), the request settings and the header transforms.
/// </summary>
internal sealed class HttpForwarding : IDisposable
{
    private readonly ServiceProvider services;

    public HttpForwarding(ILoggerFactory loggerFactory)
    {
        services = new ServiceCollection()
            .AddLogging(logging => logging
                .ClearProviders()
                .AddProvider(new ForwardingLoggerProvider(loggerFactory))

                // YARP logs every request at Information and each upstream error as a warning with a stack
                // trace; the listener logs those itself, one line at most every few seconds.
                .AddFilter("Yarp", LogLevel.Error))
            .AddHttpForwarder()
            .BuildServiceProvider();
        Forwarder = services.GetRequiredService<IHttpForwarder>();
        Invoker = new HttpMessageInvoker(new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            UseCookies = false,

            // The proxy adds no trace headers of its own: what the client sent passes through.
            ActivityHeadersPropagator = null,
            ConnectTimeout = TimeSpan.FromSeconds(10),

            // Shorter than the usual server keep-alive (Kestrel's 130 s, Node's 5 s is the exception the
            // retry on a reused connection covers), and pooled connections to an old revision go soon.
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(30),
            EnableMultipleHttp2Connections = true,
        });
    }

    public IHttpForwarder Forwarder { get; }

    public HttpMessageInvoker Invoker { get; }

    /// <summary>HTTP/1.1 to the upstream (a container on the stack network speaks plain HTTP); no overall timeout, 100 s without a byte.</summary>
    public ForwarderRequestConfig RequestConfig { get; } = new()
    {
        Version = HttpVersion.Version11,
        VersionPolicy = HttpVersionPolicy.RequestVersionOrLower,
        ActivityTimeout = TimeSpan.FromSeconds(100),
    };

    public HttpTransformer Transformer { get; } = new ForwardedHeaders();

    /// <summary>Whether a forwarding error is the upstream's doing (refused, reset, timed out), not the client's (gone, canceled).</summary>
    public static bool IsUpstreamError(ForwarderError error) => error is ForwarderError.Request or ForwarderError.RequestTimedOut
        or ForwarderError.RequestBodyDestination or ForwarderError.ResponseBodyDestination or ForwarderError.ResponseHeaders
        or ForwarderError.UpgradeRequestDestination or ForwarderError.UpgradeResponseDestination or ForwarderError.UpgradeActivityTimeout
        or ForwarderError.NoAvailableDestinations or ForwarderError.RequestCreation;

    public void Dispose()
    {
        Invoker.Dispose();
        services.Dispose();
    }

    /// <summary>
    /// YARP's defaults (the upstream's own <c>Host</c>; <c>X-Forwarded-For</c>, <c>-Proto</c>, <c>-Host</c> set
    /// from this connection, replacing what the client sent) plus <c>X-Forwarded-Port</c>, the port the
    /// client connected to.
    /// </summary>
    private sealed class ForwardedHeaders : HttpTransformer
    {
        public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
        {
            await Default.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken);
            proxyRequest.Headers.Remove("X-Forwarded-Port");
            proxyRequest.Headers.TryAddWithoutValidation("X-Forwarded-Port", httpContext.Connection.LocalPort.ToString(CultureInfo.InvariantCulture));
        }

        public override ValueTask<bool> TransformResponseAsync(HttpContext httpContext, HttpResponseMessage? proxyResponse, CancellationToken cancellationToken) =>
            Default.TransformResponseAsync(httpContext, proxyResponse, cancellationToken);

        public override ValueTask TransformResponseTrailersAsync(HttpContext httpContext, HttpResponseMessage proxyResponse, CancellationToken cancellationToken) =>
            Default.TransformResponseTrailersAsync(httpContext, proxyResponse, cancellationToken);
    }
}

/// <summary>Logs at most one line per interval, with how many were held back (an upstream that is down fails every request).</summary>
internal sealed class LogThrottle(TimeSpan interval)
{
    private long next;
    private int held;

    /// <summary>True when a line may be written now; <paramref name="suppressed"/> says how many were held back since the last.</summary>
    public bool TryEnter(out int suppressed)
    {
        var now = Stopwatch.GetTimestamp();
        var due = Interlocked.Read(ref next);
        if (now >= due && Interlocked.CompareExchange(ref next, now + (long)(interval.TotalSeconds * Stopwatch.Frequency), due) == due)
        {
            suppressed = Interlocked.Exchange(ref held, 0);
            return true;
        }

        Interlocked.Increment(ref held);
        suppressed = 0;
        return false;
    }
}
