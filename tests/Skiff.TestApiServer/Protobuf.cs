using System.Text;
using System.Text.Json.Nodes;

namespace Skiff.TestApiServer;

/// <summary>
/// Decodes the few protobuf request bodies kubectl sends: its typed clients (<c>kubectl create namespace|secret|configmap</c>)
/// post core objects as <c>application/vnd.kubernetes.protobuf</c>. Only Namespace, Secret and ConfigMap are known;
/// responses are always JSON, which client-go accepts.
/// </summary>
internal static class Protobuf
{
    private static readonly byte[] Magic = [0x6b, 0x38, 0x73, 0x00];

    private enum F
    {
        String,
        Bytes,
        Int,
        Bool,
        Message,
        StringMap,
        BytesMap,
        Strings,
        Messages,
        Time,
    }

    private sealed record Field(string Name, F Kind, Dictionary<int, Field>? Schema = null);

    private static readonly Dictionary<int, Field> OwnerReference = new()
    {
        [1] = new("kind", F.String), [3] = new("name", F.String), [4] = new("uid", F.String), [5] = new("apiVersion", F.String),
        [6] = new("controller", F.Bool), [7] = new("blockOwnerDeletion", F.Bool),
    };

    private static readonly Dictionary<int, Field> ObjectMeta = new()
    {
        [1] = new("name", F.String), [2] = new("generateName", F.String), [3] = new("namespace", F.String), [5] = new("uid", F.String),
        [6] = new("resourceVersion", F.String), [7] = new("generation", F.Int), [11] = new("labels", F.StringMap),
        [12] = new("annotations", F.StringMap), [13] = new("ownerReferences", F.Messages, OwnerReference), [14] = new("finalizers", F.Strings),
    };

    private static readonly Dictionary<string, Dictionary<int, Field>> Kinds = new()
    {
        ["Namespace"] = new()
        {
            [1] = new("metadata", F.Message, ObjectMeta),
            [2] = new("spec", F.Message, new() { [1] = new("finalizers", F.Strings) }),
        },
        ["Secret"] = new()
        {
            [1] = new("metadata", F.Message, ObjectMeta), [2] = new("data", F.BytesMap), [3] = new("type", F.String),
            [4] = new("stringData", F.StringMap), [5] = new("immutable", F.Bool),
        },
        ["ConfigMap"] = new()
        {
            [1] = new("metadata", F.Message, ObjectMeta), [2] = new("data", F.StringMap), [3] = new("binaryData", F.BytesMap), [4] = new("immutable", F.Bool),
        },
    };

    public static JsonObject Decode(byte[] body)
    {
        if (body.Length < 4 || !body.AsSpan(0, 4).SequenceEqual(Magic))
        {
            throw ApiError.BadRequest("provided input did not contain the protobuf magic prefix");
        }

        string apiVersion = "", kind = "";
        byte[] raw = [];
        foreach (var (num, _, value) in Read(body.AsMemory(4)))
        {
            switch (num)
            {
                case 1:
                    foreach (var (n, _, v) in Read(value))
                    {
                        if (n == 1)
                        {
                            apiVersion = Encoding.UTF8.GetString(v.Span);
                        }
                        else if (n == 2)
                        {
                            kind = Encoding.UTF8.GetString(v.Span);
                        }
                    }

                    break;
                case 2:
                    raw = value.ToArray();
                    break;
            }
        }

        if (!Kinds.TryGetValue(kind, out var schema))
        {
            throw new ApiError(415, ApiError.StatusBody(415, "UnsupportedMediaType", $"the test API server cannot decode protobuf for kind {kind}; send JSON"));
        }

        var obj = Message(raw, schema);
        obj["apiVersion"] = apiVersion;
        obj["kind"] = kind;
        return obj;
    }

    private static JsonObject Message(ReadOnlyMemory<byte> data, Dictionary<int, Field> schema)
    {
        var obj = new JsonObject();
        foreach (var (num, varint, value) in Read(data))
        {
            if (!schema.TryGetValue(num, out var f))
            {
                continue;
            }

            switch (f.Kind)
            {
                case F.String:
                    obj[f.Name] = Encoding.UTF8.GetString(value.Span);
                    break;
                case F.Int:
                    obj[f.Name] = (long)varint;
                    break;
                case F.Bool:
                    obj[f.Name] = varint != 0;
                    break;
                case F.Message:
                    obj[f.Name] = Message(value, f.Schema!);
                    break;
                case F.Messages:
                    (obj[f.Name] as JsonArray ?? (JsonArray)(obj[f.Name] = new JsonArray())).Add(Message(value, f.Schema!));
                    break;
                case F.Strings:
                    (obj[f.Name] as JsonArray ?? (JsonArray)(obj[f.Name] = new JsonArray())).Add(Encoding.UTF8.GetString(value.Span));
                    break;
                case F.StringMap or F.BytesMap:
                    var map = obj[f.Name] as JsonObject ?? (JsonObject)(obj[f.Name] = new JsonObject());
                    string key = "", val = "";
                    foreach (var (n, _, v) in Read(value))
                    {
                        if (n == 1)
                        {
                            key = Encoding.UTF8.GetString(v.Span);
                        }
                        else if (n == 2)
                        {
                            val = f.Kind == F.BytesMap ? Convert.ToBase64String(v.Span) : Encoding.UTF8.GetString(v.Span);
                        }
                    }

                    map[key] = val;
                    break;
            }
        }

        return obj;
    }

    private static IEnumerable<(int Number, ulong Varint, ReadOnlyMemory<byte> Bytes)> Read(ReadOnlyMemory<byte> data)
    {
        var pos = 0;
        while (pos < data.Length)
        {
            var tag = ReadVarint(data.Span, ref pos);
            var number = (int)(tag >> 3);
            switch (tag & 7)
            {
                case 0:
                    yield return (number, ReadVarint(data.Span, ref pos), ReadOnlyMemory<byte>.Empty);
                    break;
                case 1:
                    pos += 8;
                    break;
                case 2:
                    var len = (int)ReadVarint(data.Span, ref pos);
                    yield return (number, 0, data.Slice(pos, len));
                    pos += len;
                    break;
                case 5:
                    pos += 4;
                    break;
                default:
                    throw ApiError.BadRequest("malformed protobuf body");
            }
        }
    }

    private static ulong ReadVarint(ReadOnlySpan<byte> data, ref int pos)
    {
        ulong result = 0;
        for (var shift = 0; pos < data.Length; shift += 7)
        {
            var b = data[pos++];
            result |= (ulong)(b & 0x7f) << shift;
            if ((b & 0x80) == 0)
            {
                break;
            }
        }

        return result;
    }
}
