using System.Diagnostics;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Skiff.Yaml;

namespace Skiff.Tests.Packaging;

/// <summary>
/// The real helm, the version CI installs (v3.17, scripts/install-deps.sh), run on a chart:
/// <c>helm template</c> read back into objects, <c>helm lint</c>. Linked into both test projects
/// (the RBAC test of the integration tests reads the chart's rules from here too).
/// </summary>
/// <remarks>
/// # Guarantees
/// Every object is what helm printed, parsed by YamlDotNet (the operator's YAML reader, YAML 1.2
/// core schema); nothing is rendered by the tests themselves.
///
/// # Caveats
/// No helm on PATH, or another version, fails the calling test with the fix (never a skip).
/// <c>helm template</c> leaves NOTES.txt out, and <c>helm install --dry-run</c> needs a cluster:
/// <see cref="Notes"/> renders NOTES.txt with helm's own engine (<c>tpl</c>, same values and
/// release) in a copy of the chart.
/// </remarks>
public static partial class Helm
{
    /// <summary>The helm minor version CI runs; another one fails the tests.</summary>
    public const string RequiredVersion = "v3.17.";

    private static readonly Lazy<string> Binary = new(Locate);

    /// <summary>Runs helm with <paramref name="args"/> to completion (bounded to 2 minutes).</summary>
    public static HelmRun Run(params string[] args)
    {
        var info = new ProcessStartInfo(Binary.Value, args) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        // Rendering and linting never talk to a cluster; keep a developer's kubeconfig out of it.
        info.Environment.Remove("KUBECONFIG");
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(2)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"helm {string.Join(' ', args)} did not finish within 2 minutes");
        }

        return new HelmRun(string.Join(' ', args), process.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>
    /// <c>helm template RELEASE CHART -n NAMESPACE [-f VALUES] [--include-crds]</c>, which must
    /// succeed, read back into objects.
    /// </summary>
    /// <param name="valuesYaml">Values merged over values.yaml, as with <c>helm install -f</c>.</param>
    public static RenderedChart Template(string chartDir, string release = "skiff", string releaseNamespace = "skiff-system", string? valuesYaml = null, bool includeCrds = false)
    {
        var output = WithValues(valuesYaml, values =>
        {
            var run = Run(["template", release, chartDir, "--namespace", releaseNamespace, .. values, .. (includeCrds ? new[] { "--include-crds" } : [])]);
            Assert.True(run.ExitCode == 0, run.ToString());
            return run.Stdout;
        });
        return Parse(output);
    }

    /// <summary><c>helm lint --strict CHART [-f VALUES]</c>; the caller asserts on the result.</summary>
    public static HelmRun Lint(string chartDir, string? valuesYaml = null) =>
        WithValues(valuesYaml, values => Run(["lint", "--strict", chartDir, .. values]));

    /// <summary>The chart's NOTES.txt as <c>helm install</c> would print it for this release and values.</summary>
    public static string Notes(string chartDir, string release = "skiff", string releaseNamespace = "skiff-system", string? valuesYaml = null)
    {
        // templates/ is not readable through .Files: the copy carries NOTES.txt beside the chart
        // and one template that renders it with tpl into a ConfigMap, which helm template prints.
        var copy = Directory.CreateTempSubdirectory("skiff-chart-notes-").FullName;
        try
        {
            CopyDirectory(chartDir, copy);
            File.Move(Path.Combine(copy, "templates", "NOTES.txt"), Path.Combine(copy, "notes-under-test.txt"));
            File.WriteAllText(Path.Combine(copy, "templates", "notes-under-test.yaml"), """
                apiVersion: v1
                kind: ConfigMap
                metadata:
                  name: notes-under-test
                data:
                  notes: {{ tpl (.Files.Get "notes-under-test.txt") . | toJson }}
                """);
            var notes = Template(copy, release, releaseNamespace, valuesYaml).Manifests.Single(m => m.Template == "templates/notes-under-test.yaml");
            return notes.Object["data"]!["notes"]!.GetValue<string>();
        }
        finally
        {
            Directory.Delete(copy, recursive: true);
        }
    }

    /// <summary>Splits helm's output at its <c>---\n# Source: CHART/PATH</c> headers and parses each document.</summary>
    internal static RenderedChart Parse(string output)
    {
        var headers = SourceHeader().Matches(output);
        Assert.True(headers.Count > 0, "helm printed no manifest:\n" + output);
        var files = new Dictionary<string, string>(StringComparer.Ordinal);
        var manifests = new List<RenderedManifest>();
        for (var i = 0; i < headers.Count; i++)
        {
            var end = i + 1 < headers.Count ? headers[i + 1].Index : output.Length;
            // helm writes each file's text followed by one newline of its own.
            var text = output[(headers[i].Index + headers[i].Length)..end];
            text = text.EndsWith('\n') ? text[..^1] : text;
            var path = headers[i].Groups["path"].Value;
            path = path[(path.IndexOf('/', StringComparison.Ordinal) + 1)..]; // "skiff/templates/x.yaml" → "templates/x.yaml"
            files[path] = files.TryGetValue(path, out var earlier) ? earlier + "\n---\n" + text : text;
            foreach (var document in YamlReader.Read(text))
            {
                Assert.True(document.Errors.Count == 0, $"{path} document {document.Index} does not parse: {string.Join("; ", document.Errors)}\n{text}");
                if (document.Empty)
                {
                    continue;
                }

                Assert.True(document.Root is JsonObject, $"{path} document {document.Index} is not a mapping\n{text}");
                manifests.Add(new RenderedManifest(path, (JsonObject)document.Root!, text));
            }
        }

        return new RenderedChart(files, manifests);
    }

    private static T WithValues<T>(string? valuesYaml, Func<string[], T> run)
    {
        if (valuesYaml is null)
        {
            return run([]);
        }

        var file = Path.Combine(Path.GetTempPath(), $"skiff-values-{Guid.NewGuid():N}.yaml");
        File.WriteAllText(file, valuesYaml);
        try
        {
            return run(["--values", file]);
        }
        finally
        {
            File.Delete(file);
        }
    }

    private static void CopyDirectory(string from, string to)
    {
        foreach (var dir in Directory.GetDirectories(from, "*", SearchOption.AllDirectories))
        {
            Directory.CreateDirectory(Path.Combine(to, Path.GetRelativePath(from, dir)));
        }

        foreach (var file in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
        {
            File.Copy(file, Path.Combine(to, Path.GetRelativePath(from, file)));
        }
    }

    private static string Locate()
    {
        const string Fix = "run scripts/install-deps.sh as root (it installs helm v3.17 to /usr/local/bin/helm)";
        var path = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, "helm"))
            .FirstOrDefault(File.Exists);
        Assert.True(path is not null, $"helm is not installed (not on PATH): the chart tests need the real helm; {Fix}");

        var info = new ProcessStartInfo(path, ["version", "--short"]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        using var process = Process.Start(info)!;
        var version = process.StandardOutput.ReadToEnd().Trim();
        process.WaitForExit();
        Assert.True(version.StartsWith(RequiredVersion, StringComparison.Ordinal), $"{path} is helm {version}, the chart tests need {RequiredVersion}x (what CI runs); {Fix}");
        return path;
    }

    [GeneratedRegex(@"^---\n# Source: (?<path>[^\n]+)\n", RegexOptions.Multiline)]
    private static partial Regex SourceHeader();
}

/// <summary>One helm command's exit code and output.</summary>
public sealed record HelmRun(string Command, int ExitCode, string Stdout, string Stderr)
{
    public override string ToString() => $"helm {Command} exited with {ExitCode}:\n{Stdout}{Stderr}";
}

/// <summary>One object of the rendered chart.</summary>
/// <param name="Template">The chart file it came from (templates/… or crds/…).</param>
/// <param name="Object">The object, as JSON.</param>
/// <param name="Text">The text helm printed for the file it came from.</param>
public sealed record RenderedManifest(string Template, JsonObject Object, string Text)
{
    public string Kind => Object["kind"]?.GetValue<string>() ?? "";

    public string Name => Object["metadata"]?["name"]?.GetValue<string>() ?? "";

    public string? Namespace => Object["metadata"]?["namespace"]?.GetValue<string>();

    public override string ToString() => $"{Kind}/{Name} ({Template})";
}

/// <summary>What <see cref="Helm.Template"/> printed.</summary>
/// <param name="Files">The text helm printed for each chart file, by path (templates/…, crds/…).</param>
/// <param name="Manifests">Every object, in helm's order.</param>
public sealed record RenderedChart(IReadOnlyDictionary<string, string> Files, IReadOnlyList<RenderedManifest> Manifests)
{
    public IEnumerable<RenderedManifest> OfKind(string kind) => Manifests.Where(m => m.Kind == kind);

    public RenderedManifest Single(string kind) => Manifests.Single(m => m.Kind == kind);

    /// <summary>The RBAC rules of the chart's ClusterRoles and Roles.</summary>
    public IReadOnlyList<RbacRule> RbacRules =>
        Manifests.Where(m => m.Kind is "ClusterRole" or "Role")
            .SelectMany(m => (m.Object["rules"] as JsonArray ?? []).Select((rule, i) => new RbacRule(
                $"{m.Kind}/{m.Name} rule {i + 1}",
                m.Kind == "Role" ? m.Namespace : null,
                Strings(rule?["apiGroups"]),
                Strings(rule?["resources"]),
                Strings(rule?["verbs"]),
                Strings(rule?["resourceNames"]),
                Strings(rule?["nonResourceURLs"]))))
            .ToList();

    private static IReadOnlyList<string> Strings(JsonNode? node) =>
        node is JsonArray a ? a.Select(x => x!.GetValue<string>()).ToList() : [];
}

/// <summary>One rule of a ClusterRole (<see cref="Namespace"/> null) or a Role.</summary>
public sealed record RbacRule(
    string Source,
    string? Namespace,
    IReadOnlyList<string> ApiGroups,
    IReadOnlyList<string> Resources,
    IReadOnlyList<string> Verbs,
    IReadOnlyList<string> ResourceNames,
    IReadOnlyList<string> NonResourceUrls)
{
    /// <summary>
    /// Whether the rule allows a request, as the RBAC authorizer decides: group, resource (with
    /// "/subresource") and verb must be listed; a Role's rule applies only in its namespace, and a
    /// request across all namespaces (<paramref name="ns"/> null) needs a ClusterRole.
    /// </summary>
    public bool Allows(string apiGroup, string resource, string verb, string? ns) =>
        ApiGroups.Contains(apiGroup) && Resources.Contains(resource) && Verbs.Contains(verb)
        && ResourceNames.Count == 0
        && (Namespace is null || Namespace == ns);

    public override string ToString() =>
        $"{Source}: groups [{string.Join(", ", ApiGroups)}] resources [{string.Join(", ", Resources)}] verbs [{string.Join(", ", Verbs)}]"
        + (Namespace is null ? "" : $" in {Namespace}");
}
