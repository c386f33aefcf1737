using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using Skiff.IntegrationTests.Infrastructure;
using Skiff.Proxy;

namespace Skiff.IntegrationTests.Proxy;

/// <summary>
/// Domains on <c>skiff proxy</c> as a real process (docs/PROXY.md, "Domains and HTTPS"): stacks share one HTTP and one
/// HTTPS port by Host and SNI, certificates from the certs folder (a test CA the client trusts) are picked up and
/// swapped without a restart, and the HTTP port redirects, serves or answers ACME challenges.
/// </summary>
public sealed class DomainProxyTests : IDisposable
{
    private const string A = "a.example.test";
    private const string B = "b.example.test";

    private readonly string folder = Directory.CreateTempSubdirectory("skiff-domains-").FullName;
    private readonly int httpPort = DockerFixture.FreeTcpPort();
    private readonly int httpsPort = DockerFixture.FreeTcpPort();
    private readonly TestCertificates ca = new();

    private string RoutesPath => Path.Combine(folder, "routes.json");

    private string Certs => Path.Combine(folder, "certs");

    public void Dispose()
    {
        ca.Dispose();
        Directory.Delete(folder, recursive: true);
    }

    [Fact]
    public async Task Two_stacks_share_one_http_and_one_https_port_by_domain_each_with_its_certificate()
    {
        await using var a = await HttpUpstream.StartAsync("app-a");
        await using var b = await HttpUpstream.StartAsync("app-b");
        var leafA = ca.WritePair(Certs, A);
        var leafB = ca.WritePair(Certs, B);
        var routes = Write(Domain(A, a, "prod/a"), Domain(B, b, "prod/b"));
        await using var proxy = await ProxyProcess.StartAsync(RoutesPath);
        await proxy.WaitAppliedAsync(routes);
        using var client = new DomainClient(ca, httpsPort);

        var fromA = await client.GetAsync(Https(A, "/"));
        var fromB = await client.GetAsync(Https(B, "/"));
        Assert.Equal((HttpStatusCode.OK, "app-a", leafA.Thumbprint), (fromA.Status, fromA.Body, fromA.Certificate));
        Assert.Equal((HttpStatusCode.OK, "app-b", leafB.Thumbprint), (fromB.Status, fromB.Body, fromB.Certificate));
        var headers = await client.GetAsync(Https(A, "/headers"));
        Assert.Contains("X-Forwarded-Proto: https", headers.Body, StringComparison.Ordinal);
        Assert.Contains($"X-Forwarded-Host: {A}:{httpsPort}", headers.Body, StringComparison.Ordinal);

        // A's handshake cannot carry B's requests: 421, never B's site behind A's certificate.
        var fronted = await client.GetAsync(Https(A, "/"), host: B);
        Assert.Equal(HttpStatusCode.MisdirectedRequest, fronted.Status);

        // No default certificate: a name the node does not serve fails the handshake.
        var unknown = await Assert.ThrowsAsync<HttpRequestException>(() => client.GetAsync(Https("c.example.test", "/")));
        // The proxy closes the connection during the handshake: the client sees no certificate and no answer.
        Assert.Contains(Causes(unknown), e => e is System.Security.Authentication.AuthenticationException or IOException);

        // Over HTTP the same port serves both: a domain with a certificate redirects, an unknown host is a 404.
        var redirect = await client.GetAsync(new Uri($"http://{B}:{httpPort}/orders/7?page=2"));
        Assert.Equal(HttpStatusCode.PermanentRedirect, redirect.Status);
        Assert.Equal(Https(B, "/orders/7?page=2"), redirect.Location);
        var nobody = await client.GetAsync(new Uri($"http://other.example.test:{httpPort}/"));
        Assert.Equal((HttpStatusCode.NotFound, "no site is served here for host other.example.test\n"), (nobody.Status, nobody.Body));
    }

    [Fact]
    public async Task Http_serves_a_domain_until_its_certificate_arrives_then_redirects_and_always_answers_acme_challenges()
    {
        await using var a = await HttpUpstream.StartAsync("app-a");
        var routes = Write(Domain(A, a, "prod/a"));
        await using var proxy = await ProxyProcess.StartAsync(RoutesPath);
        await proxy.WaitAppliedAsync(routes);
        using var client = new DomainClient(ca, httpsPort);

        // No certificate yet: the app over HTTP, never a gap.
        var plain = await client.GetAsync(new Uri($"http://{A}:{httpPort}/"));
        Assert.Equal((HttpStatusCode.OK, "app-a"), (plain.Status, plain.Body));

        // The challenge file the certificate manager writes, answered as text/plain for any host; a missing or unsafe token is a 404.
        Directory.CreateDirectory(Path.Combine(folder, "acme"));
        const string Token = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0";
        const string KeyAuthorization = Token + ".9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI";
        TestCertificates.WriteAtomically(Path.Combine(folder, "acme", Token), KeyAuthorization);
        var challenge = await client.GetAsync(new Uri($"http://{A}:{httpPort}{DomainRouting.ChallengePrefix}{Token}"));
        Assert.Equal((HttpStatusCode.OK, KeyAuthorization, "text/plain"), (challenge.Status, challenge.Body, challenge.MediaType));
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync(new Uri($"http://new.example.test:{httpPort}{DomainRouting.ChallengePrefix}{Token}"))).Status);
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync(new Uri($"http://{A}:{httpPort}{DomainRouting.ChallengePrefix}unknownToken"))).Status);
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync(new Uri($"http://{A}:{httpPort}{DomainRouting.ChallengePrefix}..%2Froutes.json"))).Status);

        // The certificate arrives: no restart, HTTP now redirects (except challenges) and HTTPS serves it.
        var leaf = ca.WritePair(Certs, A);
        var redirected = await Eventually.UntilAsync(
            "HTTP redirects once the certificate is there",
            () => client.GetAsync(new Uri($"http://{A}:{httpPort}/x")),
            r => r.Status == HttpStatusCode.PermanentRedirect,
            TimeSpan.FromSeconds(30),
            () => proxy.Process.Stderr);
        Assert.Equal(Https(A, "/x"), redirected.Location);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync(new Uri($"http://{A}:{httpPort}{DomainRouting.ChallengePrefix}{Token}"))).Status);
        var secure = await client.GetAsync(Https(A, "/"));
        Assert.Equal((HttpStatusCode.OK, "app-a", leaf.Thumbprint), (secure.Status, secure.Body, secure.Certificate));
    }

    [Fact]
    public async Task A_replaced_certificate_is_served_to_new_connections_with_no_failed_request_in_a_bounded_loop()
    {
        await using var a = await HttpUpstream.StartAsync("app-a");
        var first = ca.WritePair(Certs, A);
        var routes = Write(Domain(A, a, "prod/a"));
        await using var proxy = await ProxyProcess.StartAsync(RoutesPath);
        await proxy.WaitAppliedAsync(routes);

        // Every request on a new connection (a new handshake), so each one shows the certificate served at that moment.
        // (Under concurrency a connection may serve another waiting request than the one that opened it: the counts hold.)
        using var client = new DomainClient(ca, httpsPort);
        var outcomes = new ConcurrentQueue<(string? Certificate, string? Failure)>();
        X509Certificate2? second = null;
        using var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        async Task WorkerAsync()
        {
            // Until the new certificate has answered 20 requests, or the deadline.
            while (!deadline.IsCancellationRequested && outcomes.Count(o => second is not null && o.Certificate == second.Thumbprint) < 20)
            {
                try
                {
                    var r = await client.GetAsync(Https(A, "/"));
                    outcomes.Enqueue((r.Certificate, r.Status == HttpStatusCode.OK && r.Body == "app-a" ? null : $"{(int)r.Status} {r.Body}"));
                }
                catch (HttpRequestException e)
                {
                    outcomes.Enqueue((null, e.GetBaseException().Message));
                }
            }
        }

        var workers = Enumerable.Range(0, 4).Select(_ => Task.Run(WorkerAsync)).ToList();
        await Eventually.UntilAsync("the loop runs on the first certificate", () => outcomes.Count, n => n >= 20, TimeSpan.FromSeconds(30));
        second = ca.WritePair(Certs, A);
        await Task.WhenAll(workers);

        var all = outcomes.ToList();
        Assert.Empty(all.Where(o => o.Failure is not null).Select(o => o.Failure).Distinct());
        Assert.Contains(all, o => o.Certificate == first.Thumbprint);
        Assert.True(all.Count(o => o.Certificate == second.Thumbprint) >= 20, $"the new certificate answered {all.Count(o => o.Certificate == second.Thumbprint)} of {all.Count} requests; stderr:\n{proxy.Process.Stderr}");
        Assert.All(all, o => Assert.Contains(o.Certificate, new[] { first.Thumbprint, second.Thumbprint }));
        Assert.Contains($"Certificates: {A} renewed", proxy.Process.Stderr, StringComparison.Ordinal);
    }

    private static IEnumerable<Exception> Causes(Exception e)
    {
        for (Exception? at = e; at is not null; at = at.InnerException)
        {
            yield return at;
        }
    }

    private static ProxyDomain Domain(string domain, HttpUpstream upstream, string stack, bool tls = true) =>
        new(domain, tls, stack, "http", 1, upstream.Address);

    private Uri Https(string host, string pathAndQuery) => new($"https://{host}:{httpsPort}{pathAndQuery}");

    private ProxyRoutes Write(params ProxyDomain[] domains)
    {
        var routes = ProxyRoutes.For([], new ProxySharedListeners($"127.0.0.1:{httpPort}", $"127.0.0.1:{httpsPort}"), domains);
        ProxyRoutes.Write(RoutesPath, routes);
        return routes;
    }
}
