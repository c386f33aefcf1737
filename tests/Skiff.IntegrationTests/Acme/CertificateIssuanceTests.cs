using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging.Abstractions;
using Prometheus;
using Skiff.Acme;

namespace Skiff.IntegrationTests.Acme;

/// <summary>
/// The certificate manager against a real ACME server (Debian's pebble, <see cref="Pebble"/>) that validates HTTP-01 by
/// fetching the challenge from <see cref="ChallengeServer"/>, which serves the state folder as the node proxy does.
/// </summary>
public sealed class CertificateIssuanceTests(Pebble pebble) : IClassFixture<Pebble>, IDisposable
{
    private readonly string state = Directory.CreateTempSubdirectory("skiff-acme-").FullName;
    private readonly CollectorRegistry registry = Metrics.NewCustomRegistry();
    private readonly ManualClock clock = new(DateTimeOffset.UtcNow);

    [Fact]
    public async Task A_domain_gets_a_certificate_whose_chain_validates_against_pebbles_root()
    {
        var domain = Domain("api");
        using var server = new ChallengeServer(pebble.HttpPort, state);
        using var manager = Manager();

        var result = await manager.ReconcileAsync([domain], CancellationToken.None);

        var certState = result[domain];
        Assert.True(certState.Ready, certState.Message);
        Assert.Equal("Issued", certState.Reason);
        Assert.Same(result, manager.States);
        Assert.True(server.Answered > 0, "pebble never fetched the challenge: it validated nothing");
        Assert.Empty(Directory.GetFiles(CertificateFiles.ChallengesDir(state)));

        var crt = CertificateFiles.Certificate(state, domain);
        var key = CertificateFiles.Key(state, domain);
        foreach (var file in new[] { crt, key, CertificateFiles.AccountKey(state), CertificateFiles.AccountUrl(state) })
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
        }

        Assert.Equal([crt, key], Directory.GetFiles(CertificateFiles.CertificatesDir(state)).Order(StringComparer.Ordinal));
        Assert.StartsWith("-----BEGIN PRIVATE KEY-----", await File.ReadAllTextAsync(key), StringComparison.Ordinal);
        Assert.StartsWith($"https://127.0.0.1:{pebble.Directory.Port}/", await File.ReadAllTextAsync(CertificateFiles.AccountUrl(state)), StringComparison.Ordinal);

        using var pair = Certificates.ReadPair(crt, key);
        Assert.NotNull(pair);
        Assert.True(pair.HasPrivateKey);
        Assert.True(pair.MatchesHostname(domain));
        Assert.Equal(new DateTimeOffset(pair.NotAfter.ToUniversalTime()), certState.Expiry);

        // Leaf first, then the chain up to pebble's issuing root, which a client trusting that root accepts.
        var chainCerts = new X509Certificate2Collection();
        chainCerts.ImportFromPemFile(crt);
        Assert.True(chainCerts.Count >= 2, $"{chainCerts.Count} certificate(s): the intermediate is missing");
        Assert.Equal(pair.Thumbprint, chainCerts[0].Thumbprint);
        using var issuingRoot = await pebble.IssuingRootAsync();
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(issuingRoot);
        chain.ChainPolicy.ExtraStore.AddRange(chainCerts.Skip(1).ToArray());
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.ApplicationPolicy.Add(new Oid("1.3.6.1.5.5.7.3.1"));
        Assert.True(chain.Build(chainCerts[0]), string.Join("; ", chain.ChainStatus.Select(s => s.StatusInformation)));
        Assert.Equal(issuingRoot.Thumbprint, chain.ChainElements[^1].Certificate.Thumbprint);

        var series = $"skiff_certificate_expiry_timestamp_seconds{{domain=\"{domain}\"}} ";
        var line = (await ExportAsync()).Split('\n').Single(l => l.StartsWith(series, StringComparison.Ordinal));
        Assert.Equal(certState.Expiry!.Value.ToUnixTimeSeconds(), double.Parse(line[series.Length..], System.Globalization.CultureInfo.InvariantCulture));
    }

    [Fact]
    public async Task Renewal_within_30_days_of_expiry_replaces_the_key_and_the_certificate()
    {
        var domain = Domain("renew");
        using var server = new ChallengeServer(pebble.HttpPort, state);
        using var manager = Manager();
        var first = (await manager.ReconcileAsync([domain], CancellationToken.None))[domain];
        Assert.True(first.Ready, first.Message);
        var crt = CertificateFiles.Certificate(state, domain);
        var key = CertificateFiles.Key(state, domain);
        var (firstCrt, firstKey) = (await File.ReadAllTextAsync(crt), await File.ReadAllTextAsync(key));

        // 31 days before expiry: nothing to do, nothing asked of the CA.
        clock.Now = first.Expiry!.Value - TimeSpan.FromDays(31);
        var calm = (await manager.ReconcileAsync([domain], CancellationToken.None))[domain];
        Assert.True(calm.Ready);
        Assert.Equal(firstCrt, await File.ReadAllTextAsync(crt));
        Assert.Equal(firstKey, await File.ReadAllTextAsync(key));

        // 29 days before: renewed, with a new key.
        clock.Now = first.Expiry!.Value - TimeSpan.FromDays(29);
        var renewed = (await manager.ReconcileAsync([domain], CancellationToken.None))[domain];

        Assert.True(renewed.Ready, renewed.Message);
        Assert.Equal("Issued", renewed.Reason);
        Assert.NotEqual(firstCrt, await File.ReadAllTextAsync(crt));
        Assert.NotEqual(firstKey, await File.ReadAllTextAsync(key));
        using var pair = Certificates.ReadPair(crt, key);
        Assert.NotNull(pair);
        Assert.True(pair.MatchesHostname(domain));
        Assert.Equal(new DateTimeOffset(pair.NotAfter.ToUniversalTime()), renewed.Expiry);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(crt));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(key));
    }

    [Fact]
    public async Task A_refused_challenge_gives_NotReady_with_pebbles_problem_and_leaves_the_files_alone()
    {
        // Nothing listens on pebble's HTTP-01 port: its validation authority cannot fetch the challenge.
        var domain = Domain("refused");
        var crt = CertificateFiles.Certificate(state, domain);
        var key = CertificateFiles.Key(state, domain);
        var (oldCrt, oldKey) = ExpiredCertificate(domain);
        Directory.CreateDirectory(CertificateFiles.CertificatesDir(state));
        await File.WriteAllTextAsync(crt, oldCrt);
        await File.WriteAllTextAsync(key, oldKey);
        using var manager = Manager();

        var refused = (await manager.ReconcileAsync([domain], CancellationToken.None))[domain];

        Assert.False(refused.Ready);
        Assert.Equal(CertificateStatus.NotReady, refused.Status);
        Assert.Equal("IssueFailed", refused.Reason);
        Assert.Contains($"ACME authorization of {domain}: the CA refused:", refused.Message, StringComparison.Ordinal);
        Assert.Contains("[urn:ietf:params:acme:error:connection", refused.Message, StringComparison.Ordinal);
        Assert.Contains("127.0.0.1", refused.Message, StringComparison.Ordinal);
        Assert.Null(refused.Expiry);
        Assert.InRange(refused.NextAttempt!.Value, clock.Now + RetryBackoff.First / 2, clock.Now + RetryBackoff.First);
        Assert.Equal(oldCrt, await File.ReadAllTextAsync(crt));
        Assert.Equal(oldKey, await File.ReadAllTextAsync(key));
        Assert.Empty(Directory.GetFiles(CertificateFiles.ChallengesDir(state)));

        // Before the retry is due, a pass leaves it alone; once due, it tries again (and fails again, backing off further).
        var waiting = (await manager.ReconcileAsync([domain], CancellationToken.None))[domain];
        Assert.Equal(refused, waiting);
        clock.Now = refused.NextAttempt.Value;
        var again = (await manager.ReconcileAsync([domain], CancellationToken.None))[domain];
        Assert.False(again.Ready);
        Assert.InRange(again.NextAttempt!.Value, clock.Now + RetryBackoff.First, clock.Now + RetryBackoff.First * 2);
    }

    public void Dispose() => Directory.Delete(state, recursive: true);

    private CertificateManager Manager() => new(
        state,
        new AcmeOptions { Directory = pebble.Directory, Email = "ops@example.com", Handler = pebble.Handler(), IssueTimeout = TimeSpan.FromMinutes(2) },
        new CertificateMetrics(registry),
        NullLogger<CertificateManager>.Instance,
        clock);

    private static string Domain(string prefix) => $"{prefix}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}.skiff.test";

    private static (string Certificate, string Key) ExpiredCertificate(string domain)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=" + domain, key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName(domain);
        request.CertificateExtensions.Add(names.Build());
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-90), DateTimeOffset.UtcNow.AddDays(-1));
        return (certificate.ExportCertificatePem(), key.ExportPkcs8PrivateKeyPem());
    }

    private async Task<string> ExportAsync()
    {
        using var stream = new MemoryStream();
        await registry.CollectAndExportAsTextAsync(stream);
        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }
}
