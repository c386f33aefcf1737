using System.Security.Cryptography;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Skiff.Api;

namespace Skiff.Reconcile;

/// <summary>
/// SHA-256 over the canonical JSON of the defaulted spec. It must stay stable across versions
/// (a golden test pins one): a change here would restart every app on upgrade.
/// </summary>
/// <remarks>
/// Canonical JSON: object keys sorted ordinally, nulls dropped, no whitespace, minimal escaping.
/// Dropping nulls means a new optional field added in a later version does not change the hash of
/// specs that do not set it.
/// </remarks>
public static class SpecHash
{
    private static readonly JsonSerializerOptions Options = new()
    {
        DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull,
        TypeInfoResolver = System.Text.Json.Serialization.Metadata.JsonTypeInfoResolver.Combine(ApiJson.Resolver, SpecHashJson.Default),
    };

    public static string Compute(AppDeploymentSpec spec)
    {
        var defaulted = Defaults.Apply(spec);
        if (defaulted.Database is { } db)
        {
            // Backups change no container: a new schedule must not roll out a new revision.
            db.Backup = null;
        }

        return OfNode(JsonSerializer.SerializeToNode(defaulted, Options.Info<AppDeploymentSpec>()));
    }

    /// <summary>Hash of any JSON-serializable value, canonicalised the same way.</summary>
    public static string Compute<T>(T value) => OfNode(JsonSerializer.SerializeToNode(value, Options.Info<T>()));

    /// <summary>Hash of JSON already written: canonicalised, then SHA-256.</summary>
    internal static string OfNode(JsonNode? node)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            WriteCanonical(writer, node);
        }

        return Convert.ToHexStringLower(SHA256.HashData(buffer.ToArray()));
    }

    private static void WriteCanonical(Utf8JsonWriter writer, JsonNode? node)
    {
        switch (node)
        {
            case JsonObject obj:
                writer.WriteStartObject();
                foreach (var (key, value) in obj.Where(p => p.Value is not null).OrderBy(p => p.Key, StringComparer.Ordinal))
                {
                    writer.WritePropertyName(key);
                    WriteCanonical(writer, value);
                }

                writer.WriteEndObject();
                break;
            case JsonArray array:
                writer.WriteStartArray();
                foreach (var item in array)
                {
                    WriteCanonical(writer, item);
                }

                writer.WriteEndArray();
                break;
            case null:
                writer.WriteNullValue();
                break;
            default:
                node.WriteTo(writer);
                break;
        }
    }
}

/// <summary>
/// The other values Skiff hashes (<see cref="SpecHash.Compute{T}"/>), generated at compile time like the API's: no
/// reflection fallback, so a value missing here fails in the tests.
/// </summary>
[System.Text.Json.Serialization.JsonSerializable(typeof(string))]
[System.Text.Json.Serialization.JsonSerializable(typeof(DatabaseConfigHash))]
[System.Text.Json.Serialization.JsonSerializable(typeof(CacheConfigHash))]
[System.Text.Json.Serialization.JsonSerializable(typeof(ProxyConfigHash))]
internal sealed partial class SpecHashJson : System.Text.Json.Serialization.JsonSerializerContext
{
}
