using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Skiff.TestApiServer;

/// <summary>JSON helpers shared by the server: relaxed escaping like Go's encoder, path-free cloning and reading.</summary>
internal static class Json
{
    public static readonly JsonSerializerOptions Options = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static string Serialize(JsonNode? node) => node is null ? "null" : node.ToJsonString(Options);

    public static JsonObject Clone(JsonObject obj) => (JsonObject)obj.DeepClone();

    public static JsonObject Metadata(JsonObject obj)
    {
        if (obj["metadata"] is JsonObject m)
        {
            return m;
        }

        m = new JsonObject();
        obj["metadata"] = m;
        return m;
    }

    public static string? Str(JsonNode? node) =>
        node is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : null;

    public static string? MetaStr(JsonObject obj, string field) => obj["metadata"] is JsonObject m ? Str(m[field]) : null;

    public static string Name(JsonObject obj) => MetaStr(obj, "name") ?? "";

    public static string Namespace(JsonObject obj) => MetaStr(obj, "namespace") ?? "";

    public static long Rv(JsonObject obj) => long.TryParse(MetaStr(obj, "resourceVersion"), out var rv) ? rv : 0;

    /// <summary>Follows a dotted path (metadata.name, involvedObject.uid) and renders a scalar as a field selector compares it.</summary>
    public static string? Dotted(JsonObject obj, string path)
    {
        JsonNode? node = obj;
        foreach (var part in path.Split('.'))
        {
            node = node is JsonObject o ? o[part] : null;
            if (node is null)
            {
                return null;
            }
        }

        return node switch
        {
            JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
            JsonValue v => v.ToJsonString(),
            _ => null,
        };
    }

    /// <summary>A JSON number as double, whatever CLR type the node was built from (JsonValue.GetValue does not convert int to long).</summary>
    public static double? Double(JsonNode? node) =>
        node is JsonValue v && v.GetValueKind() == JsonValueKind.Number ? double.Parse(v.ToJsonString(), System.Globalization.CultureInfo.InvariantCulture) : null;

    public static long? Long(JsonNode? node) => Double(node) is { } d ? (long)d : null;

    public static int? Int(JsonNode? node) => Double(node) is { } d ? (int)d : null;

    public static bool DeepEquals(JsonNode? a, JsonNode? b) => JsonNode.DeepEquals(a, b);
}
