using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging.Abstractions;
using Skiff.Acme;
using Skiff.Api;
using Skiff.Hosting;
using Skiff.Reconcile;
using Skiff.Tests.Reconcile;

namespace Skiff.Tests.Hosting;

/// <summary>
/// The operator's side of the node proxy's upgrade (DESIGN §7): a new image starts beside the running proxy, and the
/// running one is retired only once the new one listens on every route; one that never does is removed instead.
/// </summary>
public sealed class NodeProxyTests : IDisposable
{
    private const string Route = "127.0.0.1:18080";
    private readonly string state = Directory.CreateTempSubdirectory("skiff-nodeproxy-").FullName;
    private readonly InMemoryEngine engine = new(TimeProvider.System);

    public NodeProxyTests()
    {
        engine.Images.UnionWith(["skiff:1", "skiff:2"]);
    }

    public void Dispose() => Directory.Delete(state, recursive: true);

    [Fact]
    public async Task An_upgrade_retires_the_running_proxy_only_after_the_new_one_listens_and_names_it_skiff_proxy()
    {
        await StartFirstProxyAsync();
        engine.Logs = name => name == "skiff_proxy_next"
            ? $"Proxy following /routes/routes.json; metrics on 127.0.0.1:19090\n{Route}: Http for ns/web http to 10.0.0.2:8080 (revision 1)\n"
            : "";

        using var upgraded = Proxy("skiff:2");
        await upgraded.EnsureAsync(engine, CancellationToken.None);

        var proxy = Assert.Single(engine.All);
        Assert.Equal("skiff_proxy", proxy.Name);
        Assert.Equal("skiff:2", proxy.Image);
        Assert.True(proxy.Running);
        var calls = engine.Calls.ToList();
        Assert.True(calls.IndexOf("container_start skiff_proxy_next") < calls.IndexOf("container_stop skiff_proxy"), string.Join(", ", calls));
    }

    [Fact]
    public async Task An_operator_started_without_a_proxy_image_removes_the_proxy_an_earlier_start_left_and_nothing_else()
    {
        await StartFirstProxyAsync();
        var app = await engine.CreateContainerAsync(
            new ContainerSpec { Name = "skiff_ns_web_app_1", Image = "skiff:1", Network = "skiff_ns_web", Labels = new Dictionary<string, string> { [SkiffLabels.ManagedBy] = SkiffLabels.ManagedByValue } },
            CancellationToken.None);
        await engine.StartContainerAsync(app, CancellationToken.None);

        await NodeProxySettings.StartAsync(null, engine, NullLogger.Instance, CancellationToken.None);

        var left = Assert.Single(engine.All);
        Assert.Equal("skiff_ns_web_app_1", left.Name);
        Assert.True(left.Running);
        var calls = engine.Calls.ToList();
        Assert.True(calls.IndexOf("container_stop skiff_proxy") < calls.IndexOf("container_remove skiff_proxy"), string.Join(", ", calls));

        // Nothing left to remove: a second start changes nothing.
        Assert.Equal(0, await NodeProxy.RemoveLeftoverAsync(engine, NullLogger.Instance, CancellationToken.None));
    }

    [Fact]
    public async Task A_new_proxy_that_exits_before_listening_is_removed_and_the_running_one_keeps_serving()
    {
        await StartFirstProxyAsync();
        engine.Logs = name =>
        {
            if (name == "skiff_proxy_next")
            {
                engine.Exit(name, 1);
            }

            return "Proxy following /routes/routes.json\n";
        };

        using var upgraded = Proxy("skiff:2");
        await upgraded.EnsureAsync(engine, CancellationToken.None);

        var proxy = Assert.Single(engine.All);
        Assert.Equal("skiff_proxy", proxy.Name);
        Assert.Equal("skiff:1", proxy.Image);
        Assert.True(proxy.Running);
        Assert.DoesNotContain("container_stop skiff_proxy", engine.Calls);
    }

    [Fact]
    public async Task Domains_are_written_as_a_version_2_file_with_the_shared_ports_and_a_second_stack_claiming_one_is_refused()
    {
        using var proxy = new NodeProxy("skiff:1", "127.0.0.1:19090", state, "node-a", NullLogger.Instance, 8080, 8443);
        await proxy.SetAsync("ns/web", [new StackRoute(Route, "http", "http", 1, "10.0.0.2:8080"), new StackRoute("", "http", "http", 1, "10.0.0.2:8080", "web.example.com", true)], CancellationToken.None);
        await proxy.SetAsync("ns/shop", [new StackRoute("", "http", "web", 3, "10.0.1.2:3000", "shop.example.com", false)], CancellationToken.None);

        var file = Skiff.Proxy.ProxyRoutes.Read(proxy.FilePath);
        Assert.Equal(2, file.Version);
        Assert.Equal(new Skiff.Proxy.ProxySharedListeners("0.0.0.0:8080", "0.0.0.0:8443"), file.Shared);
        Assert.Equal(
            [new Skiff.Proxy.ProxyDomain("shop.example.com", false, "ns/shop", "web", 3, "10.0.1.2:3000"), new Skiff.Proxy.ProxyDomain("web.example.com", true, "ns/web", "http", 1, "10.0.0.2:8080")],
            file.Domains!.OrderBy(d => d.Domain, StringComparer.Ordinal));
        Assert.Equal(Route, Assert.Single(file.Listeners).Address);

        var clash = await Assert.ThrowsAsync<InvalidOperationException>(() =>
            proxy.SetAsync("ns/other", [new StackRoute("", "http", "http", 1, "10.0.2.2:80", "web.example.com", true)], CancellationToken.None));
        Assert.Equal("spec.app.ports[].domains: web.example.com is served by stack ns/web on this node already; one domain routes to one stack, remove it from one of them", clash.Message);

        var onShared = await Assert.ThrowsAsync<InvalidOperationException>(() =>
            proxy.SetAsync("ns/other", [new StackRoute("0.0.0.0:8443", "tcp", "tls", 1, "10.0.2.2:443")], CancellationToken.None));
        Assert.StartsWith("spec.app.ports: 0.0.0.0:8443 takes the node's shared HTTP/HTTPS port", onShared.Message, StringComparison.Ordinal);

        // The file keeps what it had; a restarted operator reads the domains back.
        using var restarted = new NodeProxy("skiff:1", "127.0.0.1:19090", state, "node-a", NullLogger.Instance, 8080, 8443);
        Assert.Contains(new StackRoute("", "http", "web", 3, "10.0.1.2:3000", "shop.example.com", false), restarted.Get("ns/shop").Routes);
        Assert.Equal(2, restarted.Get("ns/web").Routes.Count);

        // Without domains the file is version 1 again, as proxies before domains read it.
        await proxy.SetAsync("ns/shop", [], CancellationToken.None);
        await proxy.SetAsync("ns/web", [new StackRoute(Route, "http", "http", 2, "10.0.0.3:8080")], CancellationToken.None);
        Assert.Equal(1, Skiff.Proxy.ProxyRoutes.Read(proxy.FilePath).Version);
    }

    [Fact]
    public async Task A_stack_whose_TLS_domain_has_no_certificate_is_CertificateNotReady_and_False_once_it_has_one()
    {
        using var proxy = Proxy("skiff:1");
        var names = new StackNames("ns", "web");
        // web has its certificate on disk; api has none, and the CA does not answer (nothing listens on port 1).
        await proxy.SetAsync(names.Key, [Domain("web.example.com"), Domain("api.example.com")], CancellationToken.None);
        var acme = new AcmeOptions { Directory = new Uri("http://127.0.0.1:1/directory") };
        using var manager = new CertificateManager(state, acme, null, NullLogger<CertificateManager>.Instance);
        proxy.Certificates = manager;
        WriteCertificate("web.example.com");

        await manager.ReconcileAsync(proxy.TlsDomains, CancellationToken.None);
        var status = new AppDeploymentStatus();
        proxy.ReportCertificates(names, status, 3);

        var notReady = Conditions.Get(status, ConditionTypes.CertificateNotReady)!;
        Assert.Equal(("True", Reasons.CertificateNotReady), (notReady.Status, notReady.Reason));
        Assert.Contains("api.example.com: ", notReady.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("web.example.com", notReady.Message, StringComparison.Ordinal);

        // The domain without a certificate goes: every TLS domain left has its certificate.
        await proxy.SetAsync(names.Key, [Domain("web.example.com")], CancellationToken.None);
        await manager.ReconcileAsync(proxy.TlsDomains, CancellationToken.None);
        proxy.ReportCertificates(names, status, 4);
        var ready = Conditions.Get(status, ConditionTypes.CertificateNotReady)!;
        Assert.Equal(("False", Reasons.CertificatesReady), (ready.Status, ready.Reason));

        // A stack without TLS domains gets no such condition.
        var other = new AppDeploymentStatus();
        proxy.ReportCertificates(new StackNames("ns", "plain"), other, 1);
        Assert.Null(Conditions.Get(other, ConditionTypes.CertificateNotReady));
    }

    [Fact]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public async Task A_tlsSecret_certificate_is_written_0600_never_ordered_from_ACME_and_a_wrong_one_is_CertificateNotReady()
    {
        using var ca = new Skiff.IntegrationTests.Proxy.TestCertificates();
        var secrets = new Skiff.Tests.Acme.SecretCertificatesTests.TypedSecrets();
        var (crt, key, leaf) = ca.Issue("own.example.com");
        secrets.Add("own-tls", crt, key, ns: "ns");
        using var proxy = Proxy("skiff:1");
        var nudged = 0;
        proxy.TlsDomainsChanged = () => nudged++;
        var names = new StackNames("ns", "web");
        var spec = new AppDeploymentSpec
        {
            App = new AppSpec
            {
                Ports =
                [
                    new PortSpec { ContainerPort = 80, Domains = ["own.example.com"], TlsSecret = "own-tls" },
                    new PortSpec { ContainerPort = 81, Domains = ["acme.example.com"] },
                ],
            },
        };

        await proxy.ProvideCertificatesAsync(names, spec, secrets, CancellationToken.None);
        await proxy.SetAsync(names.Key, [Domain("own.example.com"), Domain("acme.example.com")], CancellationToken.None);

        // Only the domain without a tlsSecret goes to the ACME manager.
        Assert.Equal(["acme.example.com"], proxy.TlsDomains);
        Assert.True(nudged > 0);
        var crtPath = CertificateFiles.Certificate(state, "own.example.com");
        var keyPath = CertificateFiles.Key(state, "own.example.com");
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(crtPath));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(keyPath));
        using (var pair = Certificates.ReadPair(crtPath, keyPath))
        {
            Assert.Equal(leaf.Thumbprint, pair!.Thumbprint);
        }

        // Unchanged, it is not written again (the proxy would reload it every reconcile).
        var written = File.GetLastWriteTimeUtc(crtPath);
        await Task.Delay(20);
        await proxy.ProvideCertificatesAsync(names, spec, secrets, CancellationToken.None);
        Assert.Equal(written, File.GetLastWriteTimeUtc(crtPath));

        var status = new AppDeploymentStatus();
        using var manager = new CertificateManager(state, new AcmeOptions { Directory = new Uri("http://127.0.0.1:1/directory") }, null, NullLogger<CertificateManager>.Instance);
        proxy.Certificates = manager;
        await manager.ReconcileAsync(proxy.TlsDomains, CancellationToken.None);
        proxy.ReportCertificates(names, status, 1);
        var message = Conditions.Get(status, ConditionTypes.CertificateNotReady)!.Message!;
        Assert.Contains("acme.example.com: ", message, StringComparison.Ordinal);
        Assert.DoesNotContain("own.example.com", message, StringComparison.Ordinal);

        // A Secret replaced by one for another name: its domain is CertificateNotReady, the last good files stay.
        var other = ca.Issue("other.example.com");
        secrets.Add("own-tls", other.CrtPem, other.KeyPem, ns: "ns");
        await proxy.ProvideCertificatesAsync(names, spec, secrets, CancellationToken.None);
        await proxy.SetAsync(names.Key, [Domain("own.example.com")], CancellationToken.None);
        proxy.ReportCertificates(names, status, 2);
        var wrong = Conditions.Get(status, ConditionTypes.CertificateNotReady)!;
        Assert.Equal("True", wrong.Status);
        Assert.Contains("own.example.com: spec.app.ports[0].tlsSecret: Secret \"own-tls\": its certificate (for other.example.com) does not cover own.example.com", wrong.Message, StringComparison.Ordinal);
        Assert.Empty(proxy.TlsDomains);
        using (var pair = Certificates.ReadPair(crtPath, keyPath))
        {
            Assert.Equal(leaf.Thumbprint, pair!.Thumbprint);
        }

        // Fixed: False, CertificatesReady.
        secrets.Add("own-tls", crt, key, ns: "ns");
        await proxy.ProvideCertificatesAsync(names, spec, secrets, CancellationToken.None);
        proxy.ReportCertificates(names, status, 3);
        Assert.Equal(("False", Reasons.CertificatesReady), (Conditions.Get(status, ConditionTypes.CertificateNotReady)!.Status, Conditions.Get(status, ConditionTypes.CertificateNotReady)!.Reason));
    }

    [Fact]
    public async Task A_tlsSecret_certificate_has_its_expiry_series_until_its_stack_goes()
    {
        using var ca = new Skiff.IntegrationTests.Proxy.TestCertificates();
        var secrets = new Skiff.Tests.Acme.SecretCertificatesTests.TypedSecrets();
        var (crt, key, leaf) = ca.Issue("own.example.com");
        secrets.Add("own-tls", crt, key, ns: "ns");
        var registry = Prometheus.Metrics.NewCustomRegistry();
        using var proxy = Proxy("skiff:1");
        proxy.CertificateMetrics = new CertificateMetrics(registry);
        var spec = new AppDeploymentSpec { App = new AppSpec { Ports = [new PortSpec { ContainerPort = 80, Domains = ["own.example.com"], TlsSecret = "own-tls" }] } };

        await proxy.ProvideCertificatesAsync(new StackNames("ns", "web"), spec, secrets, CancellationToken.None);
        await proxy.SetAsync("ns/web", [Domain("own.example.com")], CancellationToken.None);

        var series = "skiff_certificate_expiry_timestamp_seconds{domain=\"own.example.com\"} ";
        var line = (await ExportAsync(registry)).Split('\n').Single(l => l.StartsWith(series, StringComparison.Ordinal));
        Assert.Equal(new DateTimeOffset(leaf.NotAfter.ToUniversalTime()).ToUnixTimeSeconds(), double.Parse(line[series.Length..], System.Globalization.CultureInfo.InvariantCulture));

        await proxy.SetAsync("ns/web", [], CancellationToken.None);
        Assert.DoesNotContain(series, await ExportAsync(registry), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_stack_read_back_from_the_routes_file_is_not_ordered_from_ACME_before_a_reconcile_looked_at_its_tlsSecret()
    {
        using (var first = Proxy("skiff:1"))
        {
            await first.SetAsync("ns/web", [Domain("own.example.com")], CancellationToken.None);
            Assert.Equal(["own.example.com"], first.TlsDomains);
        }

        using var restarted = Proxy("skiff:1");
        Assert.Empty(restarted.TlsDomains);

        // Its reconcile finds no tlsSecret on the port: the domain is ACME's again.
        var spec = new AppDeploymentSpec { App = new AppSpec { Ports = [new PortSpec { ContainerPort = 80, Domains = ["own.example.com"] }] } };
        await restarted.ProvideCertificatesAsync(new StackNames("ns", "web"), spec, new Skiff.Tests.Acme.SecretCertificatesTests.TypedSecrets(), CancellationToken.None);
        Assert.Equal(["own.example.com"], restarted.TlsDomains);
    }

    private static async Task<string> ExportAsync(Prometheus.CollectorRegistry registry)
    {
        using var stream = new MemoryStream();
        await registry.CollectAndExportAsTextAsync(stream);
        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }

    private static StackRoute Domain(string domain) => new("", "http", "http", 1, "10.0.0.2:8080", domain, Tls: true);

    private void WriteCertificate(string domain)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={domain}", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName(domain);
        request.CertificateExtensions.Add(san.Build());
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(80));
        Directory.CreateDirectory(CertificateFiles.CertificatesDir(state));
        File.WriteAllText(CertificateFiles.Key(state, domain), key.ExportPkcs8PrivateKeyPem());
        File.WriteAllText(CertificateFiles.Certificate(state, domain), certificate.ExportCertificatePem());
    }

    private async Task StartFirstProxyAsync()
    {
        using var first = Proxy("skiff:1");
        await first.EnsureAsync(engine, CancellationToken.None);
        await first.SetAsync("ns/web", [new StackRoute(Route, "http", "http", 1, "10.0.0.2:8080")], CancellationToken.None);
        Assert.Equal("skiff_proxy", Assert.Single(engine.All).Name);
    }

    private NodeProxy Proxy(string image) => new(image, "127.0.0.1:19090", state, "node-a", NullLogger.Instance);
}
