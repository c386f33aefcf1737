using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Skiff.Tests.Architecture;

/// <summary>
/// Finds which of the operator's folders a C# file uses, from its syntax (Roslyn's parser, no compilation):
/// <c>using Skiff.X;</c>, <c>using A = Skiff.X.T;</c>, <c>using static Skiff.X.T;</c>, <c>Skiff.X.T</c> and
/// <c>global::Skiff.X.T</c> in code, and <c>X.T</c> inside a <c>Skiff.*</c> namespace, where C# finds the
/// sibling namespace <c>Skiff.X</c> by that short name. Comments, doc comments and strings are not code and
/// do not count; interpolation holes do.
/// </summary>
/// <remarks>
/// # Caveats
/// A short <c>X.T</c> means the folder unless the file declares something named X (a property, parameter,
/// local or type), which C# would find first. A member named like a folder and declared in another file
/// (inherited) is still taken for the folder: write <c>this.X</c> there.
/// </remarks>
internal static class FolderArrows
{
    /// <summary>One reference from a file of folder <paramref name="From"/> to folder <paramref name="To"/>.</summary>
    public sealed record Reference(string From, string To, string File, int Line)
    {
        /// <summary>How <see cref="ArrowTests.PendingHostingMove"/> names it.</summary>
        public string Key => $"{File}:{Line} -> {To}";
    }

    /// <summary>The top folder of a path relative to <c>operator/</c> (<c>Sources/Directory/X.cs</c> → Sources).</summary>
    public static string FolderOf(string file) => file.Split('/')[0];

    /// <summary>Every reference of <paramref name="file"/> (relative to <c>operator/</c>) to another of <paramref name="folders"/>.</summary>
    public static IReadOnlyList<Reference> Scan(string file, string text, IReadOnlySet<string> folders)
    {
        var root = CSharpSyntaxTree.ParseText(text, new CSharpParseOptions(LanguageVersion.Preview), file).GetCompilationUnitRoot();
        var from = FolderOf(file);
        // Identifiers that declare something (not uses): their tokens hang off declarations, not off names.
        var declared = root.DescendantTokens()
            .Where(t => t.IsKind(SyntaxKind.IdentifierToken) && t.Parent is not SimpleNameSyntax)
            .Select(t => t.ValueText)
            .ToHashSet(StringComparer.Ordinal);

        var found = new List<Reference>();
        foreach (var name in root.DescendantNodes().OfType<IdentifierNameSyntax>())
        {
            if (name.Ancestors().Any(a => a is BaseNamespaceDeclarationSyntax ns && ns.Name.Span.Contains(name.Span)))
            {
                continue; // the namespace a file declares is not a reference
            }

            var word = name.Identifier.ValueText;
            string? to = null;
            if (word == "Skiff")
            {
                SyntaxNode head = name.Parent is AliasQualifiedNameSyntax { Alias.Identifier.ValueText: "global" } global && global.Name == name ? global : name;
                to = Next(head);
            }
            else if (folders.Contains(word) && Next(name) is not null && !declared.Contains(word) && InSkiffNamespace(name))
            {
                to = word;
            }

            if (to is not null && to != from && folders.Contains(to))
            {
                found.Add(new Reference(from, to, file, name.GetLocation().GetLineSpan().StartLinePosition.Line + 1));
            }
        }

        return [.. found.Distinct()];
    }

    /// <summary>
    /// References that no allowed arrow covers, as <c>FILE:LINE: FROM → TO</c>, except those <paramref name="pending"/>
    /// tolerates; and each pending entry that matches no reference (it must be removed).
    /// </summary>
    public static IReadOnlyList<string> Forbidden(IEnumerable<Reference> references, IReadOnlyDictionary<string, string[]> allowed, IReadOnlySet<string> pending)
    {
        var all = references.ToList();
        var problems = all
            .Where(r => !(allowed.TryGetValue(r.From, out var to) && to.Contains(r.To)) && !pending.Contains(r.Key))
            .Select(r => $"{r.File}:{r.Line}: {r.From} → {r.To}")
            .ToList();
        var keys = all.Select(r => r.Key).ToHashSet(StringComparer.Ordinal);
        problems.AddRange(pending.Where(p => !keys.Contains(p)).Order(StringComparer.Ordinal)
            .Select(p => $"{nameof(ArrowTests.PendingHostingMove)} lists {p}, which no longer exists: remove the entry"));
        return problems;
    }

    /// <summary>
    /// Each set of folders that depend on each other in a circle (a strongly connected component of the folder
    /// graph), with every reference between them: <c>A, B: A → B at FILE:LINE; B → A at FILE:LINE</c>.
    /// </summary>
    public static IReadOnlyList<string> Cycles(IEnumerable<Reference> references)
    {
        var edges = references.Where(r => r.From != r.To).GroupBy(r => (r.From, r.To)).ToDictionary(g => g.Key, g => g.ToList());
        var graph = edges.Keys.GroupBy(e => e.From).ToDictionary(g => g.Key, g => g.Select(e => e.To).Distinct().Order(StringComparer.Ordinal).ToList());
        var nodes = edges.Keys.SelectMany(e => new[] { e.From, e.To }).Distinct().Order(StringComparer.Ordinal).ToList();

        var cycles = new List<string>();
        foreach (var component in StronglyConnected(nodes, graph).Where(c => c.Count > 1))
        {
            var members = component.ToHashSet(StringComparer.Ordinal);
            var inside = edges.Where(e => members.Contains(e.Key.From) && members.Contains(e.Key.To))
                .OrderBy(e => e.Key.From, StringComparer.Ordinal).ThenBy(e => e.Key.To, StringComparer.Ordinal)
                .Select(e => $"{e.Key.From} → {e.Key.To} at {string.Join(", ", e.Value.Select(r => $"{r.File}:{r.Line}"))}");
            cycles.Add($"{string.Join(", ", component.Order(StringComparer.Ordinal))}: {string.Join("; ", inside)}");
        }

        return cycles;
    }

    /// <summary>
    /// Namespace declarations of <paramref name="file"/> that are not <c>Skiff.&lt;its folder&gt;</c> or below it,
    /// as <c>FILE:LINE: namespace N, expected Skiff.F</c>.
    /// </summary>
    public static IReadOnlyList<string> MisplacedNamespaces(string file, string text)
    {
        var root = CSharpSyntaxTree.ParseText(text, new CSharpParseOptions(LanguageVersion.Preview), file).GetCompilationUnitRoot();
        var expected = "Skiff." + FolderOf(file);
        return [.. root.DescendantNodes().OfType<BaseNamespaceDeclarationSyntax>()
            .Where(ns => ns.Parent is CompilationUnitSyntax)
            .Select(ns => (Name: ns.Name.ToString(), Line: ns.GetLocation().GetLineSpan().StartLinePosition.Line + 1))
            .Where(ns => ns.Name != expected && !ns.Name.StartsWith(expected + ".", StringComparison.Ordinal))
            .Select(ns => $"{file}:{ns.Line}: namespace {ns.Name}, expected {expected}")];
    }

    /// <summary>The name after <paramref name="head"/> in <c>head.Name</c>, or null when head is not followed by one.</summary>
    private static string? Next(SyntaxNode head) => head.Parent switch
    {
        QualifiedNameSyntax q when q.Left == head => q.Right.Identifier.ValueText,
        MemberAccessExpressionSyntax m when m.Expression == head => m.Name.Identifier.ValueText,
        _ => null,
    };

    /// <summary>Inside <c>namespace Skiff…</c>, where the short name of a sibling namespace resolves (not in the usings above it).</summary>
    private static bool InSkiffNamespace(SyntaxNode node) =>
        node.Ancestors().OfType<BaseNamespaceDeclarationSyntax>().Any(ns => ns.Name.ToString() == "Skiff" || ns.Name.ToString().StartsWith("Skiff.", StringComparison.Ordinal));

    /// <summary>Tarjan's algorithm: the strongly connected components of a directed graph.</summary>
    private static List<List<string>> StronglyConnected(List<string> nodes, Dictionary<string, List<string>> graph)
    {
        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        var low = new Dictionary<string, int>(StringComparer.Ordinal);
        var stack = new Stack<string>();
        var onStack = new HashSet<string>(StringComparer.Ordinal);
        var components = new List<List<string>>();

        void Visit(string v)
        {
            index[v] = low[v] = index.Count;
            stack.Push(v);
            onStack.Add(v);
            foreach (var w in graph.GetValueOrDefault(v) ?? [])
            {
                if (!index.ContainsKey(w))
                {
                    Visit(w);
                    low[v] = Math.Min(low[v], low[w]);
                }
                else if (onStack.Contains(w))
                {
                    low[v] = Math.Min(low[v], index[w]);
                }
            }

            if (low[v] == index[v])
            {
                var component = new List<string>();
                string w;
                do
                {
                    w = stack.Pop();
                    onStack.Remove(w);
                    component.Add(w);
                }
                while (w != v);
                components.Add(component);
            }
        }

        foreach (var v in nodes.Where(v => !index.ContainsKey(v)))
        {
            Visit(v);
        }

        return components;
    }
}
