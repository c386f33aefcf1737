using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Skiff.Acme;

namespace Skiff.Tests.Acme;

public sealed class CertificatesTests
{
    [Fact]
    public void SigningRequest_names_the_domain_in_CN_and_subjectAltName_and_is_signed_by_the_key()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);

        var der = Certificates.SigningRequest("api.example.com", key);

        // LoadSigningRequest checks the request's signature unless told not to.
        var request = CertificateRequest.LoadSigningRequest(der, HashAlgorithmName.SHA256, CertificateRequestLoadOptions.UnsafeLoadCertificateExtensions);
        Assert.Equal("CN=api.example.com", request.SubjectName.Name);
        Assert.Equal(key.ExportSubjectPublicKeyInfo(), request.PublicKey.ExportSubjectPublicKeyInfo());
        var san = Assert.IsType<X509SubjectAlternativeNameExtension>(Assert.Single(request.CertificateExtensions, e => e.Oid!.Value == "2.5.29.17"), exactMatch: false);
        Assert.Equal(["api.example.com"], san.EnumerateDnsNames());

        // Tampered with, it no longer verifies.
        der[^5] ^= 0x55;
        Assert.ThrowsAny<CryptographicException>(() => CertificateRequest.LoadSigningRequest(der, HashAlgorithmName.SHA256));
    }

    [Fact]
    public void CheckedLeaf_accepts_the_chain_of_the_requests_key_and_domain_and_refuses_others()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var other = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var pem = SelfSigned(key, "api.example.com", DateTimeOffset.UtcNow.AddDays(90));

        using var leaf = Certificates.CheckedLeaf(pem, "api.example.com", key);
        Assert.True(leaf.MatchesHostname("api.example.com"));

        Assert.Contains("not for the key", Assert.Throws<AcmeException>(() => Certificates.CheckedLeaf(pem, "api.example.com", other)).Message);
        Assert.Contains("does not name www.example.com", Assert.Throws<AcmeException>(() => Certificates.CheckedLeaf(pem, "www.example.com", key)).Message);
        Assert.Contains("no PEM certificate", Assert.Throws<AcmeException>(() => Certificates.CheckedLeaf("<html>oops</html>", "api.example.com", key)).Message);
    }

    [Fact]
    public void ReadPair_needs_the_certificate_and_its_own_key()
    {
        var dir = Directory.CreateTempSubdirectory("skiff-certs-").FullName;
        try
        {
            using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            using var other = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var crt = Path.Combine(dir, "a.crt");
            var keyFile = Path.Combine(dir, "a.key");
            File.WriteAllText(crt, SelfSigned(key, "a.example.com", DateTimeOffset.UtcNow.AddDays(1)));

            Assert.Null(Certificates.ReadPair(crt, keyFile));
            File.WriteAllText(keyFile, other.ExportPkcs8PrivateKeyPem());
            Assert.Null(Certificates.ReadPair(crt, keyFile));
            File.WriteAllText(keyFile, key.ExportPkcs8PrivateKeyPem());
            using var pair = Certificates.ReadPair(crt, keyFile);
            Assert.NotNull(pair);
            Assert.True(pair.HasPrivateKey);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    internal static string SelfSigned(ECDsa key, string domain, DateTimeOffset notAfter)
    {
        var request = new CertificateRequest("CN=" + domain, key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName(domain);
        request.CertificateExtensions.Add(names.Build());
        using var certificate = request.CreateSelfSigned(notAfter.AddDays(-90), notAfter);
        return certificate.ExportCertificatePem();
    }

    [Fact]
    public void SigningRequest_is_DER()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var reader = new AsnReader(Certificates.SigningRequest("a.example.com", key), AsnEncodingRules.DER);
        Assert.Equal(Asn1Tag.Sequence, reader.PeekTag());
        reader.ReadSequence();
        Assert.False(reader.HasData);
    }
}
