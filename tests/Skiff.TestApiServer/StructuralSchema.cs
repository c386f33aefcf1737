using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Skiff.TestApiServer;

/// <summary>
/// What the apiserver does with a custom resource's structural openAPIV3Schema: report or prune unknown fields,
/// apply defaults, and validate (type, enum, bounds, lengths, item counts, required, pattern).
/// </summary>
/// <remarks>
/// CEL rules (<c>x-kubernetes-validations</c>) are NOT evaluated: there is no CEL library for .NET here. They are
/// skipped on purpose; the operator's own validation mirrors every CEL rule and is tested on its own (DESIGN §1).
/// </remarks>
internal static class StructuralSchema
{
    private static readonly HashSet<string> ObjectMetaFields =
    [
        "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation", "creationTimestamp",
        "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations", "ownerReferences", "finalizers", "managedFields",
    ];

    /// <summary>Removes fields the schema does not know, collecting their paths (the apiserver's strict decoding errors).</summary>
    public static void Prune(JsonObject root, JsonObject? schema, List<string> unknown)
    {
        foreach (var key in root.Select(p => p.Key).ToList())
        {
            if (key is "apiVersion" or "kind")
            {
                continue;
            }

            if (key == "metadata")
            {
                if (root["metadata"] is JsonObject meta)
                {
                    foreach (var mk in meta.Select(p => p.Key).ToList())
                    {
                        if (!ObjectMetaFields.Contains(mk))
                        {
                            unknown.Add("metadata." + mk);
                            meta.Remove(mk);
                        }
                    }
                }

                continue;
            }

            if (schema is null)
            {
                continue;
            }

            PruneProperty(root, key, schema, key, unknown);
        }
    }

    private static void PruneProperty(JsonObject parent, string key, JsonObject parentSchema, string path, List<string> unknown)
    {
        if (parentSchema["properties"] is JsonObject props && props[key] is JsonObject propSchema)
        {
            PruneNode(parent[key], propSchema, path, unknown);
        }
        else if (parentSchema["additionalProperties"] is JsonObject additional)
        {
            PruneNode(parent[key], additional, path, unknown);
        }
        else if (IsTrue(parentSchema, "x-kubernetes-preserve-unknown-fields") || parentSchema["additionalProperties"] is JsonValue)
        {
            // Kept as given.
        }
        else
        {
            unknown.Add(path);
            parent.Remove(key);
        }
    }

    private static void PruneNode(JsonNode? node, JsonObject schema, string path, List<string> unknown)
    {
        switch (node)
        {
            case JsonObject obj:
                if (IsTrue(schema, "x-kubernetes-embedded-resource"))
                {
                    Prune(obj, schema, unknown);
                    return;
                }

                if (schema["properties"] is null && schema["additionalProperties"] is null)
                {
                    // An object with no declared fields: keep it only when the schema says so.
                    if (!IsTrue(schema, "x-kubernetes-preserve-unknown-fields") && !IsTrue(schema, "x-kubernetes-int-or-string"))
                    {
                        foreach (var key in obj.Select(p => p.Key).ToList())
                        {
                            unknown.Add($"{path}.{key}");
                            obj.Remove(key);
                        }
                    }

                    return;
                }

                foreach (var key in obj.Select(p => p.Key).ToList())
                {
                    PruneProperty(obj, key, schema, $"{path}.{key}", unknown);
                }

                break;
            case JsonArray arr when schema["items"] is JsonObject items:
                for (var i = 0; i < arr.Count; i++)
                {
                    PruneNode(arr[i], items, $"{path}[{i}]", unknown);
                }

                break;
        }
    }

    /// <summary>Structural defaulting: a missing (or null and not nullable) property with a default gets it; recursion goes into what exists.</summary>
    public static void ApplyDefaults(JsonNode? node, JsonObject? schema)
    {
        if (schema is null)
        {
            return;
        }

        switch (node)
        {
            case JsonObject obj:
                if (schema["properties"] is JsonObject props)
                {
                    foreach (var (key, ps) in props)
                    {
                        if (ps is not JsonObject propSchema)
                        {
                            continue;
                        }

                        if (obj.ContainsKey(key) && obj[key] is null && !IsTrue(propSchema, "nullable"))
                        {
                            obj.Remove(key);
                        }

                        if (!obj.ContainsKey(key) && propSchema["default"] is { } def)
                        {
                            obj[key] = def.DeepClone();
                        }

                        if (obj[key] is { } child)
                        {
                            ApplyDefaults(child, propSchema);
                        }
                    }
                }
                else if (schema["additionalProperties"] is JsonObject additional)
                {
                    foreach (var (_, child) in obj.ToList())
                    {
                        ApplyDefaults(child, additional);
                    }
                }

                break;
            case JsonArray arr when schema["items"] is JsonObject items:
                foreach (var child in arr)
                {
                    ApplyDefaults(child, items);
                }

                break;
        }
    }

    /// <summary>Validates everything but metadata against the schema; errors read like the apiserver's.</summary>
    public static List<FieldError> Validate(JsonObject root, JsonObject? schema)
    {
        var errors = new List<FieldError>();
        if (schema?["properties"] is not JsonObject props)
        {
            return errors;
        }

        foreach (var (key, ps) in props)
        {
            if (key is "apiVersion" or "kind" or "metadata" || ps is not JsonObject propSchema)
            {
                continue;
            }

            if (root.ContainsKey(key))
            {
                ValidateNode(root[key], propSchema, key, errors);
            }
        }

        RequiredFields(root, schema, "", errors);
        return errors;
    }

    private static void RequiredFields(JsonObject obj, JsonObject schema, string path, List<FieldError> errors)
    {
        if (schema["required"] is JsonArray required)
        {
            foreach (var r in required)
            {
                var name = Json.Str(r)!;
                if (!obj.ContainsKey(name) && !(path.Length == 0 && name is "apiVersion" or "kind" or "metadata"))
                {
                    errors.Add(FieldError.Required(path.Length == 0 ? name : $"{path}.{name}"));
                }
            }
        }
    }

    private static void ValidateNode(JsonNode? node, JsonObject schema, string path, List<FieldError> errors)
    {
        if (node is null)
        {
            if (!IsTrue(schema, "nullable") && schema["type"] is not null)
            {
                errors.Add(FieldError.Invalid(path, null, $"{path} in body must be of type {Json.Str(schema["type"])}: \"null\""));
            }

            return;
        }

        if (IsTrue(schema, "x-kubernetes-int-or-string"))
        {
            var kind = node.GetValueKind();
            if (kind != JsonValueKind.String && !IsInteger(node))
            {
                errors.Add(FieldError.Invalid(path, node, $"{path} in body must be of type integer,string: \"{TypeName(node)}\""));
            }

            return;
        }

        var type = Json.Str(schema["type"]);
        if (type is not null && !HasType(node, type))
        {
            errors.Add(FieldError.Invalid(path, node, $"{path} in body must be of type {type}: \"{TypeName(node)}\""));
            return;
        }

        if (schema["enum"] is JsonArray allowed && !allowed.Any(a => JsonNode.DeepEquals(a, node)))
        {
            errors.Add(FieldError.NotSupported(path, node, allowed.Select(a => Json.Serialize(a))));
        }

        switch (node)
        {
            case JsonValue value:
                ValidateScalar(value, schema, path, errors);
                break;
            case JsonArray arr:
                if (schema["maxItems"] is JsonValue maxItems && arr.Count > Json.Long(maxItems)!.Value)
                {
                    errors.Add(FieldError.TooMany(path, arr.Count, Json.Long(maxItems)!.Value));
                }

                if (schema["minItems"] is JsonValue minItems && arr.Count < Json.Long(minItems)!.Value)
                {
                    errors.Add(FieldError.Invalid(path, JsonValue.Create(arr.Count), $"{path} in body should have at least {Json.Long(minItems)!.Value} items"));
                }

                if (schema["items"] is JsonObject items)
                {
                    for (var i = 0; i < arr.Count; i++)
                    {
                        ValidateNode(arr[i], items, $"{path}[{i}]", errors);
                    }
                }

                ValidateListMapKeys(arr, schema, path, errors);
                break;
            case JsonObject obj:
                if (schema["properties"] is JsonObject props)
                {
                    foreach (var (key, ps) in props)
                    {
                        if (ps is JsonObject propSchema && obj.ContainsKey(key))
                        {
                            ValidateNode(obj[key], propSchema, $"{path}.{key}", errors);
                        }
                    }
                }
                else if (schema["additionalProperties"] is JsonObject additional)
                {
                    foreach (var (key, child) in obj)
                    {
                        ValidateNode(child, additional, $"{path}[{key}]", errors);
                    }
                }

                if (schema["maxProperties"] is JsonValue maxProps && obj.Count > Json.Long(maxProps)!.Value)
                {
                    errors.Add(FieldError.TooMany(path, obj.Count, Json.Long(maxProps)!.Value));
                }

                RequiredFields(obj, schema, path, errors);
                break;
        }
    }

    private static void ValidateScalar(JsonValue value, JsonObject schema, string path, List<FieldError> errors)
    {
        if (value.GetValueKind() == JsonValueKind.Number)
        {
            var d = Json.Double(value)!.Value;
            if (schema["maximum"] is JsonValue max)
            {
                var m = Json.Double(max)!.Value;
                var exclusive = IsTrue(schema, "exclusiveMaximum");
                if (exclusive ? d >= m : d > m)
                {
                    errors.Add(FieldError.Invalid(path, value, $"{path} in body should be less than {(exclusive ? "" : "or equal to ")}{Num(max)}"));
                }
            }

            if (schema["minimum"] is JsonValue min)
            {
                var m = Json.Double(min)!.Value;
                var exclusive = IsTrue(schema, "exclusiveMinimum");
                if (exclusive ? d <= m : d < m)
                {
                    errors.Add(FieldError.Invalid(path, value, $"{path} in body should be greater than {(exclusive ? "" : "or equal to ")}{Num(min)}"));
                }
            }

            if (schema["multipleOf"] is JsonValue mult && d % Json.Double(mult)!.Value != 0)
            {
                errors.Add(FieldError.Invalid(path, value, $"{path} in body should be a multiple of {Num(mult)}"));
            }
        }
        else if (value.GetValueKind() == JsonValueKind.String)
        {
            var s = value.GetValue<string>();
            var bytes = Encoding.UTF8.GetByteCount(s);
            if (schema["maxLength"] is JsonValue maxLen && s.Length > Json.Long(maxLen)!.Value)
            {
                errors.Add(FieldError.TooLong(path, Json.Long(maxLen)!.Value));
            }

            if (schema["minLength"] is JsonValue minLen && bytes < Json.Long(minLen)!.Value)
            {
                errors.Add(FieldError.Invalid(path, value, $"{path} in body should be at least {Json.Long(minLen)!.Value} chars long"));
            }

            if (Json.Str(schema["pattern"]) is { } pattern && !Regex.IsMatch(s, pattern))
            {
                errors.Add(FieldError.Invalid(path, value, $"{path} in body should match '{pattern}'"));
            }
        }
    }

    private static void ValidateListMapKeys(JsonArray arr, JsonObject schema, string path, List<FieldError> errors)
    {
        var listType = Json.Str(schema["x-kubernetes-list-type"]);
        if (listType == "map" && schema["x-kubernetes-list-map-keys"] is JsonArray keys)
        {
            var seen = new HashSet<string>();
            for (var i = 0; i < arr.Count; i++)
            {
                if (arr[i] is not JsonObject item)
                {
                    continue;
                }

                var key = string.Join(",", keys.Select(k => Json.Serialize(item[Json.Str(k)!])));
                if (!seen.Add(key))
                {
                    var keyObj = new JsonObject();
                    foreach (var k in keys)
                    {
                        keyObj[Json.Str(k)!] = item[Json.Str(k)!]?.DeepClone();
                    }

                    errors.Add(new FieldError("Duplicate value", $"{path}[{i}]", "", keyObj, true));
                }
            }
        }
        else if (listType == "set")
        {
            var seen = new HashSet<string>();
            for (var i = 0; i < arr.Count; i++)
            {
                if (!seen.Add(Json.Serialize(arr[i])))
                {
                    errors.Add(new FieldError("Duplicate value", $"{path}[{i}]", "", arr[i]?.DeepClone(), true));
                }
            }
        }
    }

    private static string Num(JsonValue v)
    {
        var d = Json.Double(v)!.Value;
        return d == Math.Floor(d) ? ((long)d).ToString(CultureInfo.InvariantCulture) : d.ToString(CultureInfo.InvariantCulture);
    }

    private static bool HasType(JsonNode node, string type) => type switch
    {
        "object" => node is JsonObject,
        "array" => node is JsonArray,
        "string" => node.GetValueKind() == JsonValueKind.String,
        "boolean" => node.GetValueKind() is JsonValueKind.True or JsonValueKind.False,
        "number" => node.GetValueKind() == JsonValueKind.Number,
        "integer" => IsInteger(node),
        _ => true,
    };

    private static bool IsInteger(JsonNode node) =>
        node.GetValueKind() == JsonValueKind.Number && Json.Double(node) is { } d && d == Math.Floor(d);

    private static string TypeName(JsonNode node) => node.GetValueKind() switch
    {
        JsonValueKind.Object => "object",
        JsonValueKind.Array => "array",
        JsonValueKind.String => "string",
        JsonValueKind.True or JsonValueKind.False => "boolean",
        JsonValueKind.Number => IsInteger(node) ? "integer" : "number",
        _ => "null",
    };

    internal static bool IsTrue(JsonObject schema, string key) =>
        schema[key] is JsonValue v && v.GetValueKind() == JsonValueKind.True;

    /// <summary>The schema of a sub-path, for server-side apply's list and map semantics.</summary>
    internal static JsonObject? Child(JsonObject? schema, string key) =>
        schema is null ? null : (schema["properties"]?[key] ?? schema["additionalProperties"]) as JsonObject;
}
