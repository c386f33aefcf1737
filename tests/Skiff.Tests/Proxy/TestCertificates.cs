using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Skiff.Tests.Proxy;

/// <summary>A test root CA, an intermediate, and leaf certificates it signs, written as the certificate manager writes them (PEM, atomically).</summary>
public sealed class TestCertificates : IDisposable
{
    private readonly ECDsa caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
    private readonly ECDsa intermediateKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);

    public TestCertificates(string name = "Skiff Test CA")
    {
        var request = new CertificateRequest($"CN={name}", caKey, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        Ca = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddYears(1));

        // Leaves are signed by an intermediate, as an ACME CA's are: the .crt carries it as the chain.
        var middle = new CertificateRequest($"CN={name} Intermediate", intermediateKey, HashAlgorithmName.SHA256);
        middle.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        middle.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        middle.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(middle.PublicKey, false));
        using var signed = middle.Create(Ca, DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddMonths(11), [1, 2, 3, 4]);
        Intermediate = signed.CopyWithPrivateKey(intermediateKey);
    }

    /// <summary>The root CA certificate (with its key): what a client trusts.</summary>
    public X509Certificate2 Ca { get; }

    /// <summary>The intermediate that signs the leaves (with its key).</summary>
    public X509Certificate2 Intermediate { get; }

    /// <summary>A leaf for <paramref name="domain"/> signed by the intermediate: the PEM of the leaf then the intermediate (the chain), and the key as PKCS#8 PEM.</summary>
    public (string CrtPem, string KeyPem, X509Certificate2 Leaf) Issue(string domain, DateTimeOffset? notAfter = null)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={domain}", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName(domain);
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, false));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        var serial = RandomNumberGenerator.GetBytes(12);
        serial[0] &= 0x7f;
        using var leaf = request.Create(Intermediate, DateTimeOffset.UtcNow.AddMinutes(-5), notAfter ?? DateTimeOffset.UtcNow.AddDays(90), serial);
        var crt = leaf.ExportCertificatePem() + "\n" + Intermediate.ExportCertificatePem() + "\n";
        var keyPem = key.ExportPkcs8PrivateKeyPem() + "\n";
        return (crt, keyPem, X509CertificateLoader.LoadCertificate(leaf.RawData));
    }

    /// <summary>Issues a certificate for <paramref name="domain"/> and writes DOMAIN.key then DOMAIN.crt into <paramref name="folder"/>, each atomically.</summary>
    public X509Certificate2 WritePair(string folder, string domain, DateTimeOffset? notAfter = null)
    {
        var (crt, key, leaf) = Issue(domain, notAfter);
        Directory.CreateDirectory(folder);
        WriteAtomically(Path.Combine(folder, domain + ".key"), key);
        WriteAtomically(Path.Combine(folder, domain + ".crt"), crt);
        return leaf;
    }

    public static void WriteAtomically(string path, string text)
    {
        var temp = Path.Combine(Path.GetDirectoryName(path)!, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.tmp");
        File.WriteAllText(temp, text);
        File.Move(temp, path, overwrite: true);
    }

    /// <summary>Whether <paramref name="certificate"/> chains to this CA (and only this CA is trusted).</summary>
    public bool Trusts(X509Certificate2 certificate)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(Ca);
        chain.ChainPolicy.ExtraStore.Add(Intermediate);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(certificate);
    }

    public void Dispose()
    {
        Intermediate.Dispose();
        Ca.Dispose();
        intermediateKey.Dispose();
        caKey.Dispose();
    }
}
