using System.Security.Cryptography;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Prometheus;
using Skiff.Acme;
using Skiff.IntegrationTests.Infrastructure;

namespace Skiff.Tests.Acme;

// File modes are Unix's: the operator runs on Linux.
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class CertificateManagerTests : IDisposable
{
    private static readonly DateTimeOffset Now = new(2026, 6, 1, 12, 0, 0, TimeSpan.Zero);
    private readonly string state = Directory.CreateTempSubdirectory("skiff-certmgr-").FullName;
    private readonly FakeTimeProvider clock = new(Now);
    private readonly CollectorRegistry registry = Metrics.NewCustomRegistry();
    private readonly RefusingCa ca = new();

    [Theory]
    [InlineData(31 * 24, false)]
    [InlineData(30 * 24 + 1, false)]
    [InlineData(30 * 24, true)]
    [InlineData(29 * 24, true)]
    [InlineData(-1, true)]
    public void IsDue_from_30_days_before_expiry(int hoursLeft, bool due) =>
        Assert.Equal(due, CertificateManager.IsDue(Now.AddHours(hoursLeft), Now, TimeSpan.FromDays(30)));

    [Fact]
    public void RetryBackoff_doubles_from_5_minutes_to_12_hours_with_jitter_between_half_and_all_of_the_step()
    {
        var step = RetryBackoff.First;
        for (var failures = 1; failures <= 40; failures++)
        {
            var expected = step < RetryBackoff.Longest ? step : RetryBackoff.Longest;
            Assert.Equal(expected / 2, RetryBackoff.Delay(failures, 0));
            Assert.Equal(expected, RetryBackoff.Delay(failures, 1));
            Assert.InRange(RetryBackoff.Delay(failures, Random.Shared.NextDouble()), expected / 2, expected);
            step = step < RetryBackoff.Longest ? step * 2 : RetryBackoff.Longest;
        }

        Assert.Equal(TimeSpan.FromMinutes(2.5), RetryBackoff.Delay(1, 0));
        Assert.Equal(TimeSpan.FromHours(12), RetryBackoff.Delay(9, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => RetryBackoff.Delay(0, 0.5));
    }

    [Fact]
    public async Task A_valid_certificate_far_from_expiry_is_Ready_without_asking_the_CA()
    {
        var notAfter = Now.AddDays(60);
        WritePair("api.example.com", notAfter);
        using var manager = Manager();

        var states = await manager.ReconcileAsync(["API.example.com."], CancellationToken.None);

        var s = Assert.Single(states);
        Assert.Equal("api.example.com", s.Key);
        Assert.Equal(new CertificateState(CertificateStatus.Ready, "Issued", $"valid until {notAfter:u}", notAfter, null), s.Value);
        Assert.Equal(0, ca.Requests);
        Assert.Equal(notAfter.ToUnixTimeSeconds(), Gauge("api.example.com"));
    }

    [Fact]
    public async Task A_failed_renewal_keeps_the_files_and_the_domain_Ready_then_waits_for_its_backoff()
    {
        var notAfter = Now.AddDays(20);
        var (crt, key) = WritePair("api.example.com", notAfter);
        using var manager = Manager();

        var failed = (await manager.ReconcileAsync(["api.example.com"], CancellationToken.None))["api.example.com"];

        Assert.True(failed.Ready);
        Assert.Equal("RenewalFailed", failed.Reason);
        Assert.Contains("renewing failed: ACME newAccount: the CA refused: the CA is down for maintenance [urn:ietf:params:acme:error:serverInternal, HTTP 503]", failed.Message);
        Assert.Equal(notAfter, failed.Expiry);
        Assert.InRange(failed.NextAttempt!.Value, Now + RetryBackoff.First / 2, Now + RetryBackoff.First);
        Assert.Equal(crt, File.ReadAllText(CertificateFiles.Certificate(state, "api.example.com")));
        Assert.Equal(key, File.ReadAllText(CertificateFiles.Key(state, "api.example.com")));

        // The account key was made once, owner-only, before the CA was asked.
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(CertificateFiles.AccountKey(state)));
        var accountKey = File.ReadAllText(CertificateFiles.AccountKey(state));

        var asked = ca.Requests;
        clock.Advance(RetryBackoff.First / 2 - TimeSpan.FromSeconds(1));
        Assert.Equal(failed, (await manager.ReconcileAsync(["api.example.com"], CancellationToken.None))["api.example.com"]);
        Assert.Equal(asked, ca.Requests);

        clock.SetUtcNow(failed.NextAttempt.Value);
        var second = (await manager.ReconcileAsync(["api.example.com"], CancellationToken.None))["api.example.com"];
        Assert.True(ca.Requests > asked);
        Assert.InRange(second.NextAttempt!.Value, clock.GetUtcNow() + RetryBackoff.First, clock.GetUtcNow() + RetryBackoff.First * 2);
        Assert.Equal(accountKey, File.ReadAllText(CertificateFiles.AccountKey(state)));
    }

    [Fact]
    public async Task Without_a_certificate_a_failure_is_NotReady_and_a_domain_no_longer_wanted_loses_its_state_and_series()
    {
        WritePair("old.example.com", Now.AddDays(60));
        using var manager = Manager();
        await manager.ReconcileAsync(["old.example.com", "new.example.com", "*.example.com"], CancellationToken.None);

        var states = manager.States;
        Assert.Equal(CertificateStatus.NotReady, states["new.example.com"].Status);
        Assert.Equal("IssueFailed", states["new.example.com"].Reason);
        Assert.Equal("InvalidDomain", states["*.example.com"].Reason);
        Assert.NotNull(Gauge("old.example.com"));

        await manager.ReconcileAsync(["new.example.com"], CancellationToken.None);

        Assert.Equal(["new.example.com"], manager.States.Keys);
        Assert.Null(Gauge("old.example.com"));
        Assert.True(File.Exists(CertificateFiles.Certificate(state, "old.example.com")), "the files of a domain no longer wanted stay");
    }

    [Fact]
    public async Task RunAsync_passes_on_a_nudge_with_the_new_domains_and_again_once_a_retry_is_due()
    {
        using var manager = Manager();
        IReadOnlyCollection<string> wanted = ["a.example.com"];
        using var stop = new CancellationTokenSource();
        var run = manager.RunAsync(() => wanted, stop.Token);

        await Eventually.TrueAsync("the first pass", () => manager.States.ContainsKey("a.example.com"), TimeSpan.FromSeconds(30));
        var first = manager.States["a.example.com"];
        Assert.Equal("IssueFailed", first.Reason);

        wanted = ["a.example.com", "b.example.com"];
        manager.Nudge();
        await Eventually.TrueAsync("a pass with b.example.com", () => manager.States.ContainsKey("b.example.com"), TimeSpan.FromSeconds(30));
        Assert.Equal(first, manager.States["a.example.com"]);

        // The clock reaches a's retry: the loop, waiting on that clock, tries a again.
        clock.SetUtcNow(first.NextAttempt!.Value);
        await Eventually.TrueAsync("a retried", () => manager.States["a.example.com"].NextAttempt > first.NextAttempt, TimeSpan.FromSeconds(30),
            () => $"{manager.States["a.example.com"]}");

        await stop.CancelAsync();
        await run;
    }

    [Theory]
    [InlineData("../etc", false)]
    [InlineData("a/b.example.com", false)]
    [InlineData("*.example.com", false)]
    [InlineData("localhost", false)]
    [InlineData("API.example.com", false)]
    [InlineData("api.example.com", true)]
    [InlineData("xn--bcher-kva.example", true)]
    public void Only_lower_case_DNS_names_become_file_names(string domain, bool ok)
    {
        Assert.Equal(ok, CertificateFiles.IsDomain(domain));
        if (!ok)
        {
            Assert.Throws<ArgumentException>(() => CertificateFiles.Certificate(state, domain));
        }

        Assert.Throws<ArgumentException>(() => CertificateFiles.Challenge(state, "../x"));
    }

    [Theory]
    [InlineData("https://acme-staging-v02.api.letsencrypt.org/directory", null)]
    [InlineData("acme.example/directory", "is not an absolute https URL")]
    [InlineData("ftp://ca.example/dir", "is not an absolute https URL")]
    public void DirectoryProblem_names_what_is_wrong(string value, string? problem)
    {
        var found = AcmeOptions.DirectoryProblem(value);
        if (problem is null)
        {
            Assert.Null(found);
        }
        else
        {
            Assert.Contains(problem, found);
        }
    }

    [Theory]
    [InlineData("ops@example.com", true)]
    [InlineData("ops", false)]
    [InlineData("ops@localhost", false)]
    [InlineData("a b@example.com", false)]
    [InlineData("a@b@example.com", false)]
    public void EmailProblem_accepts_addresses_only(string value, bool ok) => Assert.Equal(ok, AcmeOptions.EmailProblem(value) is null);

    public void Dispose() => Directory.Delete(state, recursive: true);

    private CertificateManager Manager() => new(
        state,
        new AcmeOptions { Directory = new Uri("https://ca.test/dir"), Handler = ca },
        new CertificateMetrics(registry),
        NullLogger<CertificateManager>.Instance,
        clock);

    private (string Crt, string Key) WritePair(string domain, DateTimeOffset notAfter)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var pair = (CertificatesTests.SelfSigned(key, domain, notAfter), key.ExportPkcs8PrivateKeyPem());
        Directory.CreateDirectory(CertificateFiles.CertificatesDir(state));
        File.WriteAllText(CertificateFiles.Certificate(state, domain), pair.Item1);
        File.WriteAllText(CertificateFiles.Key(state, domain), pair.Item2);
        return pair;
    }

    private double? Gauge(string domain)
    {
        using var stream = new MemoryStream();
        registry.CollectAndExportAsTextAsync(stream).GetAwaiter().GetResult();
        var series = $"skiff_certificate_expiry_timestamp_seconds{{domain=\"{domain}\"}} ";
        var line = System.Text.Encoding.UTF8.GetString(stream.ToArray()).Split('\n').SingleOrDefault(l => l.StartsWith(series, StringComparison.Ordinal));
        return line is null ? null : double.Parse(line[series.Length..], System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>A CA whose directory answers and which refuses everything else with a 503 problem document.</summary>
    private sealed class RefusingCa : HttpMessageHandler
    {
        private int requests;

        public int Requests => Volatile.Read(ref requests);

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref requests);
            var response = request.Method == HttpMethod.Get || request.Method == HttpMethod.Head
                ? new HttpResponseMessage(System.Net.HttpStatusCode.OK)
                {
                    Content = new StringContent("""{"newNonce":"https://ca.test/nonce","newAccount":"https://ca.test/acct","newOrder":"https://ca.test/order"}"""),
                }
                : new HttpResponseMessage(System.Net.HttpStatusCode.ServiceUnavailable)
                {
                    Content = new StringContent("""{"type":"urn:ietf:params:acme:error:serverInternal","detail":"the CA is down for maintenance","status":503}"""),
                };
            response.Headers.Add("Replay-Nonce", "n-" + requests);
            return Task.FromResult(response);
        }
    }
}
