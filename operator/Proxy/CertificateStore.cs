using System.Net.Security;
using System.Text.Json.Serialization;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;

namespace Skiff.Proxy;

/// <summary>
/// The certificates the HTTPS listener serves, from the certs folder (<c>DOMAIN.crt</c>, PEM leaf then chain, and
/// <c>DOMAIN.key</c>, PEM PKCS#8), kept as TLS contexts by domain and picked up without a restart.
/// </summary>
/// <remarks>
/// # Guarantees
/// - <see cref="Refresh"/> loads a pair only when either file changed (size or time); a pair that loads replaces the
///   domain's certificate for new handshakes (connections open keep theirs).
/// - A half pair, bad PEM or a key that does not fit the certificate never replaces a good certificate: the last good
///   one keeps serving, and the problem is logged once (after it is seen twice, since the writer replaces the two
///   files one after the other), not on every check.
/// - A domain whose two files are both gone is no longer served over HTTPS.
/// - Reads are lock-free (<see cref="Find"/> and <see cref="Has"/> see one whole snapshot).
/// </remarks>
public sealed class CertificateStore
{
    private readonly ILogger logger;
    private readonly Dictionary<string, Stamp> seen = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Stamp> suspect = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Stamp> warned = new(StringComparer.Ordinal);
    private volatile Dictionary<string, Served> served = new(StringComparer.Ordinal);

    public CertificateStore(string folder, ILogger logger)
    {
        Folder = Path.GetFullPath(folder);
        this.logger = logger;
    }

    /// <summary>The certs folder (<c>proxy/certs</c> of the state folder, <c>/routes/certs</c> in the container).</summary>
    public string Folder { get; }

    /// <summary>The TLS context of a domain's certificate, or null when none is served.</summary>
    public SslStreamCertificateContext? Find(string domain) => served.TryGetValue(domain, out var s) ? s.Context : null;

    /// <summary>Whether a certificate is served for <paramref name="domain"/>.</summary>
    public bool Has(string domain) => served.ContainsKey(domain);

    /// <summary>The expiry of the certificate served for <paramref name="domain"/>, or null.</summary>
    public DateTimeOffset? NotAfter(string domain) => served.TryGetValue(domain, out var s) ? s.NotAfter : null;

    /// <summary>Reads the folder: loads changed pairs, drops domains whose files are gone.</summary>
    public void Refresh()
    {
        Dictionary<string, (string? Crt, string? Key)> pairs;
        try
        {
            pairs = Directory.Exists(Folder) ? Scan() : [];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            WarnOnce("(folder)", new Stamp(0, 0, 0, 0), $"Certificates: cannot read {Folder} ({e.Message}); the certificates loaded stay served");
            return;
        }

        var next = served;
        var changed = false;
        foreach (var gone in next.Keys.Where(d => !pairs.ContainsKey(d)).ToList())
        {
            next = Copy(next, changed);
            changed = true;
            next.Remove(gone);
            seen.Remove(gone);
            logger.LogInformation("Certificates: {Domain} has no certificate files any more; it is no longer served over HTTPS", gone);
        }

        foreach (var (domain, (crt, key)) in pairs)
        {
            if (crt is null || key is null)
            {
                var stamp = new Stamp(crt is null ? -1 : 0, 0, key is null ? -1 : 0, 0);
                Problem(domain, stamp, $"{domain}.{(crt is null ? "crt" : "key")} is missing (the pair is {domain}.crt and {domain}.key)");
                continue;
            }

            Stamp now;
            try
            {
                now = Stamp.Of(crt, key);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                continue;
            }

            if (seen.TryGetValue(domain, out var last) && last == now)
            {
                continue;
            }

            try
            {
                var loaded = Load(crt, key);
                next = Copy(next, changed);
                changed = true;
                var replaced = next.ContainsKey(domain);
                next[domain] = loaded;
                seen[domain] = now;
                suspect.Remove(domain);
                warned.Remove(domain);
                logger.LogInformation("Certificates: {Domain} {Action} ({Subject}, expires {NotAfter:u})",
                    domain, replaced ? "renewed" : "loaded", loaded.Subject, loaded.NotAfter);
            }
            catch (Exception e) when (e is CryptographicException or IOException or UnauthorizedAccessException or ArgumentException)
            {
                Problem(domain, now, $"{domain}.crt and {domain}.key cannot be used: {e.Message}");
            }
        }

        if (changed)
        {
            served = next;
        }
    }

    /// <summary>Loads one pair: the first certificate of the .crt is the leaf, the rest its chain.</summary>
    /// <exception cref="CryptographicException">Bad PEM, no certificate, or a key that is not the certificate's.</exception>
    internal static Served Load(string crtPath, string keyPath)
    {
        var crtPem = File.ReadAllText(crtPath);
        var keyPem = File.ReadAllText(keyPath);
        var all = new X509Certificate2Collection();
        all.ImportFromPem(crtPem);
        if (all.Count == 0)
        {
            throw new CryptographicException("no CERTIFICATE block in the .crt");
        }

        using var leafOnly = all[0];
        var leaf = X509Certificate2.CreateFromPem(leafOnly.ExportCertificatePem(), keyPem);
        var chain = new X509Certificate2Collection();
        for (var i = 1; i < all.Count; i++)
        {
            chain.Add(all[i]);
        }

        var context = SslStreamCertificateContext.Create(leaf, chain, offline: true);
        return new Served(context, leaf.Subject, new DateTimeOffset(leaf.NotAfter.ToUniversalTime(), TimeSpan.Zero));
    }

    private static Dictionary<string, Served> Copy(Dictionary<string, Served> current, bool already) =>
        already ? current : new Dictionary<string, Served>(current, StringComparer.Ordinal);

    private Dictionary<string, (string? Crt, string? Key)> Scan()
    {
        var pairs = new Dictionary<string, (string? Crt, string? Key)>(StringComparer.Ordinal);
        foreach (var file in Directory.EnumerateFiles(Folder))
        {
            var name = Path.GetFileName(file);
            if (name.StartsWith('.'))
            {
                // A writer's temporary file, renamed over the real one when complete.
                continue;
            }

            var extension = Path.GetExtension(name);
            var domain = Path.GetFileNameWithoutExtension(name);
            if (extension is not (".crt" or ".key") || DomainName.Problem(domain) is not null)
            {
                continue;
            }

            var pair = pairs.GetValueOrDefault(domain);
            pairs[domain] = extension == ".crt" ? pair with { Crt = file } : pair with { Key = file };
        }

        return pairs;
    }

    /// <summary>A pair that does not load: warned once it is seen twice in the same state (the writer may be between its two files).</summary>
    private void Problem(string domain, Stamp stamp, string message)
    {
        if (!suspect.TryGetValue(domain, out var before) || before != stamp)
        {
            suspect[domain] = stamp;
            return;
        }

        var keeping = served.ContainsKey(domain) ? "the last good certificate keeps serving" : "it is served over HTTP only until a good pair is there";
        WarnOnce(domain, stamp, $"Certificates: {message}; {keeping}");
    }

    private void WarnOnce(string key, Stamp stamp, string message)
    {
        if (warned.TryGetValue(key, out var last) && last == stamp)
        {
            return;
        }

        warned[key] = stamp;
        logger.LogWarning("{Message}", message);
    }

    /// <summary>A served certificate.</summary>
    internal sealed record Served(SslStreamCertificateContext Context, string Subject, DateTimeOffset NotAfter);

    /// <summary>The sizes and write times of a pair: a change in either means "load again".</summary>
    private readonly record struct Stamp(long CrtLength, long CrtTime, long KeyLength, long KeyTime)
    {
        public static Stamp Of(string crt, string key)
        {
            var c = new FileInfo(crt);
            var k = new FileInfo(key);
            return new Stamp(c.Length, c.LastWriteTimeUtc.Ticks, k.Length, k.LastWriteTimeUtc.Ticks);
        }
    }
}

/// <summary>A domain of a stack as <c>skiff status</c> shows it: its route and the certificate on disk.</summary>
/// <param name="Domain">The domain.</param>
/// <param name="Tls">Served over HTTPS once a certificate is there.</param>
/// <param name="Port">The port's name in the spec.</param>
/// <param name="Revision">The revision it goes to.</param>
/// <param name="Upstream">The revision's container address.</param>
/// <param name="Certificate">served, expired, none, unreadable, or http-only (tls false).</param>
/// <param name="NotAfter">The certificate's expiry, when one is readable.</param>
public sealed record DomainState(
    [property: JsonPropertyName("domain")] string Domain,
    [property: JsonPropertyName("tls")] bool Tls,
    [property: JsonPropertyName("port")] string Port,
    [property: JsonPropertyName("revision")] long Revision,
    [property: JsonPropertyName("upstream")] string Upstream,
    [property: JsonPropertyName("certificate")] string Certificate,
    [property: JsonPropertyName("notAfter")] DateTimeOffset? NotAfter)
{
    /// <summary>The domains of <paramref name="stack"/> in <paramref name="routes"/>, with their certificates read from <paramref name="certsFolder"/>.</summary>
    public static List<DomainState> Of(ProxyRoutes routes, string stack, string certsFolder, DateTimeOffset now) =>
        [.. (routes.Domains ?? []).Where(d => d.Stack == stack).OrderBy(d => d.Domain, StringComparer.Ordinal).Select(d =>
        {
            if (!d.Tls)
            {
                return new DomainState(d.Domain, d.Tls, d.Port, d.Revision, d.Upstream, "http-only", null);
            }

            var crt = Path.Combine(certsFolder, d.Domain + ".crt");
            var key = Path.Combine(certsFolder, d.Domain + ".key");
            if (!File.Exists(crt) || !File.Exists(key))
            {
                return new DomainState(d.Domain, d.Tls, d.Port, d.Revision, d.Upstream, "none", null);
            }

            try
            {
                using var leaf = X509Certificate2.CreateFromPem(File.ReadAllText(crt));
                var notAfter = new DateTimeOffset(leaf.NotAfter.ToUniversalTime(), TimeSpan.Zero);
                return new DomainState(d.Domain, d.Tls, d.Port, d.Revision, d.Upstream, notAfter <= now ? "expired" : "served", notAfter);
            }
            catch (Exception e) when (e is CryptographicException or IOException or UnauthorizedAccessException or ArgumentException)
            {
                return new DomainState(d.Domain, d.Tls, d.Port, d.Revision, d.Upstream, "unreadable", null);
            }
        })];
}
