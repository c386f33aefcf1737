using System.Text;
using Microsoft.Extensions.Logging;
using Skiff.IntegrationTests.Proxy;
using Skiff.Proxy;
using Skiff.Tests.Runtime;

namespace Skiff.Tests.Proxy;

/// <summary>Domains on the shared listeners: the routes file's version 2, the routing rules, challenge tokens and the certificates folder.</summary>
public sealed class DomainRoutingTests : IDisposable
{
    private const string WithDomains = """
        {"version": 2,
         "listeners": [{"address": "127.0.0.1:3000", "protocol": "http", "stack": "prod/api", "port": "http", "revision": 4, "upstream": "172.18.0.5:3000"}],
         "shared": {"http": "0.0.0.0:80", "https": "0.0.0.0:443"},
         "domains": [
           {"domain": "api.example.com", "tls": true, "stack": "prod/api", "port": "http", "revision": 4, "upstream": "172.18.0.5:3000"},
           {"domain": "shop.example.com", "tls": false, "stack": "prod/shop", "port": "web", "revision": 2, "upstream": "172.19.0.3:8080"}
         ]}
        """;

    private static readonly ProxyDomain Api = new("api.example.com", true, "prod/api", "http", 4, "172.18.0.5:3000");
    private static readonly ProxyDomain Shop = new("shop.example.com", false, "prod/shop", "web", 2, "172.19.0.3:8080");
    private static readonly DomainTable Table = DomainTable.From([Api, Shop]);

    private readonly string folder = Directory.CreateTempSubdirectory("skiff-domains-").FullName;

    public void Dispose() => Directory.Delete(folder, recursive: true);

    [Fact]
    public void A_version_2_file_reads_shared_listeners_and_domains_and_round_trips()
    {
        var routes = ProxyRoutes.Parse(Encoding.UTF8.GetBytes(WithDomains));

        Assert.Equal(2, routes.Version);
        Assert.Equal(new ProxySharedListeners("0.0.0.0:80", "0.0.0.0:443"), routes.Shared);
        Assert.Equal([Api, Shop], routes.Domains);

        var path = Path.Combine(folder, "routes.json");
        ProxyRoutes.Write(path, routes);
        var read = ProxyRoutes.Read(path);
        Assert.Equal(routes.Shared, read.Shared);
        Assert.Equal(routes.Domains, read.Domains);
        Assert.Equal(routes.Listeners, read.Listeners);
        Assert.Equal(routes.Fingerprint, read.Fingerprint);
    }

    [Fact]
    public void For_writes_version_1_without_domains_so_older_proxies_read_it_and_its_fingerprint_stays()
    {
        ProxyListener[] listeners = [new("127.0.0.1:3000", ProxyProtocol.Http, "prod/api", "http", 4, "172.18.0.5:3000")];
        var shared = new ProxySharedListeners("0.0.0.0:80", "0.0.0.0:443");

        var plain = ProxyRoutes.For(listeners, shared, []);
        var json = Encoding.UTF8.GetString(System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(plain));
        Assert.Equal(1, plain.Version);
        Assert.DoesNotContain("shared", json, StringComparison.Ordinal);
        Assert.DoesNotContain("domains", json, StringComparison.Ordinal);
        Assert.Equal(new ProxyRoutes(1, listeners).Fingerprint, plain.Fingerprint);

        // A version 2 file without domains reads back with the fingerprint it was written with (what the operator waits for).
        var v2 = new ProxyRoutes(2, listeners);
        Assert.Equal(v2.Fingerprint, ProxyRoutes.Parse(System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(v2)).Fingerprint);

        var withDomain = ProxyRoutes.For(listeners, shared, [Api]);
        Assert.Equal(2, withDomain.Version);
        Assert.NotEqual(plain.Fingerprint, withDomain.Fingerprint);
        Assert.NotEqual(withDomain.Fingerprint, ProxyRoutes.For(listeners, shared, [Api with { Upstream = "172.18.0.6:3000" }]).Fingerprint);
        Assert.Equal(
            ProxyRoutes.For(listeners, shared, [Api, Shop]).Fingerprint,
            ProxyRoutes.For(listeners, shared, [Shop, Api]).Fingerprint);
    }

    [Theory]
    [InlineData("""{"version": 2, "listeners": [], "domains": [{"domain": "a.example.com", "tls": true, "stack": "a/b", "port": "http", "revision": 1, "upstream": "10.0.0.2:80"}]}""", "shared: required with domains")]
    [InlineData("""{"version": 2, "listeners": [], "shared": {"http": "0.0.0.0:80", "https": "0.0.0.0:80"}, "domains": []}""", "shared.https: 0.0.0.0:80 takes the port of shared.http")]
    [InlineData("""{"version": 2, "listeners": [], "shared": {"http": "80", "https": "0.0.0.0:443"}, "domains": []}""", "shared.http: \"80\" is not IP:port")]
    [InlineData("""{"version": 2, "listeners": [{"address": "127.0.0.1:443", "protocol": "tcp", "stack": "a/b", "port": "tls", "revision": 1, "upstream": "10.0.0.2:443"}], "shared": {"http": "0.0.0.0:80", "https": "0.0.0.0:443"}, "domains": []}""", "listeners[0].address: 127.0.0.1:443 takes the port of the shared https listener 0.0.0.0:443")]
    [InlineData("""{"version": 2, "listeners": [], "shared": {"http": "0.0.0.0:80", "https": "0.0.0.0:443"}, "domains": [{"domain": "*.example.com", "tls": true, "stack": "a/b", "port": "http", "revision": 1, "upstream": "10.0.0.2:80"}]}""", "domains[0].domain: \"*.example.com\": wildcard domains are not supported")]
    [InlineData("""{"version": 2, "listeners": [], "shared": {"http": "0.0.0.0:80", "https": "0.0.0.0:443"}, "domains": [{"domain": "a.example.com", "stack": "a/b", "port": "http", "revision": 1, "upstream": "10.0.0.2:80"}]}""", "domains[0].tls: required, true or false")]
    [InlineData("""{"version": 2, "listeners": [], "shared": {"http": "0.0.0.0:80", "https": "0.0.0.0:443"}, "domains": [{"domain": "a.example.com", "tls": true, "stack": "a/b", "port": "http", "revision": 1, "upstream": "nowhere"}]}""", "domains[0].upstream: \"nowhere\" is not host:port")]
    [InlineData("""{"version": 2, "listeners": [], "shared": {"http": "0.0.0.0:80", "https": "0.0.0.0:443"}, "domains": [{"domain": "a.example.com", "tls": true, "stack": "a/b", "port": "http", "revision": 1, "upstream": "10.0.0.2:80"}, {"domain": "a.example.com", "tls": false, "stack": "a/c", "port": "http", "revision": 1, "upstream": "10.0.0.3:80"}]}""", "domains[1].domain: a.example.com is already domains[0]'s")]
    public void A_bad_domain_section_names_the_field(string json, string message)
    {
        var e = Assert.Throws<ProxyRoutesException>(() => ProxyRoutes.Parse(Encoding.UTF8.GetBytes(json)));

        Assert.StartsWith(message, e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("api.example.com", "api.example.com")]
    [InlineData("API.Example.COM:8080", "api.example.com")]
    [InlineData("api.example.com.", "api.example.com")]
    [InlineData("shop.example.com:80", "shop.example.com")]
    [InlineData("other.example.com", null)]
    [InlineData("", null)]
    [InlineData(null, null)]
    [InlineData("[::1]:80", null)]
    public void The_table_finds_a_domain_by_host_header_in_any_case_without_port(string? host, string? expected) =>
        Assert.Equal(expected, Table.Find(host)?.Domain);

    [Fact]
    public void Http_with_a_certificate_redirects_to_https_keeping_host_path_and_query()
    {
        var decision = DomainRouting.Decide(false, "API.example.com:80", "/orders/7?page=2&q=a%20b", Table, _ => true, 443);

        Assert.Equal(new DomainDecision.Redirect("https://api.example.com/orders/7?page=2&q=a%20b"), decision);
        Assert.Equal(
            new DomainDecision.Redirect("https://api.example.com:8443/"),
            DomainRouting.Decide(false, "api.example.com", "/", Table, _ => true, 8443));
    }

    [Fact]
    public void Http_without_a_certificate_yet_or_without_tls_forwards_and_never_takes_the_route_down()
    {
        Assert.Equal(new DomainDecision.Forward(Api), DomainRouting.Decide(false, "api.example.com", "/", Table, _ => false, 443));

        // tls: false: HTTP only, even when a certificate file happens to be there.
        Assert.Equal(new DomainDecision.Forward(Shop), DomainRouting.Decide(false, "shop.example.com", "/cart", Table, _ => true, 443));
    }

    [Fact]
    public void Https_forwards_a_known_domain_and_answers_404_for_an_unknown_host()
    {
        Assert.Equal(new DomainDecision.Forward(Api), DomainRouting.Decide(true, "api.example.com", "/x", Table, _ => true, 443));

        var unknown = Assert.IsType<DomainDecision.NotFound>(DomainRouting.Decide(true, "evil.example.com", "/", Table, _ => true, 443));
        Assert.Equal("no site is served here for host evil.example.com\n", unknown.Text);
        Assert.IsType<DomainDecision.NotFound>(DomainRouting.Decide(false, null, "/", Table, _ => true, 443));
    }

    [Fact]
    public void Https_answers_421_when_the_host_is_another_domain_than_the_handshake_named()
    {
        Assert.Equal(new DomainDecision.Forward(Api), DomainRouting.Decide(true, "api.example.com:443", "/", Table, _ => true, 443, "API.example.com"));
        var other = Assert.IsType<DomainDecision.Misdirected>(DomainRouting.Decide(true, "shop.example.com", "/", Table, _ => true, 443, "api.example.com"));
        Assert.Equal("this connection is for api.example.com, not shop.example.com: open a new one\n", other.Text);
    }

    [Fact]
    public void An_acme_challenge_is_answered_on_http_for_any_host_and_never_redirected()
    {
        Assert.Equal(
            new DomainDecision.Challenge("LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"),
            DomainRouting.Decide(false, "api.example.com", "/.well-known/acme-challenge/LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0", Table, _ => true, 443));
        Assert.Equal(
            new DomainDecision.Challenge("tok-en_1"),
            DomainRouting.Decide(false, "new.example.com", "/.well-known/acme-challenge/tok-en_1?x=1", Table, _ => true, 443));

        // Over HTTPS the path is the app's.
        Assert.Equal(new DomainDecision.Forward(Api), DomainRouting.Decide(true, "api.example.com", "/.well-known/acme-challenge/abc", Table, _ => true, 443));
    }

    [Theory]
    [InlineData("../routes.json")]
    [InlineData("..%2Froutes.json")]
    [InlineData("a/b")]
    [InlineData("a.b")]
    [InlineData("")]
    [InlineData("tok=en")]
    public void A_token_that_is_not_base64url_is_a_404_not_a_file(string token)
    {
        Assert.False(DomainRouting.IsToken(token));
        Assert.IsType<DomainDecision.NotFound>(DomainRouting.Decide(false, "api.example.com", DomainRouting.ChallengePrefix + token, Table, _ => false, 443));
    }

    [Fact]
    public void Tokens_are_base64url_of_a_sane_length()
    {
        Assert.True(DomainRouting.IsToken("AZaz09-_"));
        Assert.False(DomainRouting.IsToken(new string('a', 257)));
    }

    [Fact]
    public void The_certificate_store_loads_a_pair_swaps_a_renewal_and_keeps_the_last_good_one_over_a_bad_pair()
    {
        using var ca = new TestCertificates();
        var logger = new RecordingLogger<DomainRoutingTests>();
        var store = new CertificateStore(folder, logger);

        store.Refresh();
        Assert.False(store.Has("api.example.com"));

        var first = ca.WritePair(folder, "api.example.com");
        store.Refresh();
        Assert.Equal(first.Thumbprint, store.Find("api.example.com")!.TargetCertificate.Thumbprint);
        Assert.Equal(first.NotAfter.ToUniversalTime(), store.NotAfter("api.example.com")!.Value.UtcDateTime, TimeSpan.FromSeconds(1));

        // The chain (the CA after the leaf) goes with it.
        Assert.Single(store.Find("api.example.com")!.IntermediateCertificates);

        var renewed = ca.WritePair(folder, "api.example.com");
        store.Refresh();
        Assert.Equal(renewed.Thumbprint, store.Find("api.example.com")!.TargetCertificate.Thumbprint);

        // A key that is not the certificate's (the writer between its two files), then bad PEM: the renewal keeps serving, one warning per state.
        var (_, otherKey, _) = ca.Issue("api.example.com");
        TestCertificates.WriteAtomically(Path.Combine(folder, "api.example.com.key"), otherKey);
        store.Refresh();
        Assert.Empty(logger.At(LogLevel.Warning));
        store.Refresh();
        store.Refresh();
        Assert.Equal(renewed.Thumbprint, store.Find("api.example.com")!.TargetCertificate.Thumbprint);
        var warning = Assert.Single(logger.At(LogLevel.Warning));
        Assert.Contains("api.example.com.crt and api.example.com.key cannot be used", warning.Message, StringComparison.Ordinal);
        Assert.Contains("the last good certificate keeps serving", warning.Message, StringComparison.Ordinal);

        TestCertificates.WriteAtomically(Path.Combine(folder, "api.example.com.crt"), "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n");
        store.Refresh();
        store.Refresh();
        Assert.Equal(renewed.Thumbprint, store.Find("api.example.com")!.TargetCertificate.Thumbprint);
        Assert.Equal(2, logger.At(LogLevel.Warning).Count);

        // Both files gone: no longer served.
        File.Delete(Path.Combine(folder, "api.example.com.crt"));
        File.Delete(Path.Combine(folder, "api.example.com.key"));
        store.Refresh();
        Assert.False(store.Has("api.example.com"));
    }

    [Fact]
    public void A_half_pair_is_not_served_and_warned_once()
    {
        using var ca = new TestCertificates();
        var logger = new RecordingLogger<DomainRoutingTests>();
        var store = new CertificateStore(folder, logger);
        var (crt, _, _) = ca.Issue("shop.example.com");
        TestCertificates.WriteAtomically(Path.Combine(folder, "shop.example.com.crt"), crt);

        for (var i = 0; i < 4; i++)
        {
            store.Refresh();
        }

        Assert.False(store.Has("shop.example.com"));
        var warning = Assert.Single(logger.At(LogLevel.Warning));
        Assert.Contains("shop.example.com.key is missing", warning.Message, StringComparison.Ordinal);
        Assert.Contains("served over HTTP only until a good pair is there", warning.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_router_offers_a_certificate_only_for_a_routed_domain_with_tls()
    {
        using var ca = new TestCertificates();
        ca.WritePair(folder, "api.example.com");
        ca.WritePair(folder, "shop.example.com");
        ca.WritePair(folder, "gone.example.com");
        var store = new CertificateStore(folder, new RecordingLogger<DomainRoutingTests>());
        store.Refresh();
        var router = new DomainRouter(store, Path.Combine(folder, "acme")) { Table = Table };

        Assert.NotNull(router.CertificateFor("api.example.com"));
        Assert.NotNull(router.CertificateFor("API.example.com"));
        Assert.Null(router.CertificateFor("shop.example.com"));
        Assert.Null(router.CertificateFor("gone.example.com"));
        Assert.Null(router.CertificateFor(null));
    }

    [Fact]
    public void DomainState_reads_each_domains_certificate_for_status()
    {
        using var ca = new TestCertificates();
        var now = DateTimeOffset.UtcNow;
        var routes = ProxyRoutes.For([], new ProxySharedListeners("0.0.0.0:80", "0.0.0.0:443"),
            [Api, Api with { Domain = "www.example.com" }, Api with { Domain = "old.example.com" }, Api with { Domain = "bad.example.com" }, Shop]);
        var leaf = ca.WritePair(folder, "api.example.com", now.AddDays(60));
        ca.WritePair(folder, "old.example.com", now.AddMinutes(1));
        File.WriteAllText(Path.Combine(folder, "bad.example.com.crt"), "garbage");
        File.WriteAllText(Path.Combine(folder, "bad.example.com.key"), "garbage");

        var states = DomainState.Of(routes, "prod/api", folder, now.AddMinutes(2)).ToDictionary(s => s.Domain);

        Assert.Equal(["api.example.com", "bad.example.com", "old.example.com", "www.example.com"], states.Keys.Order(StringComparer.Ordinal));
        Assert.Equal("served", states["api.example.com"].Certificate);
        Assert.Equal(leaf.NotAfter.ToUniversalTime(), states["api.example.com"].NotAfter!.Value.UtcDateTime, TimeSpan.FromSeconds(1));
        Assert.Equal("expired", states["old.example.com"].Certificate);
        Assert.Equal("unreadable", states["bad.example.com"].Certificate);
        Assert.Equal("none", states["www.example.com"].Certificate);
        Assert.Equal("http-only", Assert.Single(DomainState.Of(routes, "prod/shop", folder, now)).Certificate);
    }
}
