using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using k8s.Models;
using Skiff.Api;
using Skiff.IntegrationTests.FolderSource;
using Skiff.IntegrationTests.Infrastructure;
using Skiff.IntegrationTests.Proxy;
using Skiff.Reconcile;
using Skiff.State;

namespace Skiff.IntegrationTests.Acme;

/// <summary>
/// Domains and HTTPS the way a user runs them (issue 21): a real <c>skiff run</c> on a folder with <c>--proxy-image</c>
/// (the node proxy <c>skiff_proxy</c> from the test image, on the host network) and Debian's pebble as
/// <c>--acme-directory</c>. The operator trusts pebble's API through <c>SSL_CERT_FILE</c>; the test client trusts
/// pebble's issuing root (or the test CA of a <c>tlsSecret</c>) only, and connects to 127.0.0.1 with the domain as SNI and Host.
/// </summary>
/// <remarks>
/// Ports: pebble validates HTTP-01 on its configured <c>httpPort</c> (its mock DNS answers 127.0.0.1 for every name), so
/// the proxy's shared HTTP port is <see cref="Pebble.HttpPort"/> (<c>--proxy-http-port</c>) and HTTPS another free high
/// port (<c>--proxy-https-port</c>): :80 and :443 are the defaults for a real CA and would clash with the host here.
/// The class shares the engine's one <c>skiff_proxy</c> name with the other proxy tests (one Docker collection), and
/// removes the proxy when done.
/// </remarks>
[Collection(DockerCollection.Name)]
public sealed class DomainsEndToEndTests(DockerFixture docker, Pebble pebble) : IClassFixture<Pebble>, IAsyncLifetime
{
    private const string ProxyImage = "skiff-test/skiff:dev";
    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(120);
    private readonly int httpsPort = DockerFixture.FreeTcpPort();
    private readonly int metricsPort = DockerFixture.FreeTcpPort();

    public Task InitializeAsync() => RemoveProxiesAsync();

    public Task DisposeAsync() => RemoveProxiesAsync();

    [Fact]
    public async Task Two_stacks_get_pebble_certificates_and_share_the_https_port_and_a_refused_one_is_CertificateNotReady_on_http()
    {
        await using var w = new FolderWorkspace();
        var one = $"one.{w.Namespace}.skiff.test";
        var two = $"two.{w.Namespace}.skiff.test";
        var refused = $"refused.{w.Namespace}.skiff.test";
        // Pebble's validation cannot resolve this name: it refuses the challenge.
        await pebble.ServFailAsync(refused);
        w.Write("stacks.yaml", Stacks.Yaml(Site(w, "one", one), Site(w, "two", two), Site(w, "three", refused)));

        await using var run = Start(w);
        var diagnostics = Diagnostics(run);
        foreach (var name in new[] { "one", "two", "three" })
        {
            await ReadyAsync(w, name, diagnostics);
        }

        using var issuingRoot = await pebble.IssuingRootAsync();
        using var client = Trusting(issuingRoot, httpsPort);
        var fromOne = await AnswersAsync(client, Https(one), "one", diagnostics);
        var fromTwo = await AnswersAsync(client, Https(two), "two", diagnostics);
        // Each handshake got its own domain's certificate (the client checks the name and pebble's chain).
        Assert.NotEqual(fromOne.Certificate, fromTwo.Certificate);

        // Files the proxy reads, 0600, and the plain HTTP port now redirects the domains with a certificate.
        foreach (var file in new[] { Skiff.Acme.CertificateFiles.Certificate(w.StateDir, one), Skiff.Acme.CertificateFiles.Key(w.StateDir, one) })
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
        }

        var redirect = await client.GetAsync(new Uri($"http://{one}:{pebble.HttpPort}/orders?page=2"));
        Assert.Equal((HttpStatusCode.PermanentRedirect, new Uri($"https://{one}:{httpsPort}/orders?page=2")), (redirect.Status, redirect.Location));

        // The refused domain: CertificateNotReady with pebble's answer, while HTTP by Host keeps serving the app.
        var three = await Eventually.UntilAsync("three is CertificateNotReady", () => Read(w, "three"),
            s => Conditions.IsTrue(s?.Status, ConditionTypes.CertificateNotReady), ReadyTimeout, diagnostics);
        var condition = Conditions.Get(three!.Status, ConditionTypes.CertificateNotReady)!;
        Assert.Equal(Reasons.CertificateNotReady, condition.Reason);
        Assert.Contains($"{refused}: ACME authorization of {refused}: the CA refused:", condition.Message, StringComparison.Ordinal);
        Assert.Contains("next try at", condition.Message, StringComparison.Ordinal);
        Assert.True(Conditions.IsTrue(three.Status, ConditionTypes.Ready), "a domain without a certificate never takes the stack down");
        var plain = await client.GetAsync(new Uri($"http://{refused}:{pebble.HttpPort}/"));
        Assert.Equal(HttpStatusCode.OK, plain.Status);
        Assert.Equal("three", Version(plain.Body));
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => client.GetAsync(Https(refused)));

        // The stacks with certificates say so (False once issued), as skiff status -o json shows them.
        var status = await SkiffProcess.RunAsync(TimeSpan.FromSeconds(30), "status", "one", "-n", w.Namespace, "--state-dir", w.StateDir, "-o", "json");
        Assert.True(status.Exit == 0, status.Stderr);
        var shown = Assert.Single(JsonDocument.Parse(status.Stdout).RootElement.GetProperty("domains").EnumerateArray());
        Assert.Equal((one, "served"), (shown.GetProperty("domain").GetString(), shown.GetProperty("certificate").GetString()));
        var oneStatus = await Eventually.UntilAsync("one says CertificatesReady", () => Read(w, "one"),
            s => Conditions.Get(s?.Status, ConditionTypes.CertificateNotReady) is { Status: "False" } || Conditions.Get(s?.Status, ConditionTypes.CertificateNotReady) is null,
            ReadyTimeout, diagnostics);
        Assert.False(Conditions.IsTrue(oneStatus!.Status, ConditionTypes.CertificateNotReady));
    }

    [Fact]
    public async Task A_tlsSecret_of_the_folder_is_served_instead_of_an_acme_certificate_and_a_wrong_or_changed_Secret_is_followed()
    {
        await using var w = new FolderWorkspace();
        using var ca = new TestCertificates("Skiff Own CA");
        var domain = $"own.{w.Namespace}.skiff.test";
        var site = Site(w, "own", domain, tlsSecret: "own-tls");

        // First an Opaque Secret: CertificateNotReady names the field and the fix, HTTP serves the app.
        var (crt1, key1, leaf1) = ca.Issue(domain);
        w.Write("own.yaml", Stacks.Yaml(site, TlsSecret(w, "own-tls", crt1, key1, type: "Opaque")));
        await using var run = Start(w);
        var diagnostics = Diagnostics(run);
        await ReadyAsync(w, "own", diagnostics);
        var wrong = await Eventually.UntilAsync("own is CertificateNotReady for the Opaque Secret", () => Read(w, "own"),
            s => Conditions.IsTrue(s?.Status, ConditionTypes.CertificateNotReady), ReadyTimeout, diagnostics);
        var message = Conditions.Get(wrong!.Status, ConditionTypes.CertificateNotReady)!.Message;
        Assert.Contains("spec.app.ports[0].tlsSecret: Secret \"own-tls\" is of type Opaque, not kubernetes.io/tls", message, StringComparison.Ordinal);
        Assert.DoesNotContain("BEGIN", message, StringComparison.Ordinal);
        using var client = Trusting(ca.Ca, httpsPort, ca.Intermediate);
        var plain = await client.GetAsync(new Uri($"http://{domain}:{pebble.HttpPort}/"));
        Assert.Equal((HttpStatusCode.OK, "own"), (plain.Status, Version(plain.Body)));

        // The right type: served over HTTPS with the Secret's certificate, the condition False.
        w.Write("own.yaml", Stacks.Yaml(site, TlsSecret(w, "own-tls", crt1, key1)));
        var first = await AnswersAsync(client, Https(domain), "own", diagnostics, leaf1.Thumbprint);
        Assert.Equal(leaf1.Thumbprint, first.Certificate);
        await Eventually.UntilAsync("own says CertificatesReady", () => Read(w, "own"),
            s => Conditions.Get(s?.Status, ConditionTypes.CertificateNotReady) is { Status: "False", Reason: Reasons.CertificatesReady }, ReadyTimeout, diagnostics);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Skiff.Acme.CertificateFiles.Key(w.StateDir, domain)));

        // A renewed certificate in the Secret replaces it without a restart.
        var (crt2, key2, leaf2) = ca.Issue(domain);
        w.Write("own.yaml", Stacks.Yaml(site, TlsSecret(w, "own-tls", crt2, key2)));
        var second = await AnswersAsync(client, Https(domain), "own", diagnostics, leaf2.Thumbprint);
        Assert.Equal(leaf2.Thumbprint, second.Certificate);

        // A certificate for another name: CertificateNotReady, and the last good one keeps serving.
        var (crt3, key3, _) = ca.Issue($"other.{w.Namespace}.skiff.test");
        w.Write("own.yaml", Stacks.Yaml(site, TlsSecret(w, "own-tls", crt3, key3)));
        var uncovered = await Eventually.UntilAsync("own is CertificateNotReady for a certificate of another name", () => Read(w, "own"),
            s => Conditions.IsTrue(s?.Status, ConditionTypes.CertificateNotReady), ReadyTimeout, diagnostics);
        Assert.Contains($"does not cover {domain}", Conditions.Get(uncovered!.Status, ConditionTypes.CertificateNotReady)!.Message, StringComparison.Ordinal);
        Assert.Equal(leaf2.Thumbprint, (await client.GetAsync(Https(domain))).Certificate);

        // No ACME order was ever placed for the domain: it has its own certificate.
        Assert.DoesNotContain($"Certificate for {domain} issued", run.Stderr + run.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain($"Certificate for {domain} not issued", run.Stderr + run.Stdout, StringComparison.Ordinal);
    }

    private static AppDeployment Site(FolderWorkspace w, string name, string domain, string? tlsSecret = null) =>
        Stacks.Stateless(name, w.Namespace)
            .WithEnv("APP_VERSION", name)
            .With(s =>
            {
                s.App.Ports = [new PortSpec { Name = "http", ContainerPort = 8080, Domains = [domain], TlsSecret = tlsSecret }];
                s.Rollout = new RolloutSpec { ProgressDeadlineSeconds = 30, DrainSeconds = 1 };
            });

    private static V1Secret TlsSecret(FolderWorkspace w, string name, string crt, string key, string type = "kubernetes.io/tls") => new()
    {
        ApiVersion = "v1",
        Kind = "Secret",
        Type = type,
        Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = w.Namespace },
        StringData = new Dictionary<string, string> { ["tls.crt"] = crt, ["tls.key"] = key },
    };

    private SkiffProcess Start(FolderWorkspace w) => SkiffProcess.StartWith(
        new Dictionary<string, string> { ["SSL_CERT_FILE"] = pebble.ApiRootFile },
        [.. w.RunArgs(), "--proxy-image", ProxyImage, "--proxy-metrics-bind-address", $"127.0.0.1:{metricsPort}",
         "--proxy-http-port", pebble.HttpPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
         "--proxy-https-port", httpsPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
         "--acme-directory", pebble.Directory.AbsoluteUri, "--acme-email", "ops@example.com"]);

    /// <summary>What a failed wait shows: the operator's last log lines and the proxy container's.</summary>
    private Func<string> Diagnostics(SkiffProcess run) => () =>
    {
        var log = (run.Stderr + run.Stdout).Split('\n');
        var proxy = ProxyLogs();
        // Last, as a failed wait keeps the end of this text: the certificate manager's own lines, however early.
        var certificates = log.Where(l => l.Contains("ertificate", StringComparison.Ordinal) || l.Contains("ACME", StringComparison.Ordinal)).TakeLast(15);
        return $"operator log (last 60 lines):\n{string.Join('\n', log.TakeLast(60))}\nskiff_proxy log (last 40 lines):\n{proxy}\n"
            + $"operator's certificate lines (last 15):\n{string.Join('\n', certificates)}";
    };

    private static string ProxyLogs() => Command.RunAsync("docker", ["logs", "--tail", "40", "skiff_proxy"]).GetAwaiter().GetResult().Output;

    private Uri Https(string domain) => new($"https://{domain}:{httpsPort}/");

    private static string Version(string body)
    {
        try
        {
            return JsonDocument.Parse(body).RootElement.GetProperty("version").GetString() ?? "";
        }
        catch (JsonException)
        {
            return body;
        }
    }

    /// <summary>Waits until the domain answers over HTTPS from the app <paramref name="version"/> (with that certificate, when given).</summary>
    private static Task<DomainClient.Answer> AnswersAsync(DomainClient client, Uri uri, string version, Func<string> diagnostics, string? thumbprint = null) =>
        Eventually.ValueAsync($"{uri} answers from {version} over HTTPS{(thumbprint is null ? "" : $" with certificate {thumbprint}")}", async _ =>
        {
            try
            {
                var answer = await client.GetAsync(uri);
                var done = answer.Status == HttpStatusCode.OK && Version(answer.Body) == version && (thumbprint is null || answer.Certificate == thumbprint);
                return (done ? answer : null, $"HTTP {(int)answer.Status} {answer.Body.Trim()} certificate {answer.Certificate} ({answer.Subject})");
            }
            catch (HttpRequestException e)
            {
                return (null, $"{e.Message} {e.InnerException?.Message}");
            }
        }, ReadyTimeout, interval: TimeSpan.FromMilliseconds(500), context: diagnostics);

    private static StatusRecord? Read(FolderWorkspace w, string name)
    {
        var file = Path.Combine(w.StateDir, "status", $"{w.Namespace}_{name}.json");
        try
        {
            return File.Exists(file) ? JsonSerializer.Deserialize<StatusRecord>(File.ReadAllText(file), StateStore.Json) : null;
        }
        catch (Exception e) when (e is IOException or JsonException)
        {
            return null;
        }
    }

    private static Task ReadyAsync(FolderWorkspace w, string name, Func<string> diagnostics) =>
        Eventually.UntilAsync($"{name} is Ready with its rollout done", () => Read(w, name),
            s => Conditions.IsTrue(s?.Status, ConditionTypes.Ready) && !Conditions.RolloutInProgress(s!.Status), ReadyTimeout, diagnostics);

    private async Task RemoveProxiesAsync()
    {
        var proxies = await docker.Client.Containers.ListContainersAsync(new global::Docker.DotNet.Models.ContainersListParameters
        {
            All = true,
            Filters = new Dictionary<string, IDictionary<string, bool>> { ["label"] = new Dictionary<string, bool> { ["dev.skiff.component=proxy"] = true } },
        });
        foreach (var c in proxies)
        {
            await docker.Client.Containers.RemoveContainerAsync(c.ID, new global::Docker.DotNet.Models.ContainerRemoveParameters { Force = true, RemoveVolumes = true });
        }
    }

    /// <summary>
    /// The shared domain client (every name connects to 127.0.0.1, SNI and Host stay the domain's, one connection per
    /// request), trusting <paramref name="root"/> only, with the chain the server sends or <paramref name="intermediate"/>;
    /// the name must match.
    /// </summary>
    private static DomainClient Trusting(X509Certificate2 root, int httpsPort, X509Certificate2? intermediate = null)
    {
        var policy = new X509ChainPolicy { TrustMode = X509ChainTrustMode.CustomRootTrust, RevocationMode = X509RevocationMode.NoCheck };
        policy.CustomTrustStore.Add(root);
        if (intermediate is not null)
        {
            policy.ExtraStore.Add(intermediate);
        }

        return new DomainClient(httpsPort, (_, errors) => errors == SslPolicyErrors.None, policy);
    }
}
