using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Skiff.Acme;

/// <summary>The X.509 pieces of issuance: the CSR for a domain, and reading a certificate and its key back from disk.</summary>
public static class Certificates
{
    /// <summary>
    /// A PKCS#10 request (DER) for <paramref name="domain"/>, signed by <paramref name="key"/> (SHA-256): the subject's
    /// CN and a subjectAltName dNSName, which is what a CA issues from (CABF baseline requirements ignore the CN).
    /// </summary>
    public static byte[] SigningRequest(string domain, ECDsa key)
    {
        var request = new CertificateRequest(new X500DistinguishedName("CN=" + domain), key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName(domain);
        request.CertificateExtensions.Add(names.Build());
        return request.CreateSigningRequest();
    }

    /// <summary>
    /// The certificate at <paramref name="certificatePath"/> when it and the key beside it load as a pair (the key matches
    /// the leaf), else null: a missing, unreadable or mismatched pair is one to issue again.
    /// </summary>
    public static X509Certificate2? ReadPair(string certificatePath, string keyPath)
    {
        try
        {
            return X509Certificate2.CreateFromPemFile(certificatePath, keyPath);
        }
        catch (Exception e) when (e is IOException or CryptographicException or UnauthorizedAccessException or ArgumentException)
        {
            return null;
        }
    }

    /// <summary>
    /// The leaf of a PEM chain the CA sent, checked: it is the certificate of <paramref name="key"/> and names
    /// <paramref name="domain"/>. Anything else is an <see cref="AcmeException"/>, and nothing is written.
    /// </summary>
    public static X509Certificate2 CheckedLeaf(string pemChain, string domain, ECDsa key)
    {
        X509Certificate2 leaf;
        try
        {
            leaf = X509Certificate2.CreateFromPem(pemChain);
        }
        catch (CryptographicException)
        {
            throw new AcmeException("certificate download", "the CA's answer holds no PEM certificate");
        }

        using var leafKey = leaf.GetECDsaPublicKey();
        if (leafKey is null || !leafKey.ExportSubjectPublicKeyInfo().AsSpan().SequenceEqual(key.ExportSubjectPublicKeyInfo()))
        {
            throw new AcmeException("certificate download", "the certificate is not for the key the request was signed with");
        }

        if (!leaf.MatchesHostname(domain, allowWildcards: false))
        {
            throw new AcmeException("certificate download", $"the certificate does not name {domain}");
        }

        return leaf;
    }
}
