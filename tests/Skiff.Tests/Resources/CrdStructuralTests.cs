using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Skiff.Crds;
using Skiff.Yaml;

namespace Skiff.Tests.Resources;

/// <summary>
/// Kubernetes accepts only structural schemas, and CEL rules only within a cost budget. No API
/// server runs here, so these tests walk the generated schemas and check the rules it enforces.
/// </summary>
public partial class CrdStructuralTests
{
    public static TheoryData<string> Crds => new(CrdGenerator.All().Select(c => c.FileName));

    private static JsonObject Crd(string fileName) => CrdGenerator.All().Single(c => c.FileName == fileName).Crd;

    private static JsonObject Schema(string fileName) =>
        Crd(fileName)["spec"]!["versions"]![0]!["schema"]!["openAPIV3Schema"]!.AsObject();

    [Theory]
    [MemberData(nameof(Crds))]
    public void Every_schema_node_is_typed_and_structural(string fileName)
    {
        var problems = new List<string>();
        Walk(Schema(fileName), "", (path, node) =>
        {
            if (node.ContainsKey("$ref") || node.ContainsKey("$schema") || node.ContainsKey("anyOf") || node.ContainsKey("oneOf"))
            {
                problems.Add($"{path}: uses $ref, $schema, anyOf or oneOf");
            }

            var typed = node["type"] is JsonValue
                || node["x-kubernetes-int-or-string"] is not null
                || node["x-kubernetes-preserve-unknown-fields"] is not null;
            if (!typed)
            {
                problems.Add($"{path}: has no single type");
            }

            if ((string?)node["type"] == "array" && node["maxItems"] is null)
            {
                problems.Add($"{path}: array without maxItems (CEL cost cannot be bounded)");
            }

            if ((string?)node["type"] == "array" && node["items"] is not JsonObject)
            {
                problems.Add($"{path}: array without an items schema");
            }

            if ((string?)node["x-kubernetes-list-type"] == "map")
            {
                var required = (node["items"]?["required"] as JsonArray ?? []).Select(r => (string)r!).ToList();
                foreach (var key in (node["x-kubernetes-list-map-keys"] as JsonArray ?? []).Select(k => (string)k!))
                {
                    if (!required.Contains(key))
                    {
                        problems.Add($"{path}: list-map key {key} is not required");
                    }
                }
            }

            foreach (var req in (node["required"] as JsonArray ?? []).Select(r => (string)r!))
            {
                if (node["properties"]?[req] is null)
                {
                    problems.Add($"{path}: requires {req}, which is not a property");
                }
            }
        });
        Assert.Empty(problems);
    }

    [Theory]
    [MemberData(nameof(Crds))]
    public void Metadata_is_an_untyped_object_and_status_is_a_subresource(string fileName)
    {
        var schema = Schema(fileName);
        Assert.Equal("""{"type":"object"}""", schema["properties"]!["metadata"]!.ToJsonString());
        var version = Crd(fileName)["spec"]!["versions"]![0]!;
        Assert.NotNull(version["subresources"]?["status"]);
        Assert.True((bool)version["served"]!);
        Assert.True((bool)version["storage"]!);
    }

    [Theory]
    [MemberData(nameof(Crds))]
    public void Printer_columns_point_at_fields_that_exist(string fileName)
    {
        var schema = Schema(fileName);
        foreach (var column in Crd(fileName)["spec"]!["versions"]![0]!["additionalPrinterColumns"]!.AsArray())
        {
            var jsonPath = (string)column!["jsonPath"]!;
            if (jsonPath.StartsWith(".metadata.", StringComparison.Ordinal))
            {
                continue;
            }

            var node = schema;
            // A filter such as [?(@.type=="Ready")] selects list items; the field after it is the item's.
            foreach (var segment in JsonPathSegment().Matches(Filter().Replace(jsonPath, "")).Select(m => m.Groups[1].Value))
            {
                node = node["properties"]?[segment] as JsonObject ?? node["items"]?["properties"]?[segment] as JsonObject;
                Assert.True(node is not null, $"{column["name"]}: {jsonPath} names a field that does not exist");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Crds))]
    public void Cel_rules_reference_only_fields_that_exist(string fileName)
    {
        var problems = new List<string>();
        var count = 0;
        Walk(Schema(fileName), "", (path, node) =>
        {
            foreach (var validation in node["x-kubernetes-validations"] as JsonArray ?? [])
            {
                count++;
                var rule = (string)validation!["rule"]!;
                problems.AddRange(CheckRule(node, rule).Select(p => $"{path}: {rule}: {p}"));
                if (rule.Contains("oldSelf", StringComparison.Ordinal) && path.Contains("[]", StringComparison.Ordinal))
                {
                    problems.Add($"{path}: transition rule under a list item cannot be correlated");
                }

                Assert.False(string.IsNullOrWhiteSpace((string?)validation["message"]), $"{path}: rule without message");
            }
        });
        Assert.Empty(problems);
        Assert.True(count > 0);
    }

    [Fact]
    public void The_cel_field_checker_catches_a_misspelt_field()
    {
        var schema = CommittedSchemas.OpenApiSchema("ImageGCPolicy")!["properties"]!["spec"]!.AsObject();
        Assert.NotEmpty(CheckRule(schema, "self.lowThresholdPercnt < 5"));
        Assert.Empty(CheckRule(schema, "self.lowThresholdPercent < 5"));
    }

    [Fact]
    public void AppDeployment_crd_has_the_names_and_columns_of_the_design()
    {
        var crd = Crd(CrdGenerator.AppDeploymentsFile);
        Assert.Equal("appdeployments.skiff.dev", (string?)crd["metadata"]!["name"]);
        Assert.Equal("Namespaced", (string?)crd["spec"]!["scope"]);
        Assert.Equal("""["appdep"]""", crd["spec"]!["names"]!["shortNames"]!.ToJsonString());
        Assert.Equal("""["skiff"]""", crd["spec"]!["names"]!["categories"]!.ToJsonString());
        var columns = crd["spec"]!["versions"]![0]!["additionalPrinterColumns"]!.AsArray()
            .Select(c => $"{c!["name"]}:{c["type"]}:{c["jsonPath"]}").ToList();
        Assert.Equal(
            [
                "Node:string:.spec.node",
                "Ready:string:.status.conditions[?(@.type==\"Ready\")].status",
                "Phase:string:.status.phase",
                "Image:string:.status.image",
                "Revision:integer:.status.revision",
                "Age:date:.metadata.creationTimestamp",
            ],
            columns);
        Assert.Equal("Cluster", (string?)Crd(CrdGenerator.ImageGCPoliciesFile)["spec"]!["scope"]);
    }

    [Fact]
    public void Lists_keyed_by_type_name_and_node_are_list_maps()
    {
        var app = Schema(CrdGenerator.AppDeploymentsFile)["properties"]!["status"]!["properties"]!;
        Assert.Equal("""["type"]""", app["conditions"]!["x-kubernetes-list-map-keys"]!.ToJsonString());
        Assert.Equal("""["name"]""", app["components"]!["x-kubernetes-list-map-keys"]!.ToJsonString());
        var gc = Schema(CrdGenerator.ImageGCPoliciesFile)["properties"]!["status"]!["properties"]!;
        Assert.Equal("""["node"]""", gc["nodes"]!["x-kubernetes-list-map-keys"]!.ToJsonString());
    }

    /// <summary>The fields a rule reads (self.x.y, oldSelf.x, and lambda variables bound by all/exists/filter) must exist.</summary>
    private static List<string> CheckRule(JsonObject self, string rule)
    {
        var problems = new List<string>();
        var text = StringLiteral().Replace(rule, "''");
        var bound = new Dictionary<string, JsonObject> { ["self"] = self, ["oldSelf"] = self };
        foreach (Match m in Macro().Matches(text))
        {
            var list = Resolve(bound, m.Groups["base"].Value, problems);
            if (list?["items"] is JsonObject items)
            {
                bound[m.Groups["var"].Value] = items;
            }
        }

        foreach (Match m in Chain().Matches(text))
        {
            if (bound.ContainsKey(m.Groups["root"].Value))
            {
                Resolve(bound, m.Value, problems);
            }
        }

        return problems;
    }

    private static JsonObject? Resolve(Dictionary<string, JsonObject> bound, string chain, List<string> problems)
    {
        var parts = chain.Split('.');
        if (!bound.TryGetValue(parts[0], out var node))
        {
            return null;
        }

        foreach (var part in parts.Skip(1))
        {
            if (part is "all" or "exists" or "exists_one" or "filter" or "map" or "size")
            {
                return node;
            }

            if (node["properties"]?[part] is not JsonObject next)
            {
                problems.Add($"{chain}: no field {part}");
                return null;
            }

            node = next;
        }

        return node;
    }

    private static void Walk(JsonObject node, string path, Action<string, JsonObject> visit)
    {
        visit(path.Length == 0 ? "(root)" : path, node);
        foreach (var (name, child) in node["properties"] as JsonObject ?? [])
        {
            Walk(child!.AsObject(), path + "." + name, visit);
        }

        if (node["items"] is JsonObject items)
        {
            Walk(items, path + "[]", visit);
        }
    }

    [GeneratedRegex(@"'[^']*'")]
    private static partial Regex StringLiteral();

    [GeneratedRegex(@"(?<base>[A-Za-z_]\w*(?:\.\w+)*)\.(?:all|exists|exists_one|filter|map)\((?<var>\w+),")]
    private static partial Regex Macro();

    [GeneratedRegex(@"\b(?<root>[A-Za-z_]\w*)(?:\.\w+)+")]
    private static partial Regex Chain();

    [GeneratedRegex(@"\[[^\]]*\]")]
    private static partial Regex Filter();

    [GeneratedRegex(@"\.(\w+)")]
    private static partial Regex JsonPathSegment();
}
