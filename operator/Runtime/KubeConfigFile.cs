using k8s;
using k8s.Exceptions;
using k8s.KubeConfigModels;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Skiff.Runtime;

/// <summary>
/// Reads kubeconfig files into KubernetesClient's own model and builds the client's configuration from it, where
/// kubectl finds them: <c>--kubeconfig</c>, else every file of <c>$KUBECONFIG</c> merged (the first to set a value
/// wins), else the pod's service account when running in a cluster, else <c>~/.kube/config</c>.
/// </summary>
/// <remarks>
/// Written here rather than calling <see cref="KubernetesClientConfiguration.BuildConfigFromConfigFile(string, string, string, bool)"/>:
/// that goes through <c>KubernetesYaml</c>, whose static constructor walks every model type of KubernetesClient by
/// reflection (a start-up cost of its own) and fails outright in a NativeAOT build ("no metadata token available").
/// The file is read with YamlDotNet's representation model instead, which needs neither. Paths in the file
/// (certificate-authority, client-certificate, client-key) are relative to the file's folder, as kubectl reads them.
/// </remarks>
public static class KubeConfigFile
{
    /// <summary>The client's configuration, from the first place that has one (see the class).</summary>
    /// <param name="path"><c>--kubeconfig</c>, or null.</param>
    /// <param name="context"><c>--context</c>, or null for the file's current-context.</param>
    /// <param name="inClusterFirst">Whether a pod's service account comes before <c>~/.kube/config</c> (it never comes before a named file or <c>$KUBECONFIG</c>).</param>
    /// <exception cref="KubeConfigException">No file, a malformed file, or a context, cluster or user that is not in it.</exception>
    public static KubernetesClientConfiguration Build(string? path, string? context, bool inClusterFirst = true) =>
        Build(path, context, inClusterFirst, Environment.GetEnvironmentVariable("KUBECONFIG"), KubernetesClientConfiguration.KubeConfigDefaultLocation);

    /// <summary><see cref="Build(string?, string?, bool)"/> with <c>$KUBECONFIG</c> and the default file given.</summary>
    internal static KubernetesClientConfiguration Build(string? path, string? context, bool inClusterFirst, string? kubeconfigVariable, string defaultFile)
    {
        if (path is not null)
        {
            return KubernetesClientConfiguration.BuildConfigFromConfigObject(Load([path]), context);
        }

        if (kubeconfigVariable is { Length: > 0 } list)
        {
            var files = list.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(f => f.Trim('"')).Where(File.Exists).ToArray();
            if (files.Length > 0)
            {
                return KubernetesClientConfiguration.BuildConfigFromConfigObject(Load(files), context);
            }
        }

        if (inClusterFirst && KubernetesClientConfiguration.IsInCluster())
        {
            return KubernetesClientConfiguration.InClusterConfig();
        }

        return KubernetesClientConfiguration.BuildConfigFromConfigObject(Load([defaultFile]), context);
    }

    /// <summary>Reads and merges kubeconfig files; the first file to name a cluster, user or context keeps it.</summary>
    /// <exception cref="KubeConfigException">A file is missing or malformed.</exception>
    public static K8SConfiguration Load(IReadOnlyList<string> paths)
    {
        K8SConfiguration? merged = null;
        foreach (var path in paths)
        {
            var config = Read(path);
            if (merged is null)
            {
                merged = config;
                continue;
            }

            merged.CurrentContext ??= config.CurrentContext;
            merged.Clusters = [.. merged.Clusters, .. config.Clusters.Where(c => merged.Clusters.All(m => m.Name != c.Name))];
            merged.Users = [.. merged.Users, .. config.Users.Where(u => merged.Users.All(m => m.Name != u.Name))];
            merged.Contexts = [.. merged.Contexts, .. config.Contexts.Where(c => merged.Contexts.All(m => m.Name != c.Name))];
        }

        return merged ?? throw new KubeConfigException("no kubeconfig file given");
    }

    /// <summary>One kubeconfig file, its relative paths made absolute.</summary>
    /// <exception cref="KubeConfigException">The file is missing or is not a kubeconfig.</exception>
    public static K8SConfiguration Read(string path)
    {
        var full = Path.GetFullPath(path);
        if (!File.Exists(full))
        {
            throw new KubeConfigException($"kubeconfig file not found at {full}");
        }

        YamlMappingNode root;
        try
        {
            var stream = new YamlStream();
            using (var reader = File.OpenText(full))
            {
                stream.Load(reader);
            }

            root = stream.Documents.Count == 0 ? new YamlMappingNode() : stream.Documents[0].RootNode as YamlMappingNode
                ?? throw new KubeConfigException($"{full}: not a kubeconfig (want a mapping with clusters, users and contexts)");
        }
        catch (YamlException e)
        {
            throw new KubeConfigException($"{full}: not valid YAML ({e.Start.Line}:{e.Start.Column}: {e.Message})");
        }

        var folder = Path.GetDirectoryName(full)!;
        string? Resolve(string? file) => string.IsNullOrEmpty(file) || Path.IsPathRooted(file) ? file : Path.Combine(folder, file);

        return new K8SConfiguration
        {
            FileName = full,
            ApiVersion = Text(root, "apiVersion"),
            Kind = Text(root, "kind"),
            CurrentContext = Text(root, "current-context") is { Length: > 0 } current ? current : null,
            Clusters = [.. Items(root, "clusters", full).Select(item => new Cluster
            {
                Name = Text(item, "name"),
                ClusterEndpoint = Map(item, "cluster") is { } c ? new ClusterEndpoint
                {
                    Server = Text(c, "server"),
                    CertificateAuthority = Resolve(Text(c, "certificate-authority")),
                    CertificateAuthorityData = Text(c, "certificate-authority-data"),
                    TlsServerName = Text(c, "tls-server-name"),
                    SkipTlsVerify = Flag(c, "insecure-skip-tls-verify"),
                } : null,
            })],
            Users = [.. Items(root, "users", full).Select(item => new User
            {
                Name = Text(item, "name"),
                UserCredentials = Map(item, "user") is { } u ? new UserCredentials
                {
                    ClientCertificate = Resolve(Text(u, "client-certificate")),
                    ClientCertificateData = Text(u, "client-certificate-data"),
                    ClientKey = Resolve(Text(u, "client-key")),
                    ClientKeyData = Text(u, "client-key-data"),
                    Token = Text(u, "token") ?? (Resolve(Text(u, "tokenFile")) is { } tokenFile && File.Exists(tokenFile) ? File.ReadAllText(tokenFile).Trim() : null),
                    UserName = Text(u, "username"),
                    Password = Text(u, "password"),
                    Impersonate = Text(u, "as"),
                    ImpersonateGroups = Texts(u, "as-groups"),
                    AuthProvider = Map(u, "auth-provider") is { } p ? new AuthProvider { Name = Text(p, "name"), Config = Strings(p, "config") } : null,
                    ExternalExecution = Map(u, "exec") is { } x ? new ExternalExecution
                    {
                        ApiVersion = Text(x, "apiVersion"),
                        Command = Text(x, "command"),
                        Arguments = Texts(x, "args"),
                        EnvironmentVariables = x.Children.TryGetValue(new YamlScalarNode("env"), out var env) && env is YamlSequenceNode vars
                            ? [.. vars.OfType<YamlMappingNode>().Select(v => new Dictionary<string, string> { ["name"] = Text(v, "name") ?? "", ["value"] = Text(v, "value") ?? "" })]
                            : null,
                        InstallHint = Text(x, "installHint"),
                        ProvideClusterInfo = Flag(x, "provideClusterInfo"),
                    } : null,
                } : null,
            })],
            Contexts = [.. Items(root, "contexts", full).Select(item => new Context
            {
                Name = Text(item, "name"),
                ContextDetails = Map(item, "context") is { } c ? new ContextDetails
                {
                    Cluster = Text(c, "cluster"),
                    User = Text(c, "user"),
                    Namespace = Text(c, "namespace"),
                } : null,
            })],
        };
    }

    private static YamlMappingNode? Map(YamlMappingNode node, string key) =>
        node.Children.TryGetValue(new YamlScalarNode(key), out var value) ? value as YamlMappingNode : null;

    private static string? Text(YamlMappingNode node, string key) =>
        node.Children.TryGetValue(new YamlScalarNode(key), out var value) && value is YamlScalarNode { Value: var text }
            && !(value is YamlScalarNode { Style: ScalarStyle.Plain } && text is "null" or "~" or "")
            ? text
            : null;

    private static bool Flag(YamlMappingNode node, string key) => Text(node, key) is { } text && bool.TryParse(text, out var flag) && flag;

    private static string[] Texts(YamlMappingNode node, string key) =>
        node.Children.TryGetValue(new YamlScalarNode(key), out var value) && value is YamlSequenceNode items
            ? [.. items.OfType<YamlScalarNode>().Select(i => i.Value ?? "")]
            : [];

    private static Dictionary<string, string> Strings(YamlMappingNode node, string key) =>
        Map(node, key) is { } map
            ? map.Children.Where(p => p.Key is YamlScalarNode && p.Value is YamlScalarNode)
                .ToDictionary(p => ((YamlScalarNode)p.Key).Value ?? "", p => ((YamlScalarNode)p.Value).Value ?? "")
            : [];

    private static IEnumerable<YamlMappingNode> Items(YamlMappingNode root, string key, string file)
    {
        if (!root.Children.TryGetValue(new YamlScalarNode(key), out var value) || value is YamlScalarNode { Value: null or "" or "null" })
        {
            return [];
        }

        return value is YamlSequenceNode items
            ? items.OfType<YamlMappingNode>()
            : throw new KubeConfigException($"{file}: {key}: want a list");
    }
}
