using System.Globalization;
using System.Reflection;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;

namespace Skiff.TestApiServer;

/// <summary>
/// Decodes a built-in kind as the apiserver does: into its typed struct, by the fields of the KubernetesClient model
/// (generated from the upstream Kubernetes OpenAPI, so the same field names and types). A field the type does not have is
/// dropped and reported as unknown (an error with <c>fieldValidation=Strict</c>, a warning by default); a value of the
/// wrong JSON type fails the request as Go's <c>json.Unmarshal</c> does, whatever the validation directive.
/// </summary>
internal static partial class ModelSchema
{
    private static readonly Dictionary<Type, Dictionary<string, PropertyInfo>> Properties = [];

    /// <summary>Drops and lists (as JSON paths) the unknown fields; returns the first type error, or null.</summary>
    public static string? Decode(JsonObject obj, Type model, List<string> unknown)
    {
        var errors = new List<string>();
        DecodeObject(obj, model, "", unknown, errors);
        return errors.Count == 0 ? null : errors[0];
    }

    private static Dictionary<string, PropertyInfo> Fields(Type type)
    {
        lock (Properties)
        {
            if (!Properties.TryGetValue(type, out var fields))
            {
                fields = type.GetProperties(BindingFlags.Public | BindingFlags.Instance)
                    .Select(p => (p, name: p.GetCustomAttribute<JsonPropertyNameAttribute>()?.Name))
                    .Where(x => x.name is not null)
                    .ToDictionary(x => x.name!, x => x.p);
                Properties[type] = fields;
            }

            return fields;
        }
    }

    private static void DecodeObject(JsonObject obj, Type type, string path, List<string> unknown, List<string> errors)
    {
        var fields = Fields(type);
        foreach (var (name, value) in obj.ToList())
        {
            var fieldPath = path.Length == 0 ? name : $"{path}.{name}";
            if (!fields.TryGetValue(name, out var property))
            {
                unknown.Add(fieldPath);
                obj.Remove(name);
                continue;
            }

            DecodeValue(value, property.PropertyType, fieldPath, $"{GoName(type)}.{Index().Replace(fieldPath, "")}", unknown, errors);
        }
    }

    private static void DecodeValue(JsonNode? value, Type type, string path, string goField, List<string> unknown, List<string> errors)
    {
        if (value is null)
        {
            return; // null decodes to the zero value of any field
        }

        type = Nullable.GetUnderlyingType(type) ?? type;
        var kind = value.GetValueKind();
        string? expected = null;
        if (type == typeof(string) || type == typeof(DateTime))
        {
            expected = kind == System.Text.Json.JsonValueKind.String ? null : "string";
        }
        else if (type == typeof(int) || type == typeof(long))
        {
            var ok = kind == System.Text.Json.JsonValueKind.Number && long.TryParse(value.ToJsonString(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n)
                && (type == typeof(long) || n is >= int.MinValue and <= int.MaxValue);
            expected = ok ? null : type == typeof(int) ? "int32" : "int64";
        }
        else if (type == typeof(double) || type == typeof(float))
        {
            expected = kind == System.Text.Json.JsonValueKind.Number ? null : "float64";
        }
        else if (type == typeof(bool))
        {
            expected = kind is System.Text.Json.JsonValueKind.True or System.Text.Json.JsonValueKind.False ? null : "bool";
        }
        else if (type == typeof(byte[]))
        {
            expected = kind == System.Text.Json.JsonValueKind.String && IsBase64(value.GetValue<string>()) ? null : "[]uint8";
        }
        else if (type.Name == "IntOrString")
        {
            expected = kind is System.Text.Json.JsonValueKind.String or System.Text.Json.JsonValueKind.Number ? null : "intstr.IntOrString";
        }
        else if (type.Name == "ResourceQuantity")
        {
            expected = kind is System.Text.Json.JsonValueKind.String or System.Text.Json.JsonValueKind.Number ? null : "resource.Quantity";
        }
        else if (type == typeof(object))
        {
            expected = null; // free-form (fieldsV1, raw extensions)
        }
        else if (Generic(type, typeof(IDictionary<,>)) is { } dict)
        {
            if (value is JsonObject map)
            {
                foreach (var (k, v) in map)
                {
                    DecodeValue(v, dict[1], $"{path}.{k}", goField, unknown, errors);
                }
            }
            else
            {
                expected = $"map[string]{GoType(dict[1])}";
            }
        }
        else if (Generic(type, typeof(IEnumerable<>)) is { } list)
        {
            if (value is JsonArray array)
            {
                for (var i = 0; i < array.Count; i++)
                {
                    DecodeValue(array[i], list[0], $"{path}[{i}]", goField, unknown, errors);
                }
            }
            else
            {
                expected = $"[]{GoType(list[0])}";
            }
        }
        else if (type.IsClass)
        {
            if (value is JsonObject child)
            {
                DecodeObject(child, type, path, unknown, errors);
            }
            else
            {
                expected = GoType(type);
            }
        }

        if (expected is not null)
        {
            errors.Add($"json: cannot unmarshal {JsonKind(kind)} into Go struct field {goField} of type {expected}");
        }
    }

    private static Type[]? Generic(Type type, Type definition)
    {
        if (type.IsGenericType && type.GetGenericTypeDefinition() == definition)
        {
            return type.GetGenericArguments();
        }

        return type.GetInterfaces().FirstOrDefault(i => i.IsGenericType && i.GetGenericTypeDefinition() == definition)?.GetGenericArguments();
    }

    private static bool IsBase64(string s)
    {
        var buffer = new byte[s.Length];
        return Convert.TryFromBase64String(s, buffer, out _);
    }

    private static string JsonKind(System.Text.Json.JsonValueKind kind) => kind switch
    {
        System.Text.Json.JsonValueKind.String => "string",
        System.Text.Json.JsonValueKind.Number => "number",
        System.Text.Json.JsonValueKind.True or System.Text.Json.JsonValueKind.False => "bool",
        System.Text.Json.JsonValueKind.Array => "array",
        _ => "object",
    };

    private static string GoType(Type type)
    {
        type = Nullable.GetUnderlyingType(type) ?? type;
        return type == typeof(string) ? "string"
            : type == typeof(int) ? "int32"
            : type == typeof(long) ? "int64"
            : type == typeof(bool) ? "bool"
            : "v1." + GoName(type);
    }

    /// <summary>V1DeploymentSpec → DeploymentSpec, as Go names the struct.</summary>
    private static string GoName(Type type) => VersionPrefix().Replace(type.Name, "");

    [GeneratedRegex(@"\[[0-9]+\]")]
    private static partial Regex Index();

    [GeneratedRegex("^V[0-9]+((alpha|beta)[0-9]+)?(?=[A-Z])")]
    private static partial Regex VersionPrefix();
}
