using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;

namespace Skiff.IntegrationTests.Proxy;

/// <summary>
/// An HTTP client for the domains: every name resolves to 127.0.0.1 (the connection goes there, SNI and Host stay the
/// domain's), TLS is done in the connect callback with the domain as SNI and only the test's CA trusted, so the
/// certificate served is known per connection; redirects are not followed. By default each request has a connection
/// of its own; with <c>keepAlive</c> connections are reused.
/// </summary>
public sealed class DomainClient : IDisposable
{
    private static readonly HttpRequestOptionsKey<(string Thumbprint, string Subject)> Served = new("served-certificate");
    private readonly HttpClient client;

    /// <summary>Trusts <paramref name="ca"/> only (its intermediate known to the client, whatever the server sends).</summary>
    public DomainClient(TestCertificates ca, int httpsPort)
        : this(httpsPort, (leaf, errors) => (errors & ~SslPolicyErrors.RemoteCertificateChainErrors) == SslPolicyErrors.None && ca.Trusts(leaf))
    {
    }

    /// <summary>A client whose TLS handshakes are accepted by <paramref name="accept"/>.</summary>
    /// <param name="httpsPort">The port spoken TLS to (any other port is plain HTTP).</param>
    /// <param name="accept">Whether the leaf served is accepted, given the errors of the chain built with <paramref name="chainPolicy"/>.</param>
    /// <param name="chainPolicy">The policy the client builds the served chain with (the system's when null).</param>
    /// <param name="keepAlive">Reuse connections instead of one per request.</param>
    public DomainClient(int httpsPort, Func<X509Certificate2, SslPolicyErrors, bool> accept, X509ChainPolicy? chainPolicy = null, bool keepAlive = false)
    {
        var handler = new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            PooledConnectionLifetime = keepAlive ? Timeout.InfiniteTimeSpan : TimeSpan.Zero,
            PooledConnectionIdleTimeout = keepAlive ? TimeSpan.FromMinutes(5) : TimeSpan.FromMinutes(1),
            ConnectCallback = async (context, ct) =>
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                try
                {
                    await socket.ConnectAsync(IPAddress.Loopback, context.DnsEndPoint.Port, ct);
                    var stream = new NetworkStream(socket, ownsSocket: true);
                    if (context.DnsEndPoint.Port != httpsPort)
                    {
                        return stream;
                    }

                    var tls = new SslStream(stream, leaveInnerStreamOpen: false);
                    (string Thumbprint, string Subject)? served = null;
                    var started = Stopwatch.GetTimestamp();
                    await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
                    {
                        TargetHost = context.DnsEndPoint.Host,
                        ApplicationProtocols = [SslApplicationProtocol.Http11],
                        CertificateChainPolicy = chainPolicy?.Clone(),
                        RemoteCertificateValidationCallback = (_, certificate, _, errors) =>
                        {
                            if (certificate is null)
                            {
                                return false;
                            }

                            using var leaf = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
                            served = (leaf.Thumbprint, leaf.Subject);
                            return accept(leaf, errors);
                        },
                    }, ct);
                    Handshakes.Enqueue(new Handshake(started, Stopwatch.GetTimestamp(), served!.Value.Thumbprint));
                    context.InitialRequestMessage.Options.Set(Served, served.Value);
                    return tls;
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
        client = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(30) };
    }

    /// <summary>Every TLS handshake that succeeded: when it started and ended (<see cref="Stopwatch"/> ticks) and the leaf served.</summary>
    public ConcurrentQueue<Handshake> Handshakes { get; } = new();

    /// <summary>GET; an https:// URI goes over the TLS of the connect callback (the request line stays HTTP/1.1 on it).</summary>
    /// <returns>The answer, with the thumbprint of the certificate served when this request opened its connection.</returns>
    public async Task<Answer> GetAsync(Uri uri, string? host = null)
    {
        var plain = uri.Scheme == Uri.UriSchemeHttps ? new UriBuilder(uri) { Scheme = Uri.UriSchemeHttp, Port = uri.Port }.Uri : uri;
        using var request = new HttpRequestMessage(HttpMethod.Get, plain);
        if (host is not null)
        {
            request.Headers.Host = host;
        }

        using var response = await client.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        var served = request.Options.TryGetValue(Served, out var certificate);
        return new Answer(response.StatusCode, body, response.Headers.Location, response.Content.Headers.ContentType?.MediaType,
            served ? certificate.Thumbprint : null, served ? certificate.Subject : null);
    }

    public void Dispose() => client.Dispose();

    /// <summary>An answer; <see cref="Certificate"/> and <see cref="Subject"/> are the served leaf's when this request opened a TLS connection.</summary>
    public sealed record Answer(HttpStatusCode Status, string Body, Uri? Location, string? MediaType, string? Certificate, string? Subject);

    /// <summary>One TLS handshake: its start and end (<see cref="Stopwatch"/> ticks) and the thumbprint of the leaf served.</summary>
    public sealed record Handshake(long Started, long Ended, string Certificate);
}
