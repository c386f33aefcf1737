using System.Diagnostics;
using System.Net;
using System.Net.Security;
using System.Security.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Forwarder;

namespace Skiff.Proxy;

/// <summary>
/// What the shared HTTP and HTTPS listeners share: the domains of the routes applied, the certificates and the
/// challenge folder. The proxy swaps <see cref="Table"/> and <see cref="HttpsPort"/> when routes change.
/// </summary>
internal sealed class DomainRouter(CertificateStore certificates, string challengeFolder)
{
    private volatile DomainTable table = DomainTable.Empty;

    public CertificateStore Certificates { get; } = certificates;

    /// <summary>The ACME challenge folder (<c>proxy/acme</c>): one file per token, its key authorization.</summary>
    public string ChallengeFolder { get; } = Path.GetFullPath(challengeFolder);

    public DomainTable Table
    {
        get => table;
        set => table = value;
    }

    public int HttpsPort { get; set; } = 443;

    /// <summary>The TLS context for a handshake's SNI: a domain with <c>tls</c> whose certificate is loaded; null otherwise (the handshake fails).</summary>
    public SslStreamCertificateContext? CertificateFor(string? serverName) =>
        table.Find(serverName) is { Tls: true } domain ? Certificates.Find(domain.Domain) : null;
}

/// <summary>
/// A shared listener (<c>shared.http</c> or <c>shared.https</c> of the routes): one Kestrel server that routes every
/// request by its Host header (<see cref="DomainRouting"/>) to the domain's live revision; over HTTPS the certificate
/// is chosen by SNI from <see cref="CertificateStore"/> at each handshake.
/// </summary>
internal sealed class DomainListener
{
    private readonly DomainRouter router;
    private readonly HttpForwarding forwarding;
    private readonly ProxyMetrics.ListenerMetrics metrics;
    private readonly ILogger logger;
    private readonly LogThrottle errorLog = new(TimeSpan.FromSeconds(5));
    private readonly ProxyKestrel.KestrelApp app;

    public DomainListener(string address, bool https, DomainRouter router, HttpForwarding forwarding, ProxyMetrics.ListenerMetrics metrics, TimeSpan drain, ILoggerFactory loggerFactory)
    {
        Address = address;
        Https = https;
        this.router = router;
        this.forwarding = forwarding;
        this.metrics = metrics;
        logger = loggerFactory.CreateLogger("Skiff.Proxy");
        app = ProxyKestrel.Create(
            IPEndPoint.Parse(address),
            drain,
            loggerFactory,
            web => web.Run(HandleAsync),
            listen =>
            {
                listen.Use(next => async connection =>
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
                });
                if (https)
                {
                    listen.UseHttps(new TlsHandshakeCallbackOptions
                    {
                        OnConnection = context => ValueTask.FromResult(new SslServerAuthenticationOptions
                        {
                            // No default certificate: a name the node does not serve fails the handshake.
                            ServerCertificateContext = router.CertificateFor(context.ClientHelloInfo.ServerName)
                                ?? throw new AuthenticationException($"no certificate for \"{context.ClientHelloInfo.ServerName}\""),
                            ApplicationProtocols = [SslApplicationProtocol.Http11],
                        }),
                    });
                }
            });
    }

    public string Address { get; }

    public bool Https { get; }

    public Task StartAsync(CancellationToken ct) => app.StartAsync(ct);

    public Task StopAsync(TimeSpan drain) => app.StopAndDisposeAsync(drain);

    private async Task HandleAsync(HttpContext http)
    {
        var started = Stopwatch.GetTimestamp();
        var request = http.Request;
        var decision = DomainRouting.Decide(Https, request.Headers.Host.ToString(), request.Path.ToUriComponent() + request.QueryString.ToUriComponent(),
            router.Table, router.Certificates.Has, router.HttpsPort, Https ? http.Features.Get<ITlsHandshakeFeature>()?.HostName : null);
        switch (decision)
        {
            case DomainDecision.Forward forward:
                await ForwardAsync(http, forward.Domain);
                break;
            case DomainDecision.Redirect redirect:
                http.Response.StatusCode = StatusCodes.Status308PermanentRedirect;
                http.Response.Headers.Location = redirect.Location;
                break;
            case DomainDecision.Challenge challenge:
                await ChallengeAsync(http, challenge.Token);
                break;
            case DomainDecision.NotFound notFound:
                await TextAsync(http, StatusCodes.Status404NotFound, notFound.Text);
                break;
            case DomainDecision.Misdirected misdirected:
                await TextAsync(http, StatusCodes.Status421MisdirectedRequest, misdirected.Text);
                break;
        }

        metrics.Answered(http.Response.StatusCode);
        metrics.Duration.Observe(Stopwatch.GetElapsedTime(started).TotalSeconds);
    }

    private async Task ForwardAsync(HttpContext http, ProxyDomain to)
    {
        var error = await forwarding.Forwarder.SendAsync(http, $"http://{to.Upstream}/", forwarding.Invoker, forwarding.RequestConfig, forwarding.Transformer, http.RequestAborted);
        if (error != ForwarderError.None && HttpForwarding.IsUpstreamError(error))
        {
            metrics.UpstreamErrors.Inc();
            if (errorLog.TryEnter(out var suppressed))
            {
                var exception = http.Features.Get<IForwarderErrorFeature>()?.Exception;
                logger.LogWarning("{Listener}: upstream {Upstream} of {Domain} ({Stack} {Port}, revision {Revision}) failed: {Error}: {Reason} ({Suppressed} more since the last line)",
                    Address, to.Upstream, to.Domain, to.Stack, to.Port, to.Revision, error, exception?.GetBaseException().Message ?? "no detail", suppressed);
            }
        }
    }

    /// <summary>An ACME HTTP-01 challenge: the token's file (its key authorization) as text/plain, or 404.</summary>
    private async Task ChallengeAsync(HttpContext http, string token)
    {
        if (!HttpMethods.IsGet(http.Request.Method) && !HttpMethods.IsHead(http.Request.Method))
        {
            await TextAsync(http, StatusCodes.Status405MethodNotAllowed, "GET only\n");
            return;
        }

        string body;
        try
        {
            // The token is base64url (DomainRouting.IsToken): it cannot leave the folder.
            body = await File.ReadAllTextAsync(Path.Combine(router.ChallengeFolder, token), http.RequestAborted);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or UnauthorizedAccessException or IOException)
        {
            await TextAsync(http, StatusCodes.Status404NotFound, "no such challenge\n");
            return;
        }

        await TextAsync(http, StatusCodes.Status200OK, body.Trim());
    }

    private static async Task TextAsync(HttpContext http, int status, string text)
    {
        http.Response.StatusCode = status;
        http.Response.ContentType = "text/plain; charset=utf-8";
        var bytes = System.Text.Encoding.UTF8.GetBytes(text);
        http.Response.ContentLength = bytes.Length;
        if (!HttpMethods.IsHead(http.Request.Method))
        {
            await http.Response.Body.WriteAsync(bytes, http.RequestAborted);
        }
    }
}
