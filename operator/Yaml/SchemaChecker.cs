using System.Text.Json;
using System.Text.Json.Nodes;
using Skiff.Validation;

namespace Skiff.Yaml;

/// <summary>
/// Checks a document's shape against the CRD's structural schema, as the API server's decoder
/// does before any rule runs: value types, unknown fields (strict, like <c>kubectl apply
/// --validate=strict</c>) and required fields. Values themselves (ranges, enums, patterns) are
/// left to <see cref="ResourceValidator"/>, which works on the typed object. Null values count as
/// absent, as the API server prunes them. A value with a problem is removed from the tree, so the
/// rest of the document can still be read and validated: one pass reports every problem.
/// </summary>
internal static class SchemaChecker
{
    /// <summary>Checks <paramref name="node"/>; false when it has a problem and should be dropped.</summary>
    public static bool Check(JsonNode? node, JsonObject schema, string path, ResourceValidator.Errors errors)
    {
        var before = errors.Reported;
        if (schema["x-kubernetes-int-or-string"] is not null)
        {
            if (!IsInteger(node, out _) && node?.GetValueKind() != JsonValueKind.String)
            {
                errors.Add(path, "must be an integer or a string");
            }

            return errors.Reported == before;
        }

        switch ((string?)schema["type"])
        {
            case "object":
                CheckObject(node, schema, path, errors);
                // Unknown or broken fields were removed; the object itself can stay.
                return node is JsonObject;
            case "array":
                if (node is not JsonArray array)
                {
                    errors.Add(path, "must be a list" + Hint(node));
                    return false;
                }

                var items = schema["items"] as JsonObject ?? [];
                var ok = true;
                for (var i = 0; i < array.Count; i++)
                {
                    if (array[i] is null)
                    {
                        errors.Add($"{path}[{i}]", "must not be null");
                        ok = false;
                    }
                    else
                    {
                        ok &= Check(array[i], items, $"{path}[{i}]", errors);
                    }
                }

                // An item cannot be dropped without renumbering the rest; drop the list instead.
                return ok;
            case "string":
                if (node?.GetValueKind() != JsonValueKind.String)
                {
                    errors.Add(path, "must be a string" + (node is JsonValue ? ": quote the value" : Hint(node)));
                }

                break;
            case "integer":
                if (!IsInteger(node, out var value))
                {
                    errors.Add(path, "must be an integer" + Hint(node));
                }
                else if ((string?)schema["format"] == "int32" && value is < int.MinValue or > int.MaxValue)
                {
                    errors.Add(path, schema["minimum"] is not null && schema["maximum"] is not null
                        ? $"must be between {schema["minimum"]} and {schema["maximum"]}, got {value}"
                        : $"must be a 32-bit integer, got {value}");
                }

                break;
            case "number":
                if (node?.GetValueKind() != JsonValueKind.Number)
                {
                    errors.Add(path, "must be a number" + Hint(node));
                }

                break;
            case "boolean":
                if (node?.GetValueKind() is not (JsonValueKind.True or JsonValueKind.False))
                {
                    errors.Add(path, "must be true or false" + Hint(node));
                }

                break;
        }

        return errors.Reported == before;
    }

    private static void CheckObject(JsonNode? node, JsonObject schema, string path, ResourceValidator.Errors errors)
    {
        if (node is not JsonObject obj)
        {
            errors.Add(path, "must be an object with fields" + Hint(node));
            return;
        }

        if (schema["properties"] is not JsonObject properties)
        {
            return;
        }

        foreach (var (key, value) in obj.ToList())
        {
            var childPath = Join(path, key);
            if (properties[key] is not JsonObject propertySchema)
            {
                errors.Add(childPath, "unknown field" + Suggest(key, properties.Select(p => p.Key)));
                obj.Remove(key);
            }
            else if (value is null || !Check(value, propertySchema, childPath, errors))
            {
                obj.Remove(key);
            }
        }

        foreach (var required in (schema["required"] as JsonArray ?? []).Select(r => (string)r!))
        {
            if (!obj.ContainsKey(required))
            {
                errors.Add(Join(path, required), "required");
            }
        }
    }

    // An empty key is written as "" so that its errors still name a path.
    internal static string Join(string path, string key)
    {
        var shown = key.Length == 0 ? "\"\"" : key;
        return path.Length == 0 ? shown : $"{path}.{shown}";
    }

    private static bool IsInteger(JsonNode? node, out long value)
    {
        value = 0;
        return node is JsonValue v && (v.TryGetValue(out value) || (v.TryGetValue<int>(out var i) && (value = i) == i));
    }

    private static string Hint(JsonNode? node) => node switch
    {
        JsonObject => ", not a mapping",
        JsonArray => ", not a list",
        JsonValue v when v.GetValueKind() == JsonValueKind.String => $", got {Text.Quote(v.GetValue<string>())}",
        JsonValue v => $", got {v.ToJsonString()}",
        _ => "",
    };

    /// <summary>"; did you mean "image"?" for a near miss, so a typo names its fix.</summary>
    internal static string Suggest(string key, IEnumerable<string> known)
    {
        var best = known
            .Select(k => (Key: k, Distance: Distance(key.ToLowerInvariant(), k.ToLowerInvariant())))
            .Where(k => k.Distance <= Math.Max(1, Math.Min(2, key.Length / 3)))
            .OrderBy(k => k.Distance)
            .ThenBy(k => k.Key, StringComparer.Ordinal)
            .FirstOrDefault();
        return best.Key is null ? "" : $"; did you mean {Text.Quote(best.Key)}?";
    }

    internal static int Distance(string a, string b)
    {
        if (Math.Abs(a.Length - b.Length) > 2 || a.Length > 64 || b.Length > 64)
        {
            return int.MaxValue;
        }

        var previous = Enumerable.Range(0, b.Length + 1).ToArray();
        for (var i = 1; i <= a.Length; i++)
        {
            var current = new int[b.Length + 1];
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                current[j] = Math.Min(Math.Min(current[j - 1], previous[j]) + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            }

            previous = current;
        }

        return previous[b.Length];
    }
}
