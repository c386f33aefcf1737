using Skiff.Api;
using Skiff.Hosting;
using Skiff.IntegrationTests.KubernetesSource;
using Skiff.IntegrationTests.Proxy;
using Skiff.Sources.Kubernetes;

namespace Skiff.IntegrationTests.Acme;

/// <summary>
/// <c>spec.app.ports[].tlsSecret</c> with the Kubernetes source: Secrets made by the real kubectl (as the docs tell users)
/// in the test API server, read through the operator's <see cref="KubernetesSecretSource"/>, type and all.
/// </summary>
public sealed class TlsSecretKubernetesTests
{
    [Fact]
    public async Task A_kubectl_created_tls_Secret_is_usable_and_a_generic_one_is_refused_for_its_type()
    {
        await using var h = await KubeHarness.StartAsync();
        using var ca = new TestCertificates();
        var (crt, key, leaf) = ca.Issue("api.example.com");
        var crtFile = Path.Combine(h.Workspace.Root, "tls.crt");
        var keyFile = Path.Combine(h.Workspace.Root, "tls.key");
        Directory.CreateDirectory(h.Workspace.Root);
        await File.WriteAllTextAsync(crtFile, crt);
        await File.WriteAllTextAsync(keyFile, key);
        foreach (var args in new[]
        {
            new[] { "create", "secret", "tls", "api-tls", $"--cert={crtFile}", $"--key={keyFile}" },
            ["create", "secret", "generic", "api-generic", $"--from-file=tls.crt={crtFile}", $"--from-file=tls.key={keyFile}"],
        })
        {
            var made = await h.KubectlAsync(args);
            Assert.True(made.ExitCode == 0, $"kubectl {string.Join(' ', args)}: {made.Stdout}{made.Stderr}");
        }

        var source = new KubernetesSecretSource(h.Client);
        Assert.Equal("kubernetes.io/tls", await source.GetSecretTypeAsync(h.Namespace, "api-tls", CancellationToken.None));
        Assert.Null(await source.GetSecretTypeAsync(h.Namespace, "missing", CancellationToken.None));

        var good = Assert.Single(await TlsSecrets.ResolveAsync(h.Namespace, Spec("api-tls"), source, DateTimeOffset.UtcNow, CancellationToken.None));
        Assert.True(good.Usable, good.Problem);
        Assert.StartsWith(leaf.ExportCertificatePem(), good.CertificatePem, StringComparison.Ordinal);

        var generic = Assert.Single(await TlsSecrets.ResolveAsync(h.Namespace, Spec("api-generic"), source, DateTimeOffset.UtcNow, CancellationToken.None));
        Assert.False(generic.Usable);
        const string Expected = "spec.app.ports[0].tlsSecret: Secret \"api-generic\" is of type Opaque, not kubernetes.io/tls; create it again as one (kubectl create secret tls api-generic";
        Assert.True(generic.Problem!.StartsWith(Expected, StringComparison.Ordinal), generic.Problem);
    }

    private static AppDeploymentSpec Spec(string secret) =>
        new() { App = new AppSpec { Ports = [new PortSpec { Name = "http", ContainerPort = 8080, Domains = ["api.example.com"], TlsSecret = secret }] } };
}
