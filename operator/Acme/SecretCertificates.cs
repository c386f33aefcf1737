using System.Globalization;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace Skiff.Acme;

/// <summary>
/// One domain's certificate from a <c>kubernetes.io/tls</c> Secret (<c>spec.app.ports[].tlsSecret</c>): the two files to
/// write (<see cref="CertificatePem"/>, leaf first, and <see cref="KeyPem"/>, PKCS#8), or the <see cref="Problem"/> that
/// names the field and the fix (never a value of the Secret).
/// </summary>
public sealed record SecretCertificate(string Domain, string Field, string Secret, string? CertificatePem, string? KeyPem, DateTimeOffset? Expiry, string? Problem)
{
    public bool Usable => Problem is null;
}

/// <summary>
/// Checks the certificate of a <c>tlsSecret</c> (for users with their own CA; <c>Hosting.TlsSecrets</c> reads the Secrets):
/// no ACME order for its domains; the node proxy serves what the Secret holds once it is checked here.
/// </summary>
/// <remarks>
/// # Guarantees
/// - A usable certificate is the leaf for the Secret's key, unexpired, whose subjectAltName covers the domain (wildcards
///   count, the CN does not, as browsers do); the files hold the leaf first, then the rest of tls.crt, and the key
///   re-exported as PKCS#8, whatever PEM form tls.key had (PKCS#8, PKCS#1 RSA, SEC1 EC).
/// - A problem never throws: it is the domain's message, and the domain stays on what it had.
/// </remarks>
public static class SecretCertificates
{
    public const string SecretType = "kubernetes.io/tls";
    public const string CertificateKey = "tls.crt";
    public const string PrivateKeyKey = "tls.key";

    /// <summary>
    /// Checks tls.crt and tls.key for <paramref name="domain"/>: the leaf is the certificate of the key, unexpired at
    /// <paramref name="now"/>, and covers the domain. Returns the files to write or the problem.
    /// </summary>
    public static SecretCertificate Check(string domain, string field, string secret, string certificatePem, string keyPem, DateTimeOffset now)
    {
        SecretCertificate Fail(string problem) => new(domain, field, secret, null, null, null, $"{field}: {problem}");
        var where = $"Secret \"{secret}\"";
        var fix = $"put the PEM certificate (leaf first, then its chain) in {CertificateKey} and its unencrypted private key in {PrivateKeyKey}";

        var chain = new X509Certificate2Collection();
        try
        {
            chain.ImportFromPem(certificatePem);
        }
        catch (CryptographicException)
        {
            chain.Clear();
        }

        if (chain.Count == 0)
        {
            return Fail($"{where}: {CertificateKey} holds no PEM certificate (-----BEGIN CERTIFICATE-----); {fix}");
        }

        try
        {
            using var key = ImportKey(keyPem);
            if (key is null)
            {
                return Fail($"{where}: {PrivateKeyKey} holds no unencrypted RSA or EC private key in PEM (-----BEGIN PRIVATE KEY-----); {fix}");
            }

            var publicKey = key.ExportSubjectPublicKeyInfo();
            var leaf = chain.FirstOrDefault(c => c.PublicKey.ExportSubjectPublicKeyInfo().AsSpan().SequenceEqual(publicKey));
            if (leaf is null)
            {
                return Fail($"{where}: {PrivateKeyKey} is not the private key of any certificate in {CertificateKey}; {fix}");
            }

            var notAfter = new DateTimeOffset(leaf.NotAfter.ToUniversalTime(), TimeSpan.Zero);
            if (notAfter <= now)
            {
                return Fail($"{where}: its certificate expired at {notAfter.ToString("u", CultureInfo.InvariantCulture)}; put a renewed one in the Secret");
            }

            if (!leaf.MatchesHostname(domain, allowWildcards: true, allowCommonName: false))
            {
                var names = DnsNames(leaf);
                return Fail($"{where}: its certificate (for {(names.Count == 0 ? "no DNS name" : string.Join(", ", names))}) does not cover {domain}; issue one whose subjectAltName names {domain}, or move {domain} to a port of its own");
            }

            var pem = new StringBuilder(leaf.ExportCertificatePem()).Append('\n');
            foreach (var other in chain.Where(c => c != leaf))
            {
                pem.Append(other.ExportCertificatePem()).Append('\n');
            }

            return new SecretCertificate(domain, field, secret, pem.ToString(), key.ExportPkcs8PrivateKeyPem() + "\n", notAfter, null);
        }
        finally
        {
            foreach (var c in chain)
            {
                c.Dispose();
            }
        }
    }

    /// <summary>The private key of the PEM (PKCS#8, PKCS#1 RSA or SEC1 EC), or null when it holds none Skiff can use.</summary>
    private static AsymmetricAlgorithm? ImportKey(string pem)
    {
        var text = pem.AsSpan();
        if (pem.Contains("ENCRYPTED PRIVATE KEY", StringComparison.Ordinal))
        {
            return null;
        }

        // Try RSA first, then EC: ImportFromPem takes the first PEM block of a type it knows.
        AsymmetricAlgorithm[] candidates = [RSA.Create(), ECDsa.Create()];
        foreach (var candidate in candidates)
        {
            try
            {
                candidate.ImportFromPem(text);
                foreach (var other in candidates.Where(c => c != candidate))
                {
                    other.Dispose();
                }

                return candidate;
            }
            catch (Exception e) when (e is CryptographicException or ArgumentException)
            {
                candidate.Dispose();
            }
        }

        return null;
    }

    private static List<string> DnsNames(X509Certificate2 certificate) =>
        certificate.Extensions.OfType<X509SubjectAlternativeNameExtension>().SelectMany(e => e.EnumerateDnsNames()).ToList();
}
