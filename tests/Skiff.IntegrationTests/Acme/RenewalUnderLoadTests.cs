using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging.Abstractions;
using Prometheus;
using Skiff.Acme;
using Skiff.IntegrationTests.Infrastructure;
using Skiff.IntegrationTests.Proxy;
using Skiff.Proxy;

namespace Skiff.IntegrationTests.Acme;

/// <summary>
/// Issue 21's renewal test, the real pieces chained: pebble (<see cref="Pebble"/>) issues a domain's certificate through
/// the <see cref="CertificateManager"/> (on a clock the test moves) into a state folder; <c>skiff proxy</c> as a real
/// process follows <c>STATE/proxy/routes.json</c>, answers pebble's HTTP-01 challenges from <c>STATE/proxy/acme</c> on
/// its shared HTTP port (which is pebble's <c>httpPort</c>: no stand-in challenge server) and serves the certificate
/// over HTTPS by SNI; a bounded request loop trusting pebble's root runs while the clock moves to 29 days before expiry
/// and the manager renews from pebble.
/// </summary>
public sealed class RenewalUnderLoadTests(Pebble pebble) : IClassFixture<Pebble>, IDisposable
{
    private const string AppName = "app-renew";

    private readonly string state = Directory.CreateTempSubdirectory("skiff-renew-").FullName;
    private readonly int httpsPort = DockerFixture.FreeTcpPort();
    private readonly ManualClock clock = new(DateTimeOffset.UtcNow);

    private string RoutesPath => Path.Combine(state, "proxy", "routes.json");

    public void Dispose() => Directory.Delete(state, recursive: true);

    [Fact]
    public async Task A_certificate_renewed_from_pebble_is_served_to_new_connections_with_no_failed_request_under_a_bounded_loop()
    {
        var domain = $"renew-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}.skiff.test";
        await using var app = await HttpUpstream.StartAsync(AppName);
        Directory.CreateDirectory(Path.GetDirectoryName(RoutesPath)!);
        var routes = ProxyRoutes.For(
            [],
            new ProxySharedListeners($"127.0.0.1:{pebble.HttpPort}", $"127.0.0.1:{httpsPort}"),
            [new ProxyDomain(domain, true, "prod/renew", "http", 1, app.Address)]);
        ProxyRoutes.Write(RoutesPath, routes);
        await using var proxy = await ProxyProcess.StartAsync(RoutesPath);
        await proxy.WaitAppliedAsync(routes);
        using var manager = new CertificateManager(
            state,
            new AcmeOptions { Directory = pebble.Directory, Email = "ops@example.com", Handler = pebble.Handler(), IssueTimeout = TimeSpan.FromMinutes(2) },
            new CertificateMetrics(Metrics.NewCustomRegistry()),
            NullLogger<CertificateManager>.Instance,
            clock);
        var crtPath = CertificateFiles.Certificate(state, domain);
        var keyPath = CertificateFiles.Key(state, domain);

        // Issued through the proxy's HTTP-01 answers: nothing else listens on pebble's httpPort.
        var first = (await manager.ReconcileAsync([domain], CancellationToken.None))[domain];
        Assert.True(first.Ready, $"{first.Reason}: {first.Message}\nproxy stderr:\n{proxy.Process.Stderr}");
        using var firstLeaf = Leaf(crtPath);

        using var issuingRoot = await pebble.IssuingRootAsync();
        var policy = new X509ChainPolicy
        {
            TrustMode = X509ChainTrustMode.CustomRootTrust,
            RevocationMode = X509RevocationMode.NoCheck,
            DisableCertificateDownloads = true,
        };
        policy.CustomTrustStore.Add(issuingRoot);
        policy.ApplicationPolicy.Add(new Oid("1.3.6.1.5.5.7.3.1"));

        // Pebble's root only, with the chain the proxy sends (no intermediate known to the client), and the name must match.
        DomainClient Client(bool keepAlive = false) => new(httpsPort, (_, errors) => errors == SslPolicyErrors.None, policy, keepAlive);
        var https = new Uri($"https://{domain}:{httpsPort}/");
        using (var probe = Client())
        {
            await Eventually.UntilAsync(
                "the proxy serves pebble's first certificate",
                async () =>
                {
                    try
                    {
                        return (await probe.GetAsync(https)).Certificate;
                    }
                    catch (HttpRequestException e)
                    {
                        return e.GetBaseException().Message;
                    }
                },
                served => served == firstLeaf.Thumbprint,
                TimeSpan.FromSeconds(30),
                () => proxy.Process.Stderr);
        }

        // The loop: 4 workers with a new connection (a new handshake) per request and 1 on one kept-alive connection,
        // paced to 160 requests/second in all at most, until 30 handshakes have served the renewed certificate or 2 minutes.
        var fresh = Enumerable.Range(0, 4).Select(_ => Client()).ToList();
        using var kept = Client(keepAlive: true);
        var failures = new ConcurrentQueue<string>();
        var requests = 0;
        string? renewedThumbprint = null;
        int RenewedHandshakes() => Volatile.Read(ref renewedThumbprint) is { } t ? fresh.Sum(c => c.Handshakes.Count(h => h.Certificate == t)) : 0;
        using var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        async Task WorkerAsync(DomainClient client)
        {
            var interval = TimeSpan.FromMilliseconds(1000 / 32.0);
            while (!deadline.IsCancellationRequested && RenewedHandshakes() < 30)
            {
                var next = Stopwatch.GetTimestamp() + (long)(interval.TotalSeconds * Stopwatch.Frequency);
                try
                {
                    var answer = await client.GetAsync(https);
                    if (answer.Status != HttpStatusCode.OK || answer.Body != AppName)
                    {
                        failures.Enqueue($"{(int)answer.Status} {answer.Body}");
                    }
                }
                catch (Exception e) when (e is HttpRequestException or IOException or TaskCanceledException)
                {
                    failures.Enqueue(string.Join(" <- ", Causes(e).Select(x => $"{x.GetType().Name}: {x.Message}")));
                }

                Interlocked.Increment(ref requests);
                var wait = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), next);
                if (wait > TimeSpan.Zero)
                {
                    await Task.Delay(wait);
                }
            }
        }

        var workers = fresh.Append(kept).Select(c => Task.Run(() => WorkerAsync(c))).ToList();
        string Diagnostics() =>
            $"{Volatile.Read(ref requests)} requests, failures: {string.Join("; ", failures.Distinct().Take(10))}\n" +
            $"handshakes by certificate: {string.Join(", ", fresh.SelectMany(c => c.Handshakes).GroupBy(h => h.Certificate).Select(g => $"{g.Key}={g.Count()}"))}\n" +
            $"proxy stderr:\n{proxy.Process.Stderr}";
        try
        {
            await Eventually.TrueAsync("the loop runs on the first certificate", () => fresh.Sum(c => c.Handshakes.Count) >= 20, TimeSpan.FromSeconds(30), Diagnostics);

            // 31 days before expiry nothing is due; 29 days before, the manager renews from pebble while the loop runs.
            clock.Now = first.Expiry!.Value - TimeSpan.FromDays(31);
            var calm = (await manager.ReconcileAsync([domain], CancellationToken.None))[domain];
            Assert.True(calm.Ready, calm.Message);
            using (var unchanged = Leaf(crtPath))
            {
                Assert.Equal(firstLeaf.Thumbprint, unchanged.Thumbprint);
            }

            var renewalStarted = Stopwatch.GetTimestamp();
            clock.Now = first.Expiry!.Value - TimeSpan.FromDays(29);
            var renewed = (await manager.ReconcileAsync([domain], CancellationToken.None))[domain];
            Assert.True(renewed.Ready, $"{renewed.Reason}: {renewed.Message}\n{Diagnostics()}");
            Assert.Equal("Issued", renewed.Reason);
            using var secondLeaf = Leaf(crtPath);
            Volatile.Write(ref renewedThumbprint, secondLeaf.Thumbprint);
            await Task.WhenAll(workers);

            // What was issued: a new certificate (serial, key) for the domain, chaining to pebble's root with the chain in the file.
            Assert.NotEqual(firstLeaf.SerialNumber, secondLeaf.SerialNumber);
            Assert.NotEqual(firstLeaf.GetPublicKey(), secondLeaf.GetPublicKey());
            Assert.True(secondLeaf.MatchesHostname(domain));
            Assert.Equal(new DateTimeOffset(secondLeaf.NotAfter.ToUniversalTime()), renewed.Expiry);
            using var pair = Certificates.ReadPair(crtPath, keyPath);
            Assert.Equal(secondLeaf.Thumbprint, pair?.Thumbprint);
            var fileChain = new X509Certificate2Collection();
            fileChain.ImportFromPemFile(crtPath);
            using (var chain = new X509Chain { ChainPolicy = policy.Clone() })
            {
                chain.ChainPolicy.ExtraStore.AddRange(fileChain.Skip(1).ToArray());
                Assert.True(chain.Build(secondLeaf), string.Join("; ", chain.ChainStatus.Select(s => s.StatusInformation)));
                Assert.Equal(issuingRoot.Thumbprint, chain.ChainElements[^1].Certificate.Thumbprint);
            }

            // The loop: no failed request; every handshake served one of the two; before the renewal began the first, and
            // once a handshake had served the renewed one, every handshake begun after it served it too (no flip back).
            Assert.True(failures.IsEmpty, Diagnostics());
            var handshakes = fresh.SelectMany(c => c.Handshakes).OrderBy(h => h.Started).ToList();
            Assert.All(handshakes, h => Assert.Contains(h.Certificate, new[] { firstLeaf.Thumbprint, secondLeaf.Thumbprint }));
            var before = handshakes.Where(h => h.Started < renewalStarted).ToList();
            Assert.True(before.Count >= 20, Diagnostics());
            Assert.All(before, h => Assert.Equal(firstLeaf.Thumbprint, h.Certificate));
            var firstRenewed = handshakes.Where(h => h.Certificate == secondLeaf.Thumbprint).MinBy(h => h.Ended);
            Assert.True(firstRenewed is not null, $"no handshake served the renewed certificate within 2 minutes; {Diagnostics()}");
            var after = handshakes.Where(h => h.Started > firstRenewed.Ended).ToList();
            Assert.True(after.Count >= 20, $"{after.Count} handshakes after the first renewed one; {Diagnostics()}");
            Assert.All(after, h => Assert.Equal(secondLeaf.Thumbprint, h.Certificate));
            Assert.Contains(kept.Handshakes, h => h.Certificate == firstLeaf.Thumbprint);
            Assert.Contains($"Certificates: {domain} renewed", proxy.Process.Stderr, StringComparison.Ordinal);
        }
        finally
        {
            await deadline.CancelAsync();
            await Task.WhenAll(workers).WaitAsync(TimeSpan.FromSeconds(60));
            fresh.ForEach(c => c.Dispose());
        }
    }

    /// <summary>The first certificate of a <c>.crt</c>: the leaf.</summary>
    private static X509Certificate2 Leaf(string crtPath) => X509Certificate2.CreateFromPem(File.ReadAllText(crtPath));

    private static IEnumerable<Exception> Causes(Exception e)
    {
        for (Exception? at = e; at is not null; at = at.InnerException)
        {
            yield return at;
        }
    }
}
