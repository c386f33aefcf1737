using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;
using Skiff.State;

namespace Skiff.Acme;

/// <summary>Whether a domain has a certificate the proxy can serve.</summary>
public enum CertificateStatus
{
    /// <summary>An unexpired certificate for the domain is on disk.</summary>
    Ready,

    /// <summary>No usable certificate: the route stays on HTTP.</summary>
    NotReady,
}

/// <summary>
/// One domain's certificate: <see cref="Reason"/> is <c>Issued</c> (a valid certificate is on disk),
/// <c>RenewalFailed</c> (still valid, but renewing it failed), <c>IssueFailed</c> (none, and issuing failed),
/// <c>InvalidDomain</c>; <see cref="Message"/> says why, with the CA's problem document when it refused.
/// </summary>
public sealed record CertificateState(CertificateStatus Status, string Reason, string Message, DateTimeOffset? Expiry, DateTimeOffset? NextAttempt)
{
    public bool Ready => Status == CertificateStatus.Ready;
}

/// <summary>
/// Keeps a certificate on disk for every wanted domain (<see cref="CertificateFiles"/>): issues the missing ones, renews those
/// expiring within <see cref="AcmeOptions.RenewBefore"/>, retries failures with <see cref="RetryBackoff"/>, and reports each
/// domain's <see cref="States"/> and <c>skiff_certificate_expiry_timestamp_seconds</c>.
/// </summary>
/// <remarks>
/// # Guarantees
/// - A failed issuance or renewal never touches the files already there: the proxy keeps serving what it has.
/// - New files replace old ones atomically, the key first, both 0600.
/// - The challenge file is written before the CA is told to validate, and removed once validation ended.
///
/// # Caveats
/// <see cref="ReconcileAsync"/> calls must not overlap (<see cref="RunAsync"/> makes them one at a time). Files of a domain
/// no longer wanted are left in place (a domain removed by mistake comes back without a new issuance).
/// </remarks>
public sealed class CertificateManager : IDisposable
{
    private readonly string stateDir;
    private readonly AcmeOptions options;
    private readonly CertificateMetrics? metrics;
    private readonly ILogger logger;
    private readonly TimeProvider time;
    private readonly HttpClient http;
    private readonly Dictionary<string, Attempts> attempts = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim nudge = new(0, 1);
    private IReadOnlyDictionary<string, CertificateState> states = new Dictionary<string, CertificateState>();

    public CertificateManager(string stateDir, AcmeOptions options, CertificateMetrics? metrics, ILogger<CertificateManager> logger, TimeProvider? time = null)
    {
        this.stateDir = stateDir;
        this.options = options;
        this.metrics = metrics;
        this.logger = logger;
        this.time = time ?? TimeProvider.System;
        http = options.Handler is { } handler ? new HttpClient(handler, disposeHandler: false) : new HttpClient();
        http.DefaultRequestHeaders.UserAgent.ParseAdd("skiff-acme/1");
        http.Timeout = TimeSpan.FromSeconds(60);
    }

    /// <summary>Each wanted domain's certificate after the last pass (a snapshot; safe to read from any thread).</summary>
    public IReadOnlyDictionary<string, CertificateState> States => Volatile.Read(ref states);

    /// <summary>Makes a waiting <see cref="RunAsync"/> pass now (the wanted domains changed).</summary>
    public void Nudge()
    {
        try
        {
            nudge.Release();
        }
        catch (SemaphoreFullException)
        {
        }
    }

    /// <summary>
    /// Passes until cancelled: one now, then at the earliest retry due or within the hour (certificates are checked hourly),
    /// or at once on <see cref="Nudge"/>. <paramref name="wanted"/> is read at every pass, after <paramref name="ready"/>
    /// (the proxy serving the routes that name those domains, so that the CA's challenge request finds them).
    /// </summary>
    public async Task RunAsync(Func<IReadOnlyCollection<string>> wanted, CancellationToken ct, Func<CancellationToken, Task>? ready = null)
    {
        while (!ct.IsCancellationRequested)
        {
            if (ready is not null)
            {
                await ready(ct);
            }

            var result = await ReconcileAsync(wanted(), ct);
            var now = time.GetUtcNow();
            var next = result.Values.Select(s => s.NextAttempt).Where(n => n is not null).Min() ?? now.AddHours(1);
            var wait = next - now;
            wait = wait < TimeSpan.FromSeconds(1) ? TimeSpan.FromSeconds(1) : wait > TimeSpan.FromHours(1) ? TimeSpan.FromHours(1) : wait;
            using var waiting = CancellationTokenSource.CreateLinkedTokenSource(ct);
            var woken = nudge.WaitAsync(waiting.Token);
            var due = Task.Delay(wait, time, waiting.Token);
            await Task.WhenAny(woken, due);
            await waiting.CancelAsync();
            await Task.WhenAll(woken, due).ContinueWith(_ => { }, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
        }
    }

    /// <summary>One pass over <paramref name="domains"/>: issues what is missing or due, and returns the new <see cref="States"/>.</summary>
    public async Task<IReadOnlyDictionary<string, CertificateState>> ReconcileAsync(IReadOnlyCollection<string> domains, CancellationToken ct)
    {
        var wanted = domains.Select(d => d.Trim().TrimEnd('.').ToLowerInvariant()).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        foreach (var gone in attempts.Keys.Except(wanted).ToList())
        {
            attempts.Remove(gone);
        }

        foreach (var gone in States.Keys.Except(wanted))
        {
            metrics?.Forget(gone);
        }

        var next = new Dictionary<string, CertificateState>(StringComparer.Ordinal);
        AcmeClient? client = null;
        foreach (var domain in wanted)
        {
            ct.ThrowIfCancellationRequested();
            if (!CertificateFiles.IsDomain(domain))
            {
                next[domain] = new CertificateState(CertificateStatus.NotReady, "InvalidDomain",
                    $"\"{domain}\" is not a DNS name a certificate can be issued for over HTTP-01 (lower-case labels, no wildcard)", null, null);
                continue;
            }

            var now = time.GetUtcNow();
            var expiry = CurrentExpiry(domain, now);
            if (expiry is { } e && !IsDue(e, now, options.RenewBefore))
            {
                attempts.Remove(domain);
                next[domain] = new CertificateState(CertificateStatus.Ready, "Issued", $"valid until {e:u}", e, null);
                continue;
            }

            var tried = attempts.GetValueOrDefault(domain);
            if (tried is not null && now < tried.NextAttempt && States.TryGetValue(domain, out var last))
            {
                next[domain] = last with { Expiry = expiry };
                continue;
            }

            try
            {
                client ??= await AccountAsync(ct);
                var issued = await IssueAsync(client, domain, ct);
                attempts.Remove(domain);
                metrics?.Expires(domain, issued);
                logger.LogInformation("Certificate for {Domain} issued, valid until {NotAfter:u}", domain, issued);
                next[domain] = new CertificateState(CertificateStatus.Ready, "Issued", $"valid until {issued:u}", issued, null);
            }
            catch (Exception ex) when (!ct.IsCancellationRequested && ex is AcmeException or HttpRequestException or IOException
                                           or CryptographicException or UnauthorizedAccessException or OperationCanceledException)
            {
                var failures = (tried?.Failures ?? 0) + 1;
                var retry = now + RetryBackoff.Delay(failures, Random.Shared.NextDouble());
                attempts[domain] = new Attempts(failures, retry);
                var why = Describe(ex);
                logger.LogWarning("Certificate for {Domain} not issued ({Failures} failure(s) in a row; next try at {Retry:u}): {Reason}", domain, failures, retry, why);
                next[domain] = expiry is { } valid
                    ? new CertificateState(CertificateStatus.Ready, "RenewalFailed", $"valid until {valid:u}; renewing failed: {why}", valid, retry)
                    : new CertificateState(CertificateStatus.NotReady, "IssueFailed", why, null, retry);
            }
        }

        Volatile.Write(ref states, next);
        return next;
    }

    /// <summary>Whether a certificate valid until <paramref name="notAfter"/> must be renewed now.</summary>
    public static bool IsDue(DateTimeOffset notAfter, DateTimeOffset now, TimeSpan renewBefore) => notAfter - now <= renewBefore;

    public void Dispose()
    {
        http.Dispose();
        nudge.Dispose();
    }

    /// <summary>The expiry of the unexpired certificate on disk for the domain (and sets its gauge), else null.</summary>
    private DateTimeOffset? CurrentExpiry(string domain, DateTimeOffset now)
    {
        using var current = Certificates.ReadPair(CertificateFiles.Certificate(stateDir, domain), CertificateFiles.Key(stateDir, domain));
        if (current is null || !current.MatchesHostname(domain, allowWildcards: false))
        {
            metrics?.Forget(domain);
            return null;
        }

        var notAfter = new DateTimeOffset(current.NotAfter.ToUniversalTime(), TimeSpan.Zero);
        metrics?.Expires(domain, notAfter);
        return notAfter > now ? notAfter : null;
    }

    /// <summary>The account key (created once, 0600) and its account at the CA, created or found again (newAccount is idempotent per key).</summary>
    private async Task<AcmeClient> AccountAsync(CancellationToken ct)
    {
        var keyPath = CertificateFiles.AccountKey(stateDir);
        var key = ECDsa.Create();
        if (File.Exists(keyPath))
        {
            key.ImportFromPem(await File.ReadAllTextAsync(keyPath, ct));
        }
        else
        {
            key.GenerateKey(ECCurve.NamedCurves.nistP256);
            AtomicFile.Write(keyPath, Encoding.ASCII.GetBytes(key.ExportPkcs8PrivateKeyPem()), ownerOnly: true);
        }

        var client = new AcmeClient(http, options.Directory, key);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(options.IssueTimeout);
        var url = await client.NewAccountAsync(options.Email, timeout.Token);
        var urlPath = CertificateFiles.AccountUrl(stateDir);
        if (!File.Exists(urlPath) || await File.ReadAllTextAsync(urlPath, ct) != url.AbsoluteUri)
        {
            AtomicFile.Write(urlPath, Encoding.ASCII.GetBytes(url.AbsoluteUri), ownerOnly: true);
        }

        return client;
    }

    /// <summary>Orders, validates over HTTP-01, finalizes and writes the files; returns the new certificate's expiry.</summary>
    private async Task<DateTimeOffset> IssueAsync(AcmeClient client, string domain, CancellationToken ct)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(options.IssueTimeout);
        var token = timeout.Token;

        var order = await client.NewOrderAsync([domain], token);
        foreach (var authzUrl in order.Authorizations)
        {
            var authz = await client.GetAuthorizationAsync(authzUrl, token);
            if (authz.Status == "valid")
            {
                continue;
            }

            var challenge = authz.Challenges.FirstOrDefault(c => c.Type == "http-01")
                ?? throw new AcmeException($"authorization of {authz.Domain}", "the CA offers no http-01 challenge");
            var challengePath = CertificateFiles.Challenge(stateDir, challenge.Token);
            AtomicFile.Write(challengePath, Encoding.ASCII.GetBytes(client.KeyAuthorization(challenge.Token)));
            try
            {
                await client.RespondToChallengeAsync(challenge.Url, token);
                await client.WaitForAuthorizationAsync(authzUrl, token);
            }
            finally
            {
                File.Delete(challengePath);
            }
        }

        order = await client.WaitForOrderAsync(order.Url, "ready", token);
        using var certificateKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        if (order.Status != "valid")
        {
            order = await client.FinalizeAsync(order, Certificates.SigningRequest(domain, certificateKey), token);
        }

        var chain = await client.DownloadCertificateAsync(
            order.Certificate ?? throw new AcmeException("order", "the valid order names no certificate URL"), token);
        using var leaf = Certificates.CheckedLeaf(chain, domain, certificateKey);

        // The key first: a reader that sees the new certificate always finds its key (it loads both on the .crt's change).
        AtomicFile.Write(CertificateFiles.Key(stateDir, domain), Encoding.ASCII.GetBytes(certificateKey.ExportPkcs8PrivateKeyPem()), ownerOnly: true);
        AtomicFile.Write(CertificateFiles.Certificate(stateDir, domain), Encoding.ASCII.GetBytes(chain), ownerOnly: true);
        return new DateTimeOffset(leaf.NotAfter.ToUniversalTime(), TimeSpan.Zero);
    }

    private static string Describe(Exception ex) => ex switch
    {
        AcmeException => ex.Message,
        HttpRequestException { StatusCode: { } code } => $"the CA answered HTTP {(int)code} ({code})",
        HttpRequestException h => $"the CA is unreachable: {h.HttpRequestError switch
        {
            HttpRequestError.NameResolutionError => "its name does not resolve",
            HttpRequestError.ConnectionError => "the connection failed",
            HttpRequestError.SecureConnectionError => "its TLS certificate is not trusted or the handshake failed",
            _ => "the request failed",
        }}",
        OperationCanceledException => "the CA did not finish in time",
        _ => $"the certificate files could not be written or read ({ex.GetType().Name})",
    };

    private sealed record Attempts(int Failures, DateTimeOffset NextAttempt);
}
