using System.Text.RegularExpressions;

namespace Skiff.Acme;

/// <summary>
/// Where the certificate files live in the operator's state folder, which the node proxy mounts at
/// <c>/routes</c>: the contract between the operator (writes) and the proxy (serves).
/// </summary>
/// <remarks>
/// - <c>proxy/acme/TOKEN</c>: an HTTP-01 key authorization (ASCII, no newline), there while the CA validates.
/// - <c>proxy/certs/DOMAIN.key</c> (PKCS#8 PEM) and <c>proxy/certs/DOMAIN.crt</c> (PEM, leaf then chain), mode 0600,
///   each replaced atomically, the key first.
/// - <c>acme/account.key</c> (PKCS#8 PEM, 0600) and <c>acme/account.url</c>: the ACME account, never mounted into the proxy.
/// </remarks>
public static partial class CertificateFiles
{
    public static string CertificatesDir(string stateDir) => Path.Combine(stateDir, "proxy", "certs");

    public static string ChallengesDir(string stateDir) => Path.Combine(stateDir, "proxy", "acme");

    public static string Certificate(string stateDir, string domain) => Path.Combine(CertificatesDir(stateDir), CheckedDomain(domain) + ".crt");

    public static string Key(string stateDir, string domain) => Path.Combine(CertificatesDir(stateDir), CheckedDomain(domain) + ".key");

    public static string Challenge(string stateDir, string token) =>
        TokenPattern().IsMatch(token)
            ? Path.Combine(ChallengesDir(stateDir), token)
            : throw new ArgumentException("An ACME token is base64url characters only.", nameof(token));

    public static string AccountKey(string stateDir) => Path.Combine(stateDir, "acme", "account.key");

    public static string AccountUrl(string stateDir) => Path.Combine(stateDir, "acme", "account.url");

    /// <summary>True for a lower-case DNS name of two labels or more (no wildcard: HTTP-01 cannot validate one), safe as a file name.</summary>
    public static bool IsDomain(string domain) => domain.Length <= 253 && DomainPattern().IsMatch(domain);

    private static string CheckedDomain(string domain) =>
        IsDomain(domain) ? domain : throw new ArgumentException($"\"{domain}\" is not a lower-case DNS name.", nameof(domain));

    [GeneratedRegex(@"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")]
    private static partial Regex DomainPattern();

    [GeneratedRegex(@"^[A-Za-z0-9_-]+$")]
    private static partial Regex TokenPattern();
}
