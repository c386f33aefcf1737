using System.CommandLine;
using System.CommandLine.Help;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Skiff.Api;
using Skiff.Cli;
using Skiff.Yaml;
using Skiff.Tests.Resources;

namespace Skiff.Tests.Packaging;

/// <summary>The docs under docs/ against the code they describe.</summary>
public sealed partial class DocsTests
{
    private static string Docs(string file) => File.ReadAllText(Path.Combine(RepoPaths.Root, "docs", file));

    /// <summary>The text from a "## heading" line to the next "## " heading.</summary>
    private static string Section(string markdown, string heading)
    {
        var start = markdown.IndexOf("\n" + heading + "\n", StringComparison.Ordinal);
        Assert.True(start >= 0, $"no section \"{heading}\"");
        var end = markdown.IndexOf("\n## ", start + heading.Length + 1, StringComparison.Ordinal);
        return end < 0 ? markdown[start..] : markdown[start..end];
    }

    [Fact]
    public void Configuration_documents_every_run_flag_with_its_default_and_no_other()
    {
        var root = SkiffCommandLine.Build();
        var run = root.Subcommands.Single(c => c.Name == "run");
        var options = run.Options.Concat(root.Options.Where(o => o.Recursive))
            .Where(o => o is not HelpOption and not VersionOption)
            .ToDictionary(o => o.Name, StringComparer.Ordinal);

        var rows = Section(Docs("CONFIGURATION.md"), "## `skiff run`").Split('\n')
            .Select(line => FlagRow().Match(line))
            .Where(m => m.Success)
            .ToDictionary(m => m.Groups[1].Value, m => m.Groups[2].Value, StringComparer.Ordinal);

        Assert.Equal(options.Keys.Order(StringComparer.Ordinal), rows.Keys.Order(StringComparer.Ordinal));

        // Defaults that do not depend on the environment must be the code's.
        string[] environmentDependent = ["--node", "--docker-host", "--state-dir", "--proxy-image"];
        foreach (var (name, option) in options)
        {
            if (!option.HasDefaultValue || environmentDependent.Contains(name))
            {
                continue;
            }

            var value = option.GetDefaultValue();
            var text = value switch
            {
                bool b => b ? "on" : "off",
                Enum e => e.ToString().ToLowerInvariant(),
                _ => Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture) ?? "",
            };
            Assert.True(rows[name].Contains(value is bool ? text : $"`{text}`", StringComparison.Ordinal),
                $"docs/CONFIGURATION.md gives {name} the default \"{rows[name].Trim()}\"; the code says {text}");
        }
    }

    [Theory]
    [InlineData(AppDeployment.KindName, "## AppDeployment")]
    [InlineData(ImageGCPolicy.KindName, "## ImageGCPolicy")]
    public void Configuration_documents_every_field_of_the_CRDs_and_no_other(string kind, string heading)
    {
        var schema = CommittedSchemas.OpenApiSchema(kind)!;
        var fields = new SortedSet<string>(StringComparer.Ordinal);
        Walk(schema, "", fields);
        Assert.Contains("spec", fields);

        var section = Section(Docs("CONFIGURATION.md"), heading);
        var documented = FieldRow().Matches(section).Select(m => m.Groups[1].Value).ToHashSet(StringComparer.Ordinal);
        Assert.Empty(fields.Except(documented));
        Assert.Empty(documented.Except(fields));
    }

    private static void Walk(JsonNode node, string path, ISet<string> fields)
    {
        if (node["properties"] is JsonObject properties)
        {
            foreach (var (name, child) in properties)
            {
                if (path.Length == 0 && name is "apiVersion" or "kind" or "metadata")
                {
                    continue;
                }

                var childPath = path.Length == 0 ? name : $"{path}.{name}";
                fields.Add(childPath);
                Walk(child!, childPath, fields);
            }
        }

        if (node["items"] is JsonObject items)
        {
            Walk(items, path + "[]", fields);
        }
    }

    [Fact]
    public void Troubleshooting_explains_every_reason_the_operator_sets()
    {
        var doc = Docs("TROUBLESHOOTING.md");
        var headings = Regex.Matches(doc, @"^### (\w+)$", RegexOptions.Multiline).Select(m => m.Groups[1].Value).ToHashSet(StringComparer.Ordinal);

        // The ones users meet most get a section of their own.
        foreach (var reason in new[]
                 {
                     "InvalidSpec", "SecretNotFound", "ImageNotFound", "MigrationFailed", "HealthCheckFailed", "ContainerExited",
                     "ProgressDeadlineExceeded", "DatabaseVersionMismatch", "OwnedByAnotherSource", "VolumeNotFound", "RuntimeNotSupported",
                     "EngineUnreachable", "DiskPressure",
                 })
        {
            Assert.Contains(reason, headings);
        }

        // Every reason the code writes into a condition or an Event (one class holds them all) is at least explained.
        var reasons = typeof(Skiff.Reconcile.Reasons).GetFields(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Static)
            .Where(f => f.IsLiteral)
            .Select(f => (string)f.GetRawConstantValue()!)
            .Except(Skiff.Reconcile.Reasons.Internal)
            .ToList();
        Assert.Contains("CrashLooping", reasons);
        Assert.Contains("Pulling", reasons);
        foreach (var reason in reasons)
        {
            Assert.True(Regex.IsMatch(doc, $@"(\*\*|`|### ){reason}\b"), $"docs/TROUBLESHOOTING.md does not explain the reason {reason}");
        }

        // No reason is written as a bare string beside the class (it would escape the check above).
        foreach (Match m in Regex.Matches(AllSource(), @"(?:events\.Record\([^,]+, EventKind\.\w+|Conditions\.(?:Set|Summarize)\([^,]+, [^,]+, [^,]+), ""(\w+)"""))
        {
            Assert.Fail($"a reason written as a string, not from Reasons: {m.Value}");
        }

        // The Events image GC records on ImageGCPolicies too, PolicyConflict among them.
        var policyEvents = Regex.Matches(AllSource(), @"RecordEventAsync\([^,]+, [^,]+, ""\w+"", ""(\w+)""|\(""(?:Warning|Normal)"", ""(\w+)""\)")
            .Select(m => m.Groups[1].Success ? m.Groups[1].Value : m.Groups[2].Value)
            .ToHashSet(StringComparer.Ordinal);
        Assert.Contains("PolicyConflict", policyEvents);
        Assert.Contains("ImageGCFailed", policyEvents);
        var events = Section(doc, "## Events");
        foreach (var reason in policyEvents)
        {
            Assert.True(events.Contains($"| `{reason}` |", StringComparison.Ordinal),
                $"docs/TROUBLESHOOTING.md does not list the ImageGCPolicy Event {reason} in its Events tables");
        }
    }

    [Fact]
    public void Observability_documents_every_metric_the_operator_exports_and_no_other()
    {
        var exported = ChartTests.ExportedMetrics();
        Assert.Contains("skiff_image_pull_duration_seconds", exported);

        var documented = MetricRow().Matches(Section(Docs("OBSERVABILITY.md"), "## Metrics"))
            .Select(m => m.Groups[1].Value)
            .ToHashSet(StringComparer.Ordinal);

        Assert.Empty(exported.Except(documented));
        Assert.Empty(documented.Except(exported));
    }

    private static string AllSource() =>
        string.Join('\n', new[] { "Reconcile", "Sources" }
            .SelectMany(d => Directory.GetFiles(Path.Combine(RepoPaths.Root, "operator", d), "*.cs", SearchOption.AllDirectories))
            .Select(File.ReadAllText));

    [Fact]
    public void Readme_points_at_every_doc()
    {
        var readme = File.ReadAllText(Path.Combine(RepoPaths.Root, "README.md"));
        foreach (var doc in Directory.GetFiles(Path.Combine(RepoPaths.Root, "docs"), "*.md").Select(Path.GetFileName))
        {
            Assert.Contains($"(docs/{doc})", readme, StringComparison.Ordinal);
        }

        Assert.Contains("(charts/skiff/README.md)", readme, StringComparison.Ordinal);
    }

    [GeneratedRegex(@"^\| `(--[a-z-]+)` \| ([^|]*) \|")]
    private static partial Regex FlagRow();

    [GeneratedRegex(@"^\| `((?:spec|status)[A-Za-z.\[\]]*)` \|", RegexOptions.Multiline)]
    private static partial Regex FieldRow();

    [GeneratedRegex(@"^\| `([a-z_]+)` \| (?:counter|gauge|histogram) \|", RegexOptions.Multiline)]
    private static partial Regex MetricRow();

}
