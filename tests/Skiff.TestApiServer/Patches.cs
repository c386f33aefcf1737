using System.Text.Json.Nodes;

namespace Skiff.TestApiServer;

/// <summary>JSON merge patch (RFC 7386) and JSON patch (RFC 6902). Strategic merge patch is treated as merge patch.</summary>
internal static class Patches
{
    public static JsonNode? MergePatch(JsonNode? target, JsonNode? patch)
    {
        if (patch is not JsonObject p)
        {
            return patch?.DeepClone();
        }

        var result = target is JsonObject t ? (JsonObject)t.DeepClone() : new JsonObject();
        foreach (var (key, value) in p)
        {
            if (key.StartsWith('$'))
            {
                // Strategic merge directives ($patch, $retainKeys, $setElementOrder) have no meaning in a merge patch.
                continue;
            }

            if (value is null)
            {
                result.Remove(key);
            }
            else
            {
                var merged = MergePatch(result[key], value);
                result.Remove(key);
                result[key] = merged;
            }
        }

        return result;
    }

    public static JsonNode? JsonPatch(JsonNode? target, JsonArray ops)
    {
        var doc = target?.DeepClone();
        foreach (var opNode in ops)
        {
            if (opNode is not JsonObject op)
            {
                throw ApiError.BadRequest("json patch: operations must be objects");
            }

            var name = Json.Str(op["op"]);
            var path = Json.Str(op["path"]) ?? throw ApiError.BadRequest("json patch: missing path");
            switch (name)
            {
                case "add":
                    doc = Add(doc, path, op["value"]?.DeepClone());
                    break;
                case "remove":
                    doc = Remove(doc, path, out _);
                    break;
                case "replace":
                    doc = Remove(doc, path, out _);
                    doc = Add(doc, path, op["value"]?.DeepClone());
                    break;
                case "move":
                {
                    var from = Json.Str(op["from"]) ?? throw ApiError.BadRequest("json patch: missing from");
                    doc = Remove(doc, from, out var moved);
                    doc = Add(doc, path, moved);
                    break;
                }

                case "copy":
                {
                    var from = Json.Str(op["from"]) ?? throw ApiError.BadRequest("json patch: missing from");
                    doc = Add(doc, path, Get(doc, from)?.DeepClone());
                    break;
                }

                case "test":
                    if (!JsonNode.DeepEquals(Get(doc, path), op["value"]))
                    {
                        throw new ApiError(422, ApiError.StatusBody(422, "Invalid", $"the server rejected our request due to an error in our request: testing value {path} failed: test failed"));
                    }

                    break;
                default:
                    throw ApiError.BadRequest($"Unexpected kind: {name}");
            }
        }

        return doc;
    }

    private static string[] Tokens(string pointer) =>
        pointer.Length == 0 ? [] : pointer[1..].Split('/').Select(t => t.Replace("~1", "/").Replace("~0", "~")).ToArray();

    private static string ParentPointer(string[] tokens) =>
        string.Concat(tokens[..^1].Select(t => "/" + t.Replace("~", "~0").Replace("/", "~1")));

    private static JsonNode? Get(JsonNode? doc, string pointer)
    {
        var node = doc;
        foreach (var t in Tokens(pointer))
        {
            node = node switch
            {
                JsonObject o when o.ContainsKey(t) => o[t],
                JsonArray a when int.TryParse(t, out var i) && i >= 0 && i < a.Count => a[i],
                _ => throw NotFound(pointer),
            };
        }

        return node;
    }

    private static ApiError NotFound(string pointer) =>
        new(422, ApiError.StatusBody(422, "Invalid", $"the server rejected our request due to an error in our request: jsonpatch: path {pointer} does not exist"));

    private static JsonNode? Add(JsonNode? doc, string pointer, JsonNode? value)
    {
        var tokens = Tokens(pointer);
        if (tokens.Length == 0)
        {
            return value;
        }

        var parent = Get(doc, ParentPointer(tokens));
        var last = tokens[^1];
        switch (parent)
        {
            case JsonObject o:
                o.Remove(last);
                o[last] = value;
                break;
            case JsonArray a when last == "-":
                a.Add(value);
                break;
            case JsonArray a when int.TryParse(last, out var i) && i >= 0 && i <= a.Count:
                a.Insert(i, value);
                break;
            default:
                throw NotFound(pointer);
        }

        return doc;
    }

    private static JsonNode? Remove(JsonNode? doc, string pointer, out JsonNode? removed)
    {
        var tokens = Tokens(pointer);
        if (tokens.Length == 0)
        {
            removed = doc;
            return null;
        }

        var parent = Get(doc, ParentPointer(tokens));
        var last = tokens[^1];
        switch (parent)
        {
            case JsonObject o when o.ContainsKey(last):
                removed = o[last];
                o.Remove(last);
                break;
            case JsonArray a when int.TryParse(last, out var i) && i >= 0 && i < a.Count:
                removed = a[i];
                a.RemoveAt(i);
                break;
            default:
                throw NotFound(pointer);
        }

        return doc;
    }
}
