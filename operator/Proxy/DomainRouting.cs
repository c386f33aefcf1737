using System.Globalization;

namespace Skiff.Proxy;

/// <summary>The domains of the routes applied, by name: swapped whole, read once per request.</summary>
public sealed class DomainTable
{
    private readonly Dictionary<string, ProxyDomain> byName;

    private DomainTable(Dictionary<string, ProxyDomain> byName)
    {
        this.byName = byName;
    }

    /// <summary>No domains.</summary>
    public static DomainTable Empty { get; } = new(new Dictionary<string, ProxyDomain>(StringComparer.Ordinal));

    public int Count => byName.Count;

    public IEnumerable<ProxyDomain> Domains => byName.Values;

    public static DomainTable From(IEnumerable<ProxyDomain> domains) =>
        new(domains.ToDictionary(d => d.Domain, StringComparer.Ordinal));

    /// <summary>
    /// The domain a <c>Host</c> header (or SNI name) names: compared in lowercase, without a port or a trailing dot;
    /// null when no domain is routed by that name.
    /// </summary>
    public ProxyDomain? Find(string? host)
    {
        var name = Normalize(host);
        return name is not null && byName.TryGetValue(name, out var domain) ? domain : null;
    }

    /// <summary>A host name as the table keys it: lowercase, no port, no trailing dot; null when empty.</summary>
    public static string? Normalize(string? host)
    {
        if (string.IsNullOrEmpty(host))
        {
            return null;
        }

        var name = host;
        if (!name.StartsWith('[') && name.LastIndexOf(':') is var colon and > 0)
        {
            name = name[..colon];
        }

        name = name.TrimEnd('.').ToLowerInvariant();
        return name.Length == 0 ? null : name;
    }
}

/// <summary>What the shared HTTP or HTTPS listener does with one request.</summary>
public abstract record DomainDecision
{
    /// <summary>Forward to the domain's live revision.</summary>
    public sealed record Forward(ProxyDomain Domain) : DomainDecision;

    /// <summary>308 to the same host, path and query over HTTPS.</summary>
    public sealed record Redirect(string Location) : DomainDecision;

    /// <summary>Answer an ACME HTTP-01 challenge with the file of this token (404 when there is none).</summary>
    public sealed record Challenge(string Token) : DomainDecision;

    /// <summary>404 with a short text.</summary>
    public sealed record NotFound(string Text) : DomainDecision;

    /// <summary>421: over HTTPS, the Host names another domain than the TLS handshake did (SNI).</summary>
    public sealed record Misdirected(string Text) : DomainDecision;
}

/// <summary>
/// The routing rules of the shared listeners (docs/PROXY.md, "Domains and HTTPS"), as a pure function so they are
/// tested without sockets.
/// </summary>
/// <remarks>
/// # Guarantees
/// - HTTP: <c>/.well-known/acme-challenge/TOKEN</c> is the ACME challenge whatever the host (never redirected); a
///   token that is not base64url is a 404, never a file path. A known domain with <c>tls</c> and a certificate
///   redirects (308, same host, path and query) to HTTPS; without a certificate yet, or without <c>tls</c>, it is
///   forwarded: the route never goes down for want of a certificate. An unknown host is a 404.
/// - HTTPS: a known domain is forwarded when it is the name the handshake asked for (SNI); another domain of the
///   node is a 421 (the certificate was not its), an unknown host a 404.
/// </remarks>
public static class DomainRouting
{
    /// <summary>The path prefix of ACME HTTP-01 challenges (RFC 8555 §8.3).</summary>
    public const string ChallengePrefix = "/.well-known/acme-challenge/";

    /// <summary>Decides one request.</summary>
    /// <param name="https">The request came over the HTTPS listener.</param>
    /// <param name="host">The request's <c>Host</c> header.</param>
    /// <param name="pathAndQuery">The path and query as the client sent them (<c>/a/b?c=d</c>).</param>
    /// <param name="table">The domains now.</param>
    /// <param name="hasCertificate">Whether a certificate is served for a domain now.</param>
    /// <param name="httpsPort">The HTTPS listener's port (left out of the redirect when 443).</param>
    /// <param name="serverName">Over HTTPS: the name the TLS handshake asked for (SNI).</param>
    public static DomainDecision Decide(bool https, string? host, string pathAndQuery, DomainTable table, Func<string, bool> hasCertificate, int httpsPort, string? serverName = null)
    {
        if (!https && pathAndQuery.StartsWith(ChallengePrefix, StringComparison.Ordinal))
        {
            var token = pathAndQuery[ChallengePrefix.Length..];
            var query = token.IndexOf('?', StringComparison.Ordinal);
            token = query >= 0 ? token[..query] : token;
            return IsToken(token) ? new DomainDecision.Challenge(token) : new DomainDecision.NotFound("no such challenge\n");
        }

        if (table.Find(host) is not { } domain)
        {
            var shown = DomainTable.Normalize(host) ?? "(none)";
            return new DomainDecision.NotFound($"no site is served here for host {Printable(shown)}\n");
        }

        if (https && serverName is not null && DomainTable.Normalize(serverName) != domain.Domain)
        {
            return new DomainDecision.Misdirected($"this connection is for {Printable(DomainTable.Normalize(serverName)!)}, not {domain.Domain}: open a new one\n");
        }

        if (!https && domain.Tls && hasCertificate(domain.Domain))
        {
            var port = httpsPort == 443 ? "" : ":" + httpsPort.ToString(CultureInfo.InvariantCulture);
            var path = pathAndQuery.StartsWith('/') ? pathAndQuery : "/" + pathAndQuery;
            return new DomainDecision.Redirect($"https://{domain.Domain}{port}{path}");
        }

        return new DomainDecision.Forward(domain);
    }

    /// <summary>Whether a challenge token is base64url (RFC 8555 §8.1), so that it can only name a file in the challenge folder.</summary>
    public static bool IsToken(string token) =>
        token.Length is > 0 and <= 256 && token.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_');

    private static string Printable(string text) =>
        text.Length <= 100 && text.All(c => c is >= ' ' and <= '~') ? text : "(not printable)";
}
