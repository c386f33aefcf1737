using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Skiff.TestApiServer;

/// <summary>meta.k8s.io/v1 Table output (what kubectl get asks for): printer columns, Name first, dates as ages.</summary>
internal static class Tables
{
    private const string NameDescription = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";

    public static bool Wanted(string? accept) => accept is not null && accept.Contains("as=Table", StringComparison.Ordinal);

    public static JsonObject Build(ResourceType type, IEnumerable<JsonObject> objects, long rv, string? continueToken, string includeObject, DateTimeOffset now)
    {
        var nameFirst = type.Kind != "Event";
        var defs = new JsonArray();
        if (nameFirst)
        {
            defs.Add(new JsonObject { ["name"] = "Name", ["type"] = "string", ["format"] = "name", ["description"] = NameDescription, ["priority"] = 0 });
        }

        foreach (var c in type.Columns)
        {
            defs.Add(new JsonObject { ["name"] = c.Name, ["type"] = c.Type, ["format"] = c.Format, ["description"] = c.Description, ["priority"] = c.Priority });
        }

        var rows = new JsonArray();
        foreach (var obj in objects)
        {
            var cells = new JsonArray();
            if (nameFirst)
            {
                cells.Add(Json.Name(obj));
            }

            foreach (var c in type.Columns)
            {
                cells.Add(Cell(obj, c, now));
            }

            var row = new JsonObject { ["cells"] = cells };
            switch (includeObject)
            {
                case "None":
                    break;
                case "Object":
                    row["object"] = obj.DeepClone();
                    break;
                default:
                    row["object"] = new JsonObject
                    {
                        ["kind"] = "PartialObjectMetadata",
                        ["apiVersion"] = "meta.k8s.io/v1",
                        ["metadata"] = obj["metadata"]?.DeepClone(),
                    };
                    break;
            }

            rows.Add(row);
        }

        var meta = new JsonObject { ["resourceVersion"] = rv.ToString(CultureInfo.InvariantCulture) };
        if (!string.IsNullOrEmpty(continueToken))
        {
            meta["continue"] = continueToken;
        }

        return new JsonObject
        {
            ["kind"] = "Table",
            ["apiVersion"] = "meta.k8s.io/v1",
            ["metadata"] = meta,
            ["columnDefinitions"] = defs,
            ["rows"] = rows,
        };
    }

    private static JsonNode? Cell(JsonObject obj, PrinterColumn column, DateTimeOffset now)
    {
        if (column.JsonPath.StartsWith('#'))
        {
            return BuiltInCell(obj, column.JsonPath, now);
        }

        var value = JsonPathLite.First(obj, column.JsonPath);
        if (value is null)
        {
            return null;
        }

        switch (column.Type)
        {
            case "date":
                return Json.Str(value) is { } s && DateTimeOffset.TryParse(s, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t)
                    ? HumanDuration(now - t)
                    : value.DeepClone();
            case "integer" when value.GetValueKind() == JsonValueKind.Number:
                return JsonValue.Create((long)Json.Double(value)!.Value);
            case "string" when value is JsonValue v && v.GetValueKind() != JsonValueKind.String:
                return v.ToJsonString();
            case "string" when value is not JsonValue:
                return value.ToJsonString(Json.Options);
            default:
                return value.DeepClone();
        }
    }

    private static JsonNode? BuiltInCell(JsonObject obj, string column, DateTimeOffset now)
    {
        string Age(string? time) =>
            time is not null && DateTimeOffset.TryParse(time, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t) ? HumanDuration(now - t) : "<unknown>";

        switch (column)
        {
            case "#data":
                return ((obj["data"] as JsonObject)?.Count ?? 0) + ((obj["binaryData"] as JsonObject)?.Count ?? 0);
            case "#lastSeen":
                return Age(Json.Str(obj["lastTimestamp"]) ?? Json.Str(obj["eventTime"]) ?? Json.MetaStr(obj, "creationTimestamp"));
            case "#firstSeen":
                return Age(Json.Str(obj["firstTimestamp"]) ?? Json.Str(obj["eventTime"]) ?? Json.MetaStr(obj, "creationTimestamp"));
            case "#object":
                return $"{Json.Str(obj["involvedObject"]?["kind"])?.ToLowerInvariant()}/{Json.Str(obj["involvedObject"]?["name"])}";
            case "#source":
                var component = Json.Str(obj["source"]?["component"]) ?? Json.Str(obj["reportingComponent"]) ?? "";
                var host = Json.Str(obj["source"]?["host"]);
                return host is { Length: > 0 } ? $"{component}, {host}" : component;
            case "#count":
                return (Json.Long(obj["count"]) ?? 1).ToString(CultureInfo.InvariantCulture);
            default:
                return Workloads.Cell(obj, column);
        }
    }

    /// <summary>k8s.io/apimachinery/pkg/util/duration.HumanDuration, which kubectl's AGE column uses.</summary>
    public static string HumanDuration(TimeSpan d)
    {
        var seconds = (long)Math.Floor(d.TotalSeconds);
        if (seconds < -1)
        {
            return "<invalid>";
        }

        if (seconds < 0)
        {
            return "0s";
        }

        if (seconds < 60 * 2)
        {
            return $"{seconds}s";
        }

        var minutes = (long)d.TotalMinutes;
        if (minutes < 10)
        {
            var s = seconds % 60;
            return s == 0 ? $"{minutes}m" : $"{minutes}m{s}s";
        }

        if (minutes < 60 * 3)
        {
            return $"{minutes}m";
        }

        var hours = (long)d.TotalHours;
        if (hours < 8)
        {
            var m = minutes % 60;
            return m == 0 ? $"{hours}h" : $"{hours}h{m}m";
        }

        if (hours < 48)
        {
            return $"{hours}h";
        }

        if (hours < 24 * 8)
        {
            var h = hours % 24;
            return h == 0 ? $"{hours / 24}d" : $"{hours / 24}d{h}h";
        }

        if (hours < 24 * 365 * 2)
        {
            return $"{hours / 24}d";
        }

        if (hours < 24 * 365 * 8)
        {
            var dy = hours / 24 % 365;
            return dy == 0 ? $"{hours / 24 / 365}y" : $"{hours / 24 / 365}y{dy}d";
        }

        return $"{hours / 24 / 365}y";
    }
}

/// <summary>The JSONPath subset printer columns use: .a.b, .a[0], .a[*].b, .a[?(@.type=="Ready")].status, optionally in braces.</summary>
internal static class JsonPathLite
{
    public static JsonNode? First(JsonNode root, string path) => Evaluate(root, path).FirstOrDefault(n => n is not null);

    public static IEnumerable<JsonNode?> Evaluate(JsonNode root, string path)
    {
        path = path.Trim();
        if (path.StartsWith('{') && path.EndsWith('}'))
        {
            path = path[1..^1];
        }

        if (path.StartsWith('$'))
        {
            path = path[1..];
        }

        IEnumerable<JsonNode?> current = [root];
        var i = 0;
        while (i < path.Length)
        {
            if (path[i] == '.')
            {
                i++;
                var start = i;
                while (i < path.Length && path[i] != '.' && path[i] != '[')
                {
                    i++;
                }

                var field = path[start..i];
                if (field.Length == 0)
                {
                    continue;
                }

                current = current.Select(n => n is JsonObject o ? o[field] : null).ToList();
            }
            else if (path[i] == '[')
            {
                var end = FindClose(path, i);
                var inner = path[(i + 1)..end].Trim();
                i = end + 1;
                current = current.SelectMany(n => Index(n, inner)).ToList();
            }
            else
            {
                i++;
            }
        }

        return current;
    }

    private static int FindClose(string path, int open)
    {
        var depth = 0;
        var quote = '\0';
        for (var i = open; i < path.Length; i++)
        {
            var c = path[i];
            if (quote != '\0')
            {
                if (c == quote)
                {
                    quote = '\0';
                }
            }
            else if (c is '"' or '\'')
            {
                quote = c;
            }
            else if (c == '[')
            {
                depth++;
            }
            else if (c == ']' && --depth == 0)
            {
                return i;
            }
        }

        return path.Length - 1;
    }

    private static IEnumerable<JsonNode?> Index(JsonNode? node, string inner)
    {
        if (node is not JsonArray arr)
        {
            if (node is JsonObject o && (inner.StartsWith('\'') || inner.StartsWith('"')))
            {
                yield return o[inner[1..^1]];
            }

            yield break;
        }

        if (inner == "*")
        {
            foreach (var item in arr)
            {
                yield return item;
            }
        }
        else if (inner.StartsWith("?(", StringComparison.Ordinal) && inner.EndsWith(')'))
        {
            var expr = inner[2..^1].Trim();
            var op = expr.Contains("!=", StringComparison.Ordinal) ? "!=" : "==";
            var parts = expr.Split(op, 2);
            var left = parts[0].Trim();
            var right = parts.Length > 1 ? parts[1].Trim() : null;
            foreach (var item in arr)
            {
                if (item is null)
                {
                    continue;
                }

                var lv = left.StartsWith('@') ? First(item, left[1..]) : null;
                if (right is null)
                {
                    if (lv is not null)
                    {
                        yield return item;
                    }

                    continue;
                }

                var rv = right.Trim('"', '\'');
                var ls = lv is null ? null : Json.Str(lv) ?? lv.ToJsonString();
                if ((ls == rv) == (op == "=="))
                {
                    yield return item;
                }
            }
        }
        else if (int.TryParse(inner, out var idx))
        {
            if (idx < 0)
            {
                idx += arr.Count;
            }

            if (idx >= 0 && idx < arr.Count)
            {
                yield return arr[idx];
            }
        }
    }
}
