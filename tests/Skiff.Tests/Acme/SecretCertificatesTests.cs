using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Skiff.Acme;
using Skiff.Api;
using Skiff.IntegrationTests.Proxy;
using Skiff.Reconcile;
using Skiff.Tests.Reconcile;

namespace Skiff.Tests.Acme;

/// <summary>Certificates from <c>spec.app.ports[].tlsSecret</c>: what is served, and every way a Secret can be wrong.</summary>
public sealed class SecretCertificatesTests : IDisposable
{
    private const string Domain = "api.example.com";
    private static readonly DateTimeOffset Now = DateTimeOffset.UtcNow;
    private readonly TestCertificates ca = new();
    private readonly TypedSecrets secrets = new();

    public void Dispose() => ca.Dispose();

    [Fact]
    public async Task A_valid_Secret_gives_the_leaf_first_and_the_key_as_PKCS8_for_every_domain_of_the_port()
    {
        // One certificate for both names: the chain given root-side first, the key as PKCS#8 already.
        using var both = Both(Domain, "www.example.com", out var bothKey);
        var chainFirst = ca.Intermediate.ExportCertificatePem() + "\n" + both.ExportCertificatePem() + "\n";
        secrets.Add("api-tls", chainFirst, bothKey);

        var found = await Resolve(Port([Domain, "www.example.com"], "api-tls"));

        Assert.Equal([Domain, "www.example.com"], found.Select(f => f.Domain));
        Assert.All(found, f => Assert.True(f.Usable, f.Problem));
        var first = found[0];
        Assert.Equal(("spec.app.ports[0].tlsSecret", "api-tls"), (first.Field, first.Secret));
        var written = new X509Certificate2Collection();
        written.ImportFromPem(first.CertificatePem!);
        Assert.Equal([both.Thumbprint, ca.Intermediate.Thumbprint], written.Select(c => c.Thumbprint));
        Assert.StartsWith("-----BEGIN PRIVATE KEY-----", first.KeyPem, StringComparison.Ordinal);
        using var pair = X509Certificate2.CreateFromPem(first.CertificatePem, first.KeyPem);
        Assert.True(pair.HasPrivateKey);
        Assert.Equal(new DateTimeOffset(both.NotAfter.ToUniversalTime(), TimeSpan.Zero), first.Expiry);
    }

    [Fact]
    public async Task An_RSA_PKCS1_key_and_a_wildcard_certificate_are_accepted()
    {
        using var rsa = RSA.Create(2048);
        var request = new CertificateRequest("CN=wildcard", rsa, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName("*.example.com");
        request.CertificateExtensions.Add(san.Build());
        using var certificate = request.CreateSelfSigned(Now.AddDays(-1), Now.AddDays(30));
        secrets.Add("wild", certificate.ExportCertificatePem(), rsa.ExportRSAPrivateKeyPem());

        var found = Assert.Single(await Resolve(Port([Domain], "wild")));

        Assert.True(found.Usable, found.Problem);
        Assert.StartsWith("-----BEGIN PRIVATE KEY-----", found.KeyPem, StringComparison.Ordinal);
    }

    public static TheoryData<string, string> Problems => new()
    {
        { "missing", "spec.app.ports[0].tlsSecret: Secret \"api-tls\" not found in namespace \"prod\"; create it (kubectl create secret tls api-tls --cert=FILE --key=FILE -n prod, or a Secret document of type kubernetes.io/tls in the folder); Skiff retries by itself" },
        { "opaque", "spec.app.ports[0].tlsSecret: Secret \"api-tls\" is of type Opaque, not kubernetes.io/tls; create it again as one (kubectl create secret tls api-tls --cert=FILE --key=FILE -n prod, or a Secret document of type kubernetes.io/tls in the folder)" },
        { "no-key", "spec.app.ports[0].tlsSecret: Secret \"api-tls\" has no key \"tls.key\"; a kubernetes.io/tls Secret holds tls.crt and tls.key (kubectl create secret tls api-tls --cert=FILE --key=FILE -n prod, or a Secret document of type kubernetes.io/tls in the folder)" },
        { "bad-crt", "spec.app.ports[0].tlsSecret: Secret \"api-tls\": tls.crt holds no PEM certificate (-----BEGIN CERTIFICATE-----); put the PEM certificate (leaf first, then its chain) in tls.crt and its unencrypted private key in tls.key" },
        { "bad-key", "spec.app.ports[0].tlsSecret: Secret \"api-tls\": tls.key holds no unencrypted RSA or EC private key in PEM (-----BEGIN PRIVATE KEY-----); put the PEM certificate (leaf first, then its chain) in tls.crt and its unencrypted private key in tls.key" },
        { "other-key", "spec.app.ports[0].tlsSecret: Secret \"api-tls\": tls.key is not the private key of any certificate in tls.crt; put the PEM certificate (leaf first, then its chain) in tls.crt and its unencrypted private key in tls.key" },
        { "other-name", "spec.app.ports[0].tlsSecret: Secret \"api-tls\": its certificate (for shop.example.com) does not cover api.example.com; issue one whose subjectAltName names api.example.com, or move api.example.com to a port of its own" },
        { "expired", "spec.app.ports[0].tlsSecret: Secret \"api-tls\": its certificate expired at " },
    };

    [Theory]
    [MemberData(nameof(Problems))]
    public async Task A_wrong_Secret_is_a_problem_that_names_the_field_and_the_fix_and_holds_no_value(string wrong, string expected)
    {
        var (crt, key, _) = ca.Issue(Domain);
        switch (wrong)
        {
            case "opaque":
                secrets.Add("api-tls", crt, key, "Opaque");
                break;
            case "no-key":
                secrets.Add("api-tls", crt, null);
                break;
            case "bad-crt":
                secrets.Add("api-tls", "not a certificate", key);
                break;
            case "bad-key":
                secrets.Add("api-tls", crt, "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n");
                break;
            case "other-key":
                secrets.Add("api-tls", crt, ca.Issue(Domain).KeyPem);
                break;
            case "other-name":
                var shop = ca.Issue("shop.example.com");
                secrets.Add("api-tls", shop.CrtPem, shop.KeyPem);
                break;
            case "expired":
                var old = ca.Issue(Domain, Now.AddMinutes(-1));
                secrets.Add("api-tls", old.CrtPem, old.KeyPem);
                break;
        }

        var found = Assert.Single(await Resolve(Port([Domain], "api-tls")));

        Assert.False(found.Usable);
        Assert.StartsWith(expected, found.Problem, StringComparison.Ordinal);
        Assert.Null(found.CertificatePem);
        Assert.DoesNotContain("BEGIN", found.Problem!.Replace("(-----BEGIN CERTIFICATE-----)", "", StringComparison.Ordinal).Replace("(-----BEGIN PRIVATE KEY-----)", "", StringComparison.Ordinal), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Ports_without_tlsSecret_or_with_tls_false_are_left_to_ACME_and_HTTP()
    {
        var spec = new AppDeploymentSpec
        {
            App = new AppSpec
            {
                Ports =
                [
                    new PortSpec { ContainerPort = 80, Domains = ["acme.example.com"] },
                    new PortSpec { ContainerPort = 81, Domains = ["plain.example.com"], Tls = false, TlsSecret = "api-tls" },
                ],
            },
        };

        Assert.Empty(await Skiff.Hosting.TlsSecrets.ResolveAsync("prod", spec, secrets, Now, CancellationToken.None));
    }

    private static AppDeploymentSpec Port(List<string> domains, string secret) =>
        new() { App = new AppSpec { Ports = [new PortSpec { Name = "http", ContainerPort = 3000, Domains = domains, TlsSecret = secret }] } };

    private Task<IReadOnlyList<SecretCertificate>> Resolve(AppDeploymentSpec spec) =>
        Skiff.Hosting.TlsSecrets.ResolveAsync("prod", spec, secrets, Now, CancellationToken.None);

    private X509Certificate2 Both(string a, string b, out string keyPem)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={a}", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName(a);
        san.AddDnsName(b);
        request.CertificateExtensions.Add(san.Build());
        keyPem = key.ExportPkcs8PrivateKeyPem();
        return request.Create(ca.Intermediate, Now.AddMinutes(-5), Now.AddDays(60), [9, 8, 7]);
    }

    /// <summary>Secrets with a type, in memory (as a Kubernetes or folder source gives them).</summary>
    public sealed class TypedSecrets : ISecretSource
    {
        private readonly RolloutMachineTests.Secrets data = new();
        private readonly Dictionary<string, (string Type, Dictionary<string, byte[]> Data)> secrets = new(StringComparer.Ordinal);

        public void Add(string name, string? crt, string? key, string type = SecretCertificates.SecretType, string ns = "prod")
        {
            var values = new Dictionary<string, byte[]>(StringComparer.Ordinal);
            if (crt is not null)
            {
                values["tls.crt"] = Encoding.UTF8.GetBytes(crt);
            }

            if (key is not null)
            {
                values["tls.key"] = Encoding.UTF8.GetBytes(key);
            }

            secrets[$"{ns}/{name}"] = (type, values);
        }

        public Task<IReadOnlyDictionary<string, byte[]>?> GetSecretAsync(string @namespace, string name, CancellationToken ct) =>
            Task.FromResult<IReadOnlyDictionary<string, byte[]>?>(secrets.TryGetValue($"{@namespace}/{name}", out var s) ? s.Data : null);

        public Task<string?> GetSecretTypeAsync(string @namespace, string name, CancellationToken ct) =>
            Task.FromResult(secrets.TryGetValue($"{@namespace}/{name}", out var s) ? s.Type : null);

        public Task<DatabaseCredentials> EnsureDatabaseCredentialsAsync(StackNames names, string database, string user, CancellationToken ct) =>
            data.EnsureDatabaseCredentialsAsync(names, database, user, ct);

        public Task DeleteDatabaseCredentialsAsync(StackNames names, CancellationToken ct) => Task.CompletedTask;
    }
}
