using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Schema;
using System.Text.Json.Serialization.Metadata;
using Skiff.Api;

namespace Skiff.Crds;

/// <summary>
/// Generates Skiff's CustomResourceDefinitions from the C# types: System.Text.Json's schema
/// exporter describes the shape, the attributes in <c>Api/SchemaAttributes.cs</c> add what the CLR
/// type cannot say, and the result is rewritten into a Kubernetes structural schema (no $ref, no
/// type arrays, every node typed, lists bounded so CEL rules stay within the cost budget).
/// </summary>
public static class CrdGenerator
{
    public const string AppDeploymentsFile = "skiff.dev_appdeployments.yaml";
    public const string ImageGCPoliciesFile = "skiff.dev_imagegcpolicies.yaml";

    private static readonly Lazy<JsonObject> AppDeploymentLazy = new(() => BuildAppDeployment());
    private static readonly Lazy<JsonObject> ImageGCPolicyLazy = new(() => BuildImageGCPolicy());

    /// <summary>The AppDeployment CRD (a fresh copy: callers may change it).</summary>
    public static JsonObject AppDeploymentCrd() => (JsonObject)AppDeploymentLazy.Value.DeepClone();

    /// <summary>The ImageGCPolicy CRD (a fresh copy: callers may change it).</summary>
    public static JsonObject ImageGCPolicyCrd() => (JsonObject)ImageGCPolicyLazy.Value.DeepClone();

    /// <summary>Every CRD with the file name <c>skiff crds --output</c> gives it.</summary>
    public static IReadOnlyList<(string FileName, JsonObject Crd)> All() =>
    [
        (AppDeploymentsFile, AppDeploymentCrd()),
        (ImageGCPoliciesFile, ImageGCPolicyCrd()),
    ];

    /// <summary>
    /// The openAPIV3Schema as generated from the types now (tests compare it with the committed one the loader
    /// reads, <c>Yaml.CommittedSchemas</c>).
    /// </summary>
    internal static JsonObject? GeneratedOpenApiSchema(string kind) => kind switch
    {
        AppDeployment.KindName => SchemaOf(AppDeploymentLazy.Value),
        ImageGCPolicy.KindName => SchemaOf(ImageGCPolicyLazy.Value),
        _ => null,
    };

    /// <summary>One CRD as YAML, byte-stable.</summary>
    public static string ToYaml(JsonObject crd) => YamlWriter.Write([crd]);

    /// <summary>Every CRD as one multi-document YAML stream, byte-stable.</summary>
    public static string AllToYaml() => YamlWriter.Write(All().Select(c => (JsonNode)c.Crd));

    /// <summary>A CRD's openAPIV3Schema (its first and only version's).</summary>
    internal static JsonObject SchemaOf(JsonObject crd) =>
        crd["spec"]!["versions"]![0]!["schema"]!["openAPIV3Schema"]!.AsObject();

    private static JsonObject BuildAppDeployment() => Crd(
        typeof(AppDeployment), typeof(AppDeploymentSpec), typeof(AppDeploymentStatus),
        AppDeployment.KindName, AppDeployment.Plural, AppDeployment.Singular,
        namespaced: true, shortNames: [AppDeployment.ShortName],
        columns:
        [
            Column("Node", "string", ".spec.node", "The node that runs the stack"),
            Column("Ready", "string", ".status.conditions[?(@.type==\"Ready\")].status", "Whether the stack is Ready"),
            Column("Phase", "string", ".status.phase", "Pending, Progressing, Ready, Degraded or Failed"),
            Column("Image", "string", ".status.image", "The app image that runs now"),
            Column("Revision", "integer", ".status.revision", "The revision that runs now"),
            Column("Age", "date", ".metadata.creationTimestamp", null),
        ]);

    private static JsonObject BuildImageGCPolicy() => Crd(
        typeof(ImageGCPolicy), typeof(ImageGCPolicySpec), typeof(ImageGCPolicyStatus),
        ImageGCPolicy.KindName, ImageGCPolicy.Plural, ImageGCPolicy.Singular,
        namespaced: false, shortNames: ["imagegc"],
        columns:
        [
            Column("Nodes", "string", ".spec.nodes", "Nodes the policy applies to; empty means every node"),
            Column("High", "integer", ".spec.highThresholdPercent", "Disk usage percent at which GC starts"),
            Column("Low", "integer", ".spec.lowThresholdPercent", "Disk usage percent GC frees down to"),
            Column("Interval", "string", ".spec.interval", "How often GC runs"),
            Column("Dry-Run", "boolean", ".spec.dryRun", "Only report what would be removed"),
            Column("Age", "date", ".metadata.creationTimestamp", null),
        ]);

    private static JsonObject Column(string name, string type, string jsonPath, string? description)
    {
        var column = new JsonObject { ["name"] = name, ["type"] = type, ["jsonPath"] = jsonPath };
        if (description is not null)
        {
            column["description"] = description;
        }

        return column;
    }

    private static JsonObject Crd(
        Type resource, Type spec, Type status, string kind, string plural, string singular,
        bool namespaced, string[] shortNames, JsonObject[] columns)
    {
        var schema = new JsonObject
        {
            ["description"] = XmlDocs.Instance.For(resource),
            ["type"] = "object",
            ["required"] = new JsonArray("spec"),
            ["properties"] = new JsonObject
            {
                ["apiVersion"] = new JsonObject
                {
                    ["type"] = "string",
                    ["description"] = "APIVersion defines the versioned schema of this representation of an object.",
                },
                ["kind"] = new JsonObject
                {
                    ["type"] = "string",
                    ["description"] = "Kind is a string value representing the REST resource this object represents.",
                },
                ["metadata"] = new JsonObject { ["type"] = "object" },
                ["spec"] = SchemaFor(spec),
                ["status"] = SchemaFor(status),
            },
        };

        var crd = new JsonObject
        {
            ["apiVersion"] = "apiextensions.k8s.io/v1",
            ["kind"] = "CustomResourceDefinition",
            ["metadata"] = new JsonObject { ["name"] = plural + "." + SkiffApi.Group },
            ["spec"] = new JsonObject
            {
                ["group"] = SkiffApi.Group,
                ["names"] = new JsonObject
                {
                    ["kind"] = kind,
                    ["listKind"] = kind + "List",
                    ["plural"] = plural,
                    ["singular"] = singular,
                    ["shortNames"] = new JsonArray([.. shortNames.Select(s => (JsonNode)s)]),
                    ["categories"] = new JsonArray("skiff"),
                },
                ["scope"] = namespaced ? "Namespaced" : "Cluster",
                ["versions"] = new JsonArray(new JsonObject
                {
                    ["name"] = SkiffApi.Version,
                    ["served"] = true,
                    ["storage"] = true,
                    ["subresources"] = new JsonObject { ["status"] = new JsonObject() },
                    ["additionalPrinterColumns"] = new JsonArray([.. columns]),
                    ["schema"] = new JsonObject { ["openAPIV3Schema"] = schema },
                }),
            },
        };
        return (JsonObject)Canonical(crd)!;
    }

    // The schemas come from the same generated metadata the operator serializes with (ApiJsonContext).
    private static readonly JsonSerializerOptions ExportOptions = new() { TypeInfoResolver = ApiJson.Resolver };

    /// <summary>The structural schema of one of the API types.</summary>
    internal static JsonObject SchemaFor(Type type)
    {
        var exporter = new JsonSchemaExporterOptions
        {
            TreatNullObliviousAsNonNullable = true,
            TransformSchemaNode = Transform,
        };
        var node = ExportOptions.GetJsonSchemaAsNode(type, exporter);
        var schema = node.AsObject();
        schema.Remove("$schema");
        return schema;
    }

    private static JsonNode Transform(JsonSchemaExporterContext context, JsonNode node)
    {
        var clr = Nullable.GetUnderlyingType(context.TypeInfo.Type) ?? context.TypeInfo.Type;
        if (clr == typeof(IntOrString))
        {
            node = new JsonObject { ["x-kubernetes-int-or-string"] = true };
        }

        if (node is not JsonObject schema)
        {
            // "true" (anything goes) has no place in a structural schema.
            throw new InvalidOperationException($"{clr.Name} has no schema; give it a concrete type");
        }

        NormalizeType(schema);
        schema.Remove("additionalProperties");

        if (clr == typeof(int))
        {
            schema["format"] = "int32";
        }
        else if (clr == typeof(long))
        {
            schema["format"] = "int64";
        }
        else if (clr == typeof(double))
        {
            schema["format"] = "double";
        }

        if (context.TypeInfo.Kind == JsonTypeInfoKind.Object && clr != typeof(IntOrString))
        {
            schema["type"] = "object";
            schema["properties"] ??= new JsonObject();
            var required = context.TypeInfo.Properties
                .Where(p => Attr<SchemaRequiredAttribute>(p.AttributeProvider) is not null)
                .Select(p => (JsonNode)p.Name)
                .ToArray();
            if (required.Length > 0)
            {
                schema["required"] = new JsonArray(required);
            }

            if (context.PropertyInfo is null && XmlDocs.Instance.For(clr) is { } typeDoc)
            {
                schema["description"] = typeDoc;
            }

            AddCelRules(schema, clr.GetCustomAttributes<CelRuleAttribute>());
        }

        if (context.PropertyInfo?.AttributeProvider is PropertyInfo property)
        {
            ApplyPropertyAttributes(schema, property);
        }

        return schema;
    }

    private static void NormalizeType(JsonObject schema)
    {
        // Type arrays ("string", "null") are not structural: nullable fields are simply optional.
        if (schema["type"] is JsonArray types)
        {
            var concrete = types.Select(t => t!.GetValue<string>()).Where(t => t != "null").ToList();
            schema["type"] = concrete.Count == 1
                ? concrete[0]
                : throw new InvalidOperationException($"a field may have only one type, not {string.Join(", ", concrete)}");
        }
    }

    private static void ApplyPropertyAttributes(JsonObject schema, PropertyInfo property)
    {
        if (XmlDocs.Instance.For(property) is { } doc)
        {
            schema["description"] = doc;
        }

        if (Attr<SchemaEnumAttribute>(property) is { } e)
        {
            schema["enum"] = new JsonArray([.. e.Values.Select(v => (JsonNode)v)]);
        }

        if (Attr<SchemaDefaultAttribute>(property) is { } d)
        {
            schema["default"] = d.Value switch
            {
                bool b => JsonValue.Create(b),
                int i => JsonValue.Create(i),
                long l => JsonValue.Create(l),
                double x => JsonValue.Create(x),
                string text => JsonValue.Create(text),
                _ => throw new InvalidOperationException($"{property.DeclaringType?.Name}.{property.Name}: a schema default of type {d.Value.GetType().Name} is not supported"),
            };
        }

        if (Attr<SchemaRangeAttribute>(property) is { } r)
        {
            schema["minimum"] = r.Minimum;
            schema["maximum"] = r.Maximum;
        }

        if (Attr<SchemaMaxLengthAttribute>(property) is { } ml)
        {
            schema["maxLength"] = ml.MaxLength;
        }

        if (Attr<SchemaMinItemsAttribute>(property) is { } mi)
        {
            schema["minItems"] = mi.MinItems;
        }

        if (Attr<SchemaMaxItemsAttribute>(property) is { } mx)
        {
            schema["maxItems"] = mx.MaxItems;
        }

        if (Attr<SchemaPatternAttribute>(property) is { } p)
        {
            schema["pattern"] = p.Pattern;
        }

        if (Attr<QuantityAttribute>(property) is not null)
        {
            schema["pattern"] = Patterns.Quantity;
            schema["maxLength"] ??= 64;
        }

        if (Attr<DurationAttribute>(property) is not null)
        {
            schema["pattern"] = Patterns.Duration;
            schema["maxLength"] ??= 64;
        }

        if (Attr<SchemaItemsMaxLengthAttribute>(property) is { } iml && schema["items"] is JsonObject items)
        {
            items["maxLength"] = iml.MaxLength;
        }

        if (Attr<ListMapAttribute>(property) is { } map)
        {
            schema["x-kubernetes-list-type"] = "map";
            schema["x-kubernetes-list-map-keys"] = new JsonArray([.. map.Keys.Select(k => (JsonNode)k)]);
        }

        if (Attr<ListSetAttribute>(property) is not null)
        {
            schema["x-kubernetes-list-type"] = "set";
        }

        AddCelRules(schema, property.GetCustomAttributes<CelRuleAttribute>());
    }

    private static void AddCelRules(JsonObject schema, IEnumerable<CelRuleAttribute> rules)
    {
        var list = schema["x-kubernetes-validations"] as JsonArray ?? [];
        foreach (var rule in rules)
        {
            var item = new JsonObject { ["rule"] = rule.Rule, ["message"] = rule.Message };
            if (rule.FieldPath is not null)
            {
                item["fieldPath"] = rule.FieldPath;
            }

            if (rule.Reason is not null)
            {
                item["reason"] = rule.Reason;
            }

            if (!list.Any(existing => existing!["rule"]!.GetValue<string>() == rule.Rule))
            {
                list.Add((JsonNode)item);
            }
        }

        if (list.Count > 0)
        {
            schema["x-kubernetes-validations"] = list;
        }
    }

    private static T? Attr<T>(ICustomAttributeProvider? provider) where T : Attribute =>
        provider?.GetCustomAttributes(typeof(T), inherit: true).OfType<T>().FirstOrDefault();

    /// <summary>A copy with every object's keys sorted, as controller-gen writes them, so output is byte-stable.</summary>
    private static JsonNode? Canonical(JsonNode? node) => node switch
    {
        JsonObject o => new JsonObject(o
            .Where(kv => kv.Value is not null)
            .OrderBy(kv => kv.Key, StringComparer.Ordinal)
            .Select(kv => KeyValuePair.Create(kv.Key, Canonical(kv.Value)))),
        JsonArray a => new JsonArray([.. a.Select(Canonical)]),
        _ => node?.DeepClone(),
    };
}
