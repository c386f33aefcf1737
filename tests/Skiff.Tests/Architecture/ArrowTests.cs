using System.Text.RegularExpressions;
using Skiff.Tests.Resources;
using Skiff.Hosting;

namespace Skiff.Tests.Architecture;

/// <summary>
/// The arrows between the operator's folders (README.md, "Repository layout"): every reference from one
/// folder's code to another folder's namespace follows an allowed arrow, and no folders depend on each other
/// in a circle. A folder is a namespace: <c>operator/Reconcile/</c> is <c>Skiff.Reconcile</c>.
/// </summary>
public sealed partial class ArrowTests
{
    /// <summary>Each folder and the folders its code may use; README.md's layout section lists the same.</summary>
    internal static readonly IReadOnlyDictionary<string, string[]> Allowed = new Dictionary<string, string[]>
    {
        ["Api"] = [],
        ["Runtime"] = [],
        ["Proxy"] = [],
        ["Validation"] = ["Api", "Proxy"],
        ["Crds"] = ["Api", "Validation"],
        ["Yaml"] = ["Api", "Validation", "Crds"],
        ["Observability"] = ["Api", "Runtime"],
        ["State"] = ["Api", "Observability"],
        ["Reconcile"] = ["Api", "Validation", "Runtime", "Observability"],
        ["ImageGC"] = ["Api", "Validation", "Observability", "State", "Reconcile"],
        ["Docker"] = ["Api", "Validation", "Observability", "Reconcile", "ImageGC"],
        ["Sources"] = ["Api", "Validation", "Yaml", "Runtime", "Observability", "State", "Reconcile", "ImageGC"],
        ["Backup"] = ["Api", "Validation", "Runtime", "Observability", "State", "Reconcile"],
        ["Acme"] = ["State"],
        ["KubeRender"] = ["Api", "Validation", "Reconcile"],
        ["KubeRuntime"] = ["Api", "Runtime", "Reconcile", "KubeRender"],
        ["Hosting"] = ["Api", "Validation", "Crds", "Yaml", "Runtime", "Observability", "State", "Reconcile", "ImageGC", "Docker", "Sources", "Proxy", "Backup", "Acme", "KubeRender", "KubeRuntime"],
        ["Cli"] = ["Api", "Validation", "Crds", "Yaml", "Runtime", "Observability", "State", "Reconcile", "ImageGC", "Docker", "Sources", "Proxy", "Hosting", "Backup", "Acme", "KubeRender", "KubeRuntime"],
    };

    /// <summary>
    /// References tolerated while code moves between folders (<c>FILE:LINE -> Folder</c>); an entry that no longer matches
    /// a reference fails the test, so the list can only shrink. Empty since the start-up wiring left Sources for Hosting.
    /// </summary>
    internal static readonly IReadOnlySet<string> PendingHostingMove = new HashSet<string>(StringComparer.Ordinal);

    private static readonly Lazy<IReadOnlyList<FolderArrows.Reference>> Operator = new(ScanOperator);

    [Fact]
    public void Every_reference_between_folders_follows_an_allowed_arrow()
    {
        var problems = FolderArrows.Forbidden(Operator.Value, Allowed, PendingHostingMove);
        Assert.True(problems.Count == 0, "Arrows that README.md's layout does not allow (move the code, or invert the " +
            "dependency with an interface the lower folder owns):\n" + string.Join("\n", problems));
    }

    [Fact]
    public void The_folders_form_no_cycle()
    {
        var cycles = FolderArrows.Cycles(Operator.Value.Where(r => !PendingHostingMove.Contains(r.Key)));
        Assert.True(cycles.Count == 0, "Folders that depend on each other:\n" + string.Join("\n", cycles));
    }

    [Fact]
    public void Every_folder_has_its_arrows_and_its_namespace()
    {
        var operatorDir = Path.Combine(RepoPaths.Root, "operator");
        var unknown = System.IO.Directory.GetDirectories(operatorDir)
            .Select(Path.GetFileName)
            .Where(d => d is not ("bin" or "obj") && System.IO.Directory.EnumerateFiles(Path.Combine(operatorDir, d!), "*.cs", SearchOption.AllDirectories).Any())
            .Where(d => !Allowed.ContainsKey(d!))
            .ToList();
        Assert.True(unknown.Count == 0, $"operator/{string.Join(", operator/", unknown)}: add the folder's arrows to README.md's layout section and to {nameof(ArrowTests)}.{nameof(Allowed)}");

        var misplaced = OperatorFiles().SelectMany(f => FolderArrows.MisplacedNamespaces(f.Path, f.Text)).ToList();
        Assert.True(misplaced.Count == 0, "A file's namespace must be Skiff.<its folder>, which the arrows rely on:\n" + string.Join("\n", misplaced));
    }

    [Fact]
    public void The_allowed_arrows_form_no_cycle()
    {
        var arrows = Allowed.SelectMany(a => a.Value.Select(to => new FolderArrows.Reference(a.Key, to, "(allowed list)", 0)));
        Assert.Empty(FolderArrows.Cycles(arrows));
        Assert.All(Allowed.Values.SelectMany(v => v), to => Assert.Contains(to, Allowed.Keys));
    }

    [Fact]
    public void The_readme_lists_the_same_arrows()
    {
        var readme = File.ReadAllText(Path.Combine(RepoPaths.Root, "README.md"));
        var layout = readme[readme.IndexOf("## Repository layout", StringComparison.Ordinal)..];
        layout = layout[..(layout.IndexOf("\n## ", 3, StringComparison.Ordinal) is var end and > 0 ? end : layout.Length)];
        var listed = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        foreach (Match m in ReadmeArrow().Matches(layout))
        {
            var from = m.Groups["from"].Value;
            var others = Allowed.Keys.Where(k => k != from);
            var to = m.Groups["to"].Value.Trim();
            listed[from] = to switch
            {
                "(nothing of ours)" => [],
                "every folder" => [.. others],
                _ when to.StartsWith("every folder but ", StringComparison.Ordinal) => [.. others.Except(to["every folder but ".Length..].Split(", "))],
                _ => [.. to.Split(", ")],
            };
        }

        Assert.Equal(Allowed.Keys.Order(StringComparer.Ordinal), listed.Keys.Order(StringComparer.Ordinal));
        Assert.All(Allowed, a => Assert.True(listed[a.Key].SetEquals(a.Value),
            $"README.md: {a.Key} → {string.Join(", ", listed[a.Key].Order(StringComparer.Ordinal))}; the test allows {string.Join(", ", a.Value.Order(StringComparer.Ordinal))}"));
    }

    // The checks on small examples: a check that cannot fail proves nothing.

    [Fact]
    public void A_cycle_between_folders_is_reported_with_each_file_and_line()
    {
        var refs = FolderArrows.Scan("Crds/Generator.cs", """
            using Skiff.Api;

            namespace Skiff.Crds;

            public static class Generator
            {
                public static object Read(string text) => Yaml.Reader.Read(text);
            }
            """, Folders).Concat(FolderArrows.Scan("Yaml/Loader.cs", """
            using Skiff.Crds;

            namespace Skiff.Yaml;

            public static class Loader
            {
            }
            """, Folders)).ToList();

        var cycle = Assert.Single(FolderArrows.Cycles(refs));
        Assert.Contains("Crds, Yaml", cycle);
        Assert.Contains("Crds → Yaml at Crds/Generator.cs:7", cycle);
        Assert.Contains("Yaml → Crds at Yaml/Loader.cs:1", cycle);
        Assert.DoesNotContain("Api", cycle);

        var forbidden = FolderArrows.Forbidden(refs, Allowed, new HashSet<string>());
        Assert.Equal(["Crds/Generator.cs:7: Crds → Yaml"], forbidden);
    }

    [Fact]
    public void Usings_aliases_global_and_partly_qualified_names_count_and_comments_and_strings_do_not()
    {
        var refs = FolderArrows.Scan("Observability/Example.cs", """
            using Docker.DotNet;
            using Skiff.Api;
            using Lease = Skiff.Reconcile.ImageEngineLock.UseLease;
            using static Skiff.Validation.ImageReference;

            // using Skiff.Cli; and Skiff.Sources.Thing in a comment
            namespace Skiff.Observability;

            /// <summary>See <see cref="Skiff.Yaml.YamlReader"/> and <see cref="Hosting.Host"/>.</summary>
            public sealed class Example(int State)
            {
                private readonly string text = "Skiff.Sources.X and Docker.DockerEngine";
                private global::Skiff.Docker.DockerEngine? engine;
                private readonly object store = new State.StateStore("x"); // State is a parameter here: not the folder
                private readonly string hole = $"{Runtime.Telemetry.Name}";
                public object Raw => global::Docker.DotNet.Models.Message.Empty;
                /* Skiff.Cli.ExitCodes.Ok */
                public int Code => Cli.ExitCodes.Ok + State;
            }
            """, Folders);

        Assert.Equal(
            ["Api:2", "Cli:18", "Docker:13", "Reconcile:3", "Runtime:15", "Validation:4"],
            refs.Select(r => $"{r.To}:{r.Line}").Order(StringComparer.Ordinal));
        Assert.All(refs, r => Assert.Equal("Observability", r.From));
        Assert.Equal(
            ["Observability/Example.cs:13: Observability → Docker", "Observability/Example.cs:18: Observability → Cli",
                "Observability/Example.cs:3: Observability → Reconcile", "Observability/Example.cs:4: Observability → Validation"],
            FolderArrows.Forbidden(refs, Allowed, new HashSet<string>()).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void A_pending_entry_tolerates_its_reference_and_a_stale_one_fails()
    {
        var refs = FolderArrows.Scan("Sources/Runner.cs", "using Skiff.Cli;\n\nnamespace Skiff.Sources;\n", Folders);
        Assert.Empty(FolderArrows.Forbidden(refs, Allowed, new HashSet<string> { "Sources/Runner.cs:1 -> Cli" }));
        Assert.Equal(
            ["PendingHostingMove lists Sources/Gone.cs:3 -> Cli, which no longer exists: remove the entry"],
            FolderArrows.Forbidden(refs, Allowed, new HashSet<string> { "Sources/Runner.cs:1 -> Cli", "Sources/Gone.cs:3 -> Cli" }));
    }

    [Fact]
    public void A_namespace_that_is_not_the_folders_is_reported()
    {
        Assert.Equal(
            ["Reconcile/Lock.cs:3: namespace Skiff.ImageGC, expected Skiff.Reconcile"],
            FolderArrows.MisplacedNamespaces("Reconcile/Lock.cs", "using Skiff.Api;\n\nnamespace Skiff.ImageGC;\n"));
        Assert.Empty(FolderArrows.MisplacedNamespaces("Sources/Directory/Runner.cs", "namespace Skiff.Sources.Directory;\n"));
    }

    private static IReadOnlySet<string> Folders { get; } = Allowed.Keys.ToHashSet(StringComparer.Ordinal);

    private static IEnumerable<(string Path, string Text)> OperatorFiles()
    {
        var operatorDir = Path.Combine(RepoPaths.Root, "operator");
        foreach (var file in System.IO.Directory.EnumerateFiles(operatorDir, "*.cs", SearchOption.AllDirectories))
        {
            var relative = Path.GetRelativePath(operatorDir, file).Replace('\\', '/');
            var top = relative.Split('/')[0];
            // Program.cs, the entry point, may use every folder, and no folder can use it (it declares no namespace).
            if (top is "bin" or "obj" || !relative.Contains('/'))
            {
                continue;
            }

            yield return (relative, File.ReadAllText(file));
        }
    }

    private static IReadOnlyList<FolderArrows.Reference> ScanOperator() =>
        [.. OperatorFiles().SelectMany(f => FolderArrows.Scan(f.Path, f.Text, Folders))];

    [GeneratedRegex(@"^\s*(?<from>[A-Za-z]+)\s+→\s+(?<to>.+?)\s*$", RegexOptions.Multiline)]
    private static partial Regex ReadmeArrow();
}
