using k8s;
using k8s.Exceptions;
using Skiff.Runtime;

namespace Skiff.Tests.Runtime;

/// <summary>
/// Skiff reads kubeconfig files itself (KubernetesClient's reader cannot run in a NativeAOT build). What it builds
/// must be what KubernetesClient builds from the same file, and it finds files where kubectl does.
/// </summary>
public sealed class KubeConfigFileTests : IDisposable
{
    private readonly string folder = Directory.CreateTempSubdirectory("skiff-kubeconfig-").FullName;

    public void Dispose() => Directory.Delete(folder, recursive: true);

    private string Write(string name, string yaml)
    {
        var path = Path.Combine(folder, name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, yaml);
        return path;
    }

    private const string TwoContexts = """
        apiVersion: v1
        kind: Config
        current-context: dev
        clusters:
        - name: prod
          cluster:
            server: https://10.0.0.1:6443
            insecure-skip-tls-verify: true
        - name: dev
          cluster: {server: "http://127.0.0.1:8001", tls-server-name: api.dev}
        users:
        - name: admin
          user:
            token: abc.def
            as: someone
            as-groups: [ops, dev]
        - name: basic
          user: {username: me, password: "s3cret"}
        contexts:
        - name: prod
          context: {cluster: prod, user: admin, namespace: apps}
        - name: dev
          context: {cluster: dev, user: basic}
        """;

    [Theory]
    [InlineData(null)]
    [InlineData("prod")]
    [InlineData("dev")]
    public void A_file_gives_what_KubernetesClients_own_reader_gives(string? context)
    {
        var path = Write("config", TwoContexts);

        var mine = KubeConfigFile.Build(path, context);
        var theirs = KubernetesClientConfiguration.BuildConfigFromConfigFile(path, context);

        Assert.Equal(theirs.Host, mine.Host);
        Assert.Equal(theirs.Namespace, mine.Namespace);
        Assert.Equal(theirs.AccessToken, mine.AccessToken);
        Assert.Equal(theirs.Username, mine.Username);
        Assert.Equal(theirs.Password, mine.Password);
        Assert.Equal(theirs.SkipTlsVerify, mine.SkipTlsVerify);
        Assert.Equal(theirs.TlsServerName, mine.TlsServerName);
        Assert.Equal(theirs.CurrentContext, mine.CurrentContext);
        Assert.Equal(context ?? "dev", mine.CurrentContext);
    }

    [Fact]
    public void Paths_in_the_file_are_relative_to_its_folder_and_inline_data_is_kept()
    {
        var path = Write("nested/config", """
            clusters:
            - name: c
              cluster: {server: "https://k3s:6443", certificate-authority: certs/ca.crt}
            users:
            - name: u
              user: {client-certificate: /abs/client.crt, client-key: key.pem, client-key-data: a2V5}
            contexts:
            - name: x
              context: {cluster: c, user: u}
            current-context: x
            """);

        var config = KubeConfigFile.Read(path);

        Assert.Equal(Path.Combine(folder, "nested", "certs", "ca.crt"), Assert.Single(config.Clusters).ClusterEndpoint.CertificateAuthority);
        var user = Assert.Single(config.Users).UserCredentials;
        Assert.Equal("/abs/client.crt", user.ClientCertificate);
        Assert.Equal(Path.Combine(folder, "nested", "key.pem"), user.ClientKey);
        Assert.Equal("a2V5", user.ClientKeyData);
        Assert.Equal(Path.Combine(folder, "nested", "config"), config.FileName);
    }

    [Fact]
    public void KUBECONFIG_files_are_merged_the_first_to_name_a_context_keeps_it_and_missing_ones_are_skipped()
    {
        var first = Write("a", """
            clusters:
            - name: shared
              cluster: {server: "https://first:6443"}
            users:
            - name: u
              user: {token: first-token}
            contexts:
            - name: shared
              context: {cluster: shared, user: u, namespace: one}
            """);
        var second = Write("b", """
            current-context: shared
            clusters:
            - name: shared
              cluster: {server: "https://second:6443"}
            - name: other
              cluster: {server: "https://other:6443"}
            users:
            - name: u
              user: {token: second-token}
            contexts:
            - name: shared
              context: {cluster: other, user: u, namespace: two}
            - name: other
              context: {cluster: other, user: u}
            """);
        var variable = string.Join(Path.PathSeparator, first, Path.Combine(folder, "missing"), second);

        var merged = KubeConfigFile.Build(null, null, inClusterFirst: false, variable, Path.Combine(folder, "none"));
        Assert.Equal("https://first:6443/", new Uri(merged.Host).ToString());
        Assert.Equal("one", merged.Namespace);
        Assert.Equal("first-token", merged.AccessToken);

        var other = KubeConfigFile.Build(null, "other", inClusterFirst: false, variable, Path.Combine(folder, "none"));
        Assert.Equal("https://other:6443/", new Uri(other.Host).ToString());

        // Without the variable, the default file.
        var fallback = KubeConfigFile.Build(null, null, inClusterFirst: false, null, second);
        Assert.Equal("two", fallback.Namespace);
    }

    [Fact]
    public void A_missing_or_broken_file_and_an_unknown_context_are_KubeConfigExceptions_naming_what_is_wrong()
    {
        var missing = Path.Combine(folder, "nope");
        Assert.Contains(missing, Assert.Throws<KubeConfigException>(() => KubeConfigFile.Build(missing, null)).Message);

        var broken = Write("broken", "clusters: [\n");
        Assert.Contains("not valid YAML", Assert.Throws<KubeConfigException>(() => KubeConfigFile.Build(broken, null)).Message);

        var scalar = Write("scalar", "clusters: 3\n");
        Assert.Contains("clusters: want a list", Assert.Throws<KubeConfigException>(() => KubeConfigFile.Build(scalar, null)).Message);

        var path = Write("config", TwoContexts);
        Assert.Contains("staging", Assert.Throws<KubeConfigException>(() => KubeConfigFile.Build(path, "staging")).Message);
    }
}
