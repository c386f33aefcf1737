using System.Collections;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Skiff.Api;
using Skiff.Crds;

namespace Skiff.Tests.Resources;

/// <summary>
/// A resource read from a folder must behave exactly like one the API server defaulted: <see cref="Defaults.Apply(AppDeploymentSpec)"/>
/// fills what the CRD schema (the committed crds/*.yaml, embedded in the operator) declares, and only the few
/// defaults the schema cannot state besides.
/// </summary>
public class DefaultsTests
{
    private static readonly JsonSerializerOptions Json = new() { DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };

    /// <summary>
    /// What Apply fills that the schema does not declare, each for a reason: the API server defaults a field only inside an
    /// object that is present, so the objects that hold defaults are created; the images are the operator's choice
    /// (documented in the field descriptions), and the lists are read without null checks.
    /// </summary>
    private static readonly Dictionary<string, Dictionary<string, JsonNode>> OperatorOnly = new()
    {
        [AppDeployment.KindName] = new()
        {
            ["spec.database.image"] = Defaults.PostgresImage,
            ["spec.cache.image"] = Defaults.RedisImage,
        },
        [ImageGCPolicy.KindName] = new()
        {
            ["spec.nodes"] = new JsonArray(),
            ["spec.keep"] = new JsonArray(),
        },
    };

    public static TheoryData<string> Kinds => new(AppDeployment.KindName, ImageGCPolicy.KindName);

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Every_default_Apply_sets_is_the_schema_default_and_every_schema_default_is_applied(string kind)
    {
        var schema = SchemaDefaults(Skiff.Yaml.CommittedSchemas.OpenApiSchema(kind)!["properties"]!["spec"]!.AsObject(), "spec");
        Assert.NotEmpty(schema);
        var applied = Applied(kind);
        var operatorOnly = OperatorOnly[kind];

        var problems = new List<string>();
        foreach (var (path, value) in schema)
        {
            if (!applied.TryGetValue(path, out var got))
            {
                problems.Add($"{path}: the schema defaults it to {value.ToJsonString()}, Defaults.Apply leaves it unset");
            }
            else if (!JsonNode.DeepEquals(value, got))
            {
                problems.Add($"{path}: the schema defaults it to {value.ToJsonString()}, Defaults.Apply to {got.ToJsonString()}");
            }
        }

        foreach (var (path, value) in applied)
        {
            if (schema.ContainsKey(path))
            {
                continue;
            }

            if (!operatorOnly.TryGetValue(path, out var expected))
            {
                problems.Add($"{path}: Defaults.Apply sets it to {value.ToJsonString()}, the schema declares no default");
            }
            else if (!JsonNode.DeepEquals(expected, value))
            {
                problems.Add($"{path}: Defaults.Apply sets it to {value.ToJsonString()}, expected {expected.ToJsonString()}");
            }
        }

        foreach (var path in operatorOnly.Keys.Where(p => !applied.ContainsKey(p)))
        {
            problems.Add($"{path}: listed as an operator-only default, but Defaults.Apply leaves it unset");
        }

        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    /// <summary>
    /// The defaulted form of a spec with every optional object present, pinned: the spec hash is computed over it, so a change
    /// here restarts every app after an upgrade (see SpecHashTests).
    /// </summary>
    [Fact]
    public void Apply_produces_exactly_the_defaulted_spec_the_hash_is_computed_over()
    {
        Assert.Equal(
            """{"runtime":"docker","app":{"image":"","build":{"context":".","dockerfile":"Dockerfile"},"imagePullPolicy":"IfNotPresent","healthCheck":{"http":{"path":"/","port":8080},"periodSeconds":5,"failureThreshold":3},"migrate":{"command":[],"timeoutSeconds":300},"resources":{}},"database":{"engine":"postgres","image":"postgres:16","name":"app","user":"app","storage":{"reclaimPolicy":"Retain"},"resources":{},"backup":{"schedule":""}},"cache":{"engine":"redis","image":"redis:7","persistence":"none","storage":{"reclaimPolicy":"Retain"},"resources":{}},"rollout":{"progressDeadlineSeconds":120,"minReadySeconds":5,"autoRollback":true,"revisionHistoryLimit":3}}""",
            JsonSerializer.Serialize(Defaults.Apply(Full<AppDeploymentSpec>(lists: false)), Json));
        Assert.Equal(
            """{"runtime":"docker","app":{"image":"x","imagePullPolicy":"IfNotPresent"},"rollout":{"progressDeadlineSeconds":120,"minReadySeconds":5,"autoRollback":true,"revisionHistoryLimit":3}}""",
            JsonSerializer.Serialize(Defaults.Apply(new AppDeploymentSpec { App = new AppSpec { Image = "x" } }), Json));
        Assert.Equal(
            """{"nodes":[],"highThresholdPercent":85,"lowThresholdPercent":80,"minimumAge":"1h","retainPerRepository":3,"keep":[],"pruneBuildCache":false,"interval":"10m","dryRun":false}""",
            JsonSerializer.Serialize(Defaults.Apply(new ImageGCPolicySpec()), Json));
    }

    [Fact]
    public void Apply_keeps_what_is_set_and_does_not_change_its_input()
    {
        var spec = Full<AppDeploymentSpec>(lists: true);
        spec.Runtime = Runtimes.Kubernetes;
        spec.App.HealthCheck!.PeriodSeconds = 9;
        spec.Rollout!.AutoRollback = false;
        spec.Database!.Storage = new StorageSpec { ReclaimPolicy = ReclaimPolicies.Delete };
        var before = JsonSerializer.Serialize(spec, Json);

        var applied = Defaults.Apply(spec);

        Assert.Equal(before, JsonSerializer.Serialize(spec, Json));
        Assert.Equal(Runtimes.Kubernetes, applied.Runtime);
        Assert.Equal(9, applied.App.HealthCheck!.PeriodSeconds);
        Assert.False(applied.Rollout!.AutoRollback);
        Assert.Equal(ReclaimPolicies.Delete, applied.Database!.Storage!.ReclaimPolicy);
        Assert.Equal(Defaults.FailureThreshold, applied.App.HealthCheck.FailureThreshold);
    }

    [Fact]
    public void The_threshold_rule_assumes_the_declared_defaults()
    {
        // CEL sees the object before defaulting when a threshold is absent, so the rule spells the defaults out.
        var rule = typeof(ImageGCPolicySpec).GetCustomAttributes<CelRuleAttribute>().Single(r => r.Twin == CelTwins.LowBelowHigh).Rule;
        Assert.Contains($"self.lowThresholdPercent : {Defaults.LowThresholdPercent})", rule, StringComparison.Ordinal);
        Assert.Contains($"self.highThresholdPercent : {Defaults.HighThresholdPercent})", rule, StringComparison.Ordinal);
    }

    /// <summary>The fields Apply filled in a spec with every optional object present, by field path.</summary>
    private static Dictionary<string, JsonNode> Applied(string kind)
    {
        var (input, output) = kind switch
        {
            AppDeployment.KindName => Serialize(Full<AppDeploymentSpec>(lists: true), Defaults.Apply),
            ImageGCPolicy.KindName => Serialize(Full<ImageGCPolicySpec>(lists: true), Defaults.Apply),
            _ => throw new ArgumentOutOfRangeException(nameof(kind)),
        };
        var before = Leaves(input, "spec");
        return Leaves(output, "spec")
            .Where(e => !before.TryGetValue(e.Key, out var was) || !JsonNode.DeepEquals(was, e.Value))
            .ToDictionary();

        static (JsonNode, JsonNode) Serialize<T>(T spec, Func<T, T> apply) =>
            (JsonSerializer.SerializeToNode(spec, Json)!, JsonSerializer.SerializeToNode(apply(spec), Json)!);
    }

    /// <summary>A spec whose every optional object is present and empty (with one item in each list of objects when <paramref name="lists"/>), so each nested default has a place to land.</summary>
    private static T Full<T>(bool lists) where T : new()
    {
        var spec = (T)Fill(new T(), lists);
        if (spec is AppDeploymentSpec app)
        {
            // A port the JSON round trip can read back (an IntOrString holds one or the other).
            app.App.HealthCheck!.Http.Port = 8080;
        }

        return spec;
    }

    private static object Fill(object node, bool lists)
    {
        foreach (var property in node.GetType().GetProperties().Where(p => p.CanWrite))
        {
            var type = property.PropertyType;
            if (IsApiClass(type))
            {
                var child = property.GetValue(node) ?? Activator.CreateInstance(type)!;
                property.SetValue(node, Fill(child, lists));
            }
            else if (lists && type.IsGenericType && type.GetGenericTypeDefinition() == typeof(List<>) && IsApiClass(type.GetGenericArguments()[0]))
            {
                var list = (IList)Activator.CreateInstance(type)!;
                list.Add(Fill(Activator.CreateInstance(type.GetGenericArguments()[0])!, lists));
                property.SetValue(node, list);
            }
        }

        return node;
    }

    private static bool IsApiClass(Type type) => type.IsClass && type != typeof(string) && type.Namespace == typeof(AppDeploymentSpec).Namespace;

    /// <summary>Every <c>default</c> in the schema, by field path (list items as <c>path[]</c>).</summary>
    private static Dictionary<string, JsonNode> SchemaDefaults(JsonObject schema, string path)
    {
        var found = new Dictionary<string, JsonNode>();
        if (schema["default"] is { } value)
        {
            found[path] = value.DeepClone();
        }

        foreach (var (name, child) in schema["properties"] as JsonObject ?? [])
        {
            foreach (var entry in SchemaDefaults(child!.AsObject(), $"{path}.{name}"))
            {
                found.Add(entry.Key, entry.Value);
            }
        }

        if (schema["items"] is JsonObject items)
        {
            foreach (var entry in SchemaDefaults(items, path + "[]"))
            {
                found.Add(entry.Key, entry.Value);
            }
        }

        return found;
    }

    /// <summary>Every scalar and empty list, by field path.</summary>
    private static Dictionary<string, JsonNode> Leaves(JsonNode node, string path)
    {
        var found = new Dictionary<string, JsonNode>();
        switch (node)
        {
            case JsonObject o:
                foreach (var (name, child) in o)
                {
                    foreach (var entry in Leaves(child!, $"{path}.{name}"))
                    {
                        found[entry.Key] = entry.Value;
                    }
                }

                break;
            case JsonArray { Count: 0 } empty:
                found[path] = empty.DeepClone();
                break;
            case JsonArray a:
                foreach (var item in a)
                {
                    foreach (var entry in Leaves(item!, path + "[]"))
                    {
                        found[entry.Key] = entry.Value;
                    }
                }

                break;
            default:
                found[path] = node.DeepClone();
                break;
        }

        return found;
    }
}
