using System.Globalization;
using System.Text.Json.Nodes;

namespace Skiff.TestApiServer;

/// <summary>
/// Field ownership (metadata.managedFields, FieldsV1) and server-side apply, after sigs.k8s.io/structured-merge-diff:
/// objects merge key by key, lists of <c>x-kubernetes-list-type: map</c> merge by their keys, <c>set</c> lists by value,
/// other lists are atomic. A path is a list of FieldsV1 elements ("f:spec", "k:{\"type\":\"Ready\"}", "v:\"x\"").
/// </summary>
/// <remarks>
/// Simplifications: ownership is tracked for leaves and list elements only (no "." for plain objects), element order
/// of merged lists is live order then new elements, and client-supplied managedFields are ignored.
/// </remarks>
internal static class ManagedFields
{
    private const char Sep = '\u001f';

    private static readonly HashSet<string> IdentityMeta =
    [
        "name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink",
        "deletionTimestamp", "deletionGracePeriodSeconds", "generateName",
    ];

    private static readonly JsonObject MetadataSchema = (JsonObject)JsonNode.Parse("""
        {"type":"object","properties":{
          "labels":{"type":"object","additionalProperties":{"type":"string"}},
          "annotations":{"type":"object","additionalProperties":{"type":"string"}},
          "finalizers":{"type":"array","x-kubernetes-list-type":"set","items":{"type":"string"}},
          "ownerReferences":{"type":"array","x-kubernetes-list-type":"map","x-kubernetes-list-map-keys":["uid"],"items":{"type":"object"}}}}
        """)!;

    /// <summary>Records the fields an update changed as owned by <paramref name="manager"/> (operation Update), taking them from everyone else.</summary>
    public static void RecordUpdate(JsonObject? oldObj, JsonObject newObj, string manager, string apiVersion, string? subresource, ResourceType type, DateTimeOffset now)
    {
        var entries = Entries(oldObj);
        var (changed, removed) = Diff(Strip(oldObj, type, subresource), Strip(newObj, type, subresource), type.ApplySchema);
        if (changed.Count == 0 && removed.Count == 0 && oldObj is not null)
        {
            Json.Metadata(newObj)["managedFields"] = ToJson(entries);
            return;
        }

        foreach (var e in entries)
        {
            e.Fields.RemoveWhere(p => changed.Contains(p) || removed.Any(r => IsUnder(p, r)));
        }

        var mine = entries.FirstOrDefault(e => e.Manager == manager && e.Operation == "Update" && e.Subresource == subresource);
        if (mine is null)
        {
            mine = new Entry(manager, "Update", apiVersion, subresource, []);
            entries.Add(mine);
        }

        mine.Fields.UnionWith(changed);
        mine.Time = now;
        mine.ApiVersion = apiVersion;
        Json.Metadata(newObj)["managedFields"] = ToJson(entries.Where(e => e.Fields.Count > 0));
    }

    /// <summary>
    /// Server-side apply of <paramref name="config"/> by <paramref name="manager"/> onto <paramref name="live"/> (null: create).
    /// Throws the apiserver's 409 when another manager owns a field the config sets to a different value, unless forced.
    /// </summary>
    public static JsonObject Apply(JsonObject? live, JsonObject config, string manager, bool force, string apiVersion, string? subresource, ResourceType type, DateTimeOffset now)
    {
        var entries = Entries(live);
        var applied = Strip(config, type, subresource);
        var appliedFields = Diff(null, applied, type.ApplySchema).Changed;
        var current = live is null ? new JsonObject() : Json.Clone(live);
        var conflicts = new List<(string Manager, string Path)>();
        foreach (var e in entries.Where(e => !(e.Manager == manager && e.Operation == "Apply" && e.Subresource == subresource)))
        {
            foreach (var path in e.Fields.Where(appliedFields.Contains))
            {
                if (!IsElement(path) && !JsonNode.DeepEquals(ValueAt(current, path, type.ApplySchema), ValueAt(applied, path, type.ApplySchema)))
                {
                    conflicts.Add((e.Encoded, path));
                }
            }
        }

        if (conflicts.Count > 0 && !force && !(manager == "kubectl" && CoveredByLastApplied(live, conflicts, type)))
        {
            throw ConflictError(conflicts, entries);
        }

        foreach (var (enc, path) in conflicts)
        {
            entries.First(e => e.Encoded == enc).Fields.Remove(path);
        }

        var mine = entries.FirstOrDefault(e => e.Manager == manager && e.Operation == "Apply" && e.Subresource == subresource);
        var others = entries.Where(e => e != mine).SelectMany(e => e.Fields).ToHashSet();
        if (mine is not null)
        {
            var dropped = mine.Fields.Where(p => !appliedFields.Contains(p) && !others.Any(o => IsUnder(o, p))).ToHashSet();
            // A dropped list element goes whole: removing its key fields first would leave it unfindable by its key.
            foreach (var path in dropped.Where(p => !dropped.Any(d => d != p && IsUnder(p, d))).OrderByDescending(p => p.Length))
            {
                RemoveAt(current, path, type.ApplySchema);
            }
        }
        else
        {
            mine = new Entry(manager, "Apply", apiVersion, subresource, []);
            entries.Add(mine);
        }

        Merge(current, applied, type.ApplySchema);
        foreach (var key in new[] { "apiVersion", "kind" })
        {
            if (config[key] is { } v)
            {
                current[key] = v.DeepClone();
            }
        }

        var meta = Json.Metadata(current);
        foreach (var key in new[] { "name", "namespace", "generateName" })
        {
            if (config["metadata"]?[key] is { } v && !meta.ContainsKey(key))
            {
                meta[key] = v.DeepClone();
            }
        }

        if (mine.Fields.SetEquals(appliedFields) && live is not null && JsonNode.DeepEquals(Strip(live, type, subresource), Strip(current, type, subresource)))
        {
            meta["managedFields"] = ToJson(entries);
            return current;
        }

        mine.Fields = appliedFields;
        mine.Time = now;
        mine.ApiVersion = apiVersion;
        meta["managedFields"] = ToJson(entries.Where(e => e.Fields.Count > 0));
        return current;
    }

    /// <summary>
    /// The apiserver's lastAppliedManager: kubectl's server-side apply may take over, without --force-conflicts, the
    /// fields that the kubectl.kubernetes.io/last-applied-configuration annotation of a client-side apply lists.
    /// </summary>
    private static bool CoveredByLastApplied(JsonObject? live, List<(string Manager, string Path)> conflicts, ResourceType type)
    {
        if (Json.Str(live?["metadata"]?["annotations"]?["kubectl.kubernetes.io/last-applied-configuration"]) is not { } text)
        {
            return false;
        }

        try
        {
            if (JsonNode.Parse(text) is not JsonObject lastApplied)
            {
                return false;
            }

            var allowed = Diff(null, Strip(lastApplied, type, null), type.ApplySchema).Changed;
            return conflicts.All(c => allowed.Contains(c.Path));
        }
        catch (System.Text.Json.JsonException)
        {
            return false;
        }
    }

    private static ApiError ConflictError(List<(string Manager, string Path)> conflicts, List<Entry> entries)
    {
        string Print(string encoded) => entries.First(e => e.Encoded == encoded).Describe();
        var causes = new JsonArray();
        foreach (var (m, p) in conflicts)
        {
            causes.Add(new JsonObject { ["reason"] = "FieldManagerConflict", ["message"] = $"conflict with {Print(m)}", ["field"] = Render(p) });
        }

        string message;
        if (conflicts.Count == 1)
        {
            message = $"Apply failed with 1 conflict: conflict with {Print(conflicts[0].Manager)}: {Render(conflicts[0].Path)}";
        }
        else
        {
            var lines = new List<string>();
            foreach (var group in conflicts.GroupBy(c => c.Manager).OrderBy(g => g.Key, StringComparer.Ordinal))
            {
                lines.Add($"conflicts with {Print(group.Key)}:");
                lines.AddRange(group.Select(c => $"- {Render(c.Path)}"));
            }

            message = $"Apply failed with {conflicts.Count} conflicts: {string.Join("\n", lines)}";
        }

        return new ApiError(409, ApiError.StatusBody(409, "Conflict", message, new JsonObject { ["causes"] = causes }));
    }

    /// <summary>A path as the apiserver prints it: .spec.app.image, .status.conditions[type="Ready"], .metadata.finalizers[="x"].</summary>
    internal static string Render(string path)
    {
        var sb = new System.Text.StringBuilder();
        foreach (var el in path.Split(Sep))
        {
            if (el.StartsWith("f:", StringComparison.Ordinal))
            {
                sb.Append('.').Append(el[2..]);
            }
            else if (el.StartsWith("k:", StringComparison.Ordinal))
            {
                var keys = (JsonObject)JsonNode.Parse(el[2..])!;
                sb.Append('[').Append(string.Join(",", keys.Select(k => $"{k.Key}={Json.Serialize(k.Value)}"))).Append(']');
            }
            else if (el.StartsWith("v:", StringComparison.Ordinal))
            {
                sb.Append("[=").Append(el[2..]).Append(']');
            }
        }

        return sb.ToString();
    }

    private static bool IsElement(string path) => path[(path.LastIndexOf(Sep) + 1)..] is var last && (last.StartsWith("k:", StringComparison.Ordinal) || last.StartsWith("v:", StringComparison.Ordinal));

    private static bool IsUnder(string path, string prefix) => path == prefix || path.StartsWith(prefix + Sep, StringComparison.Ordinal);

    /// <summary>The part of an object that field ownership covers: no identity metadata, and only status (for /status) or no status (main resource of a kind with a status subresource).</summary>
    private static JsonObject? Strip(JsonObject? obj, ResourceType type, string? subresource)
    {
        if (obj is null)
        {
            return null;
        }

        var copy = new JsonObject();
        foreach (var (key, value) in obj)
        {
            if (key is "apiVersion" or "kind")
            {
                continue;
            }

            if (subresource == "status" ? key != "status" : key == "status" && type.HasStatus)
            {
                continue;
            }

            if (key == "metadata" && value is JsonObject meta)
            {
                var m = new JsonObject();
                foreach (var (mk, mv) in meta)
                {
                    if (!IdentityMeta.Contains(mk))
                    {
                        m[mk] = mv?.DeepClone();
                    }
                }

                if (m.Count > 0)
                {
                    copy["metadata"] = m;
                }

                continue;
            }

            copy[key] = value?.DeepClone();
        }

        return copy;
    }

    private static JsonObject? SchemaOf(JsonObject? parentSchema, string key, bool root) =>
        root && key == "metadata" ? MetadataSchema : StructuralSchema.Child(parentSchema, key);

    private static string ListType(JsonObject? schema) => Json.Str(schema?["x-kubernetes-list-type"]) ?? "atomic";

    private static string ElementKey(JsonObject item, JsonObject schema)
    {
        var keys = new JsonObject();
        foreach (var k in (schema["x-kubernetes-list-map-keys"] as JsonArray ?? []).Select(k => Json.Str(k)!).Order(StringComparer.Ordinal))
        {
            keys[k] = item[k]?.DeepClone();
        }

        return "k:" + Json.Serialize(keys);
    }

    /// <summary>Leaves (and list elements) that differ between two objects: those present in <paramref name="b"/>, and those only in <paramref name="a"/>.</summary>
    private static (HashSet<string> Changed, HashSet<string> Removed) Diff(JsonNode? a, JsonNode? b, JsonObject? rootSchema)
    {
        var changed = new HashSet<string>();
        var removed = new HashSet<string>();
        DiffNode(a, b, rootSchema, "", true, changed, removed);
        return (changed, removed);
    }

    private static void DiffNode(JsonNode? a, JsonNode? b, JsonObject? schema, string path, bool root, HashSet<string> changed, HashSet<string> removed)
    {
        var atomicMap = Json.Str(schema?["x-kubernetes-map-type"]) == "atomic";
        if ((a is JsonObject || a is null) && b is JsonObject bo && !atomicMap && (bo.Count > 0 || root))
        {
            var ao = a as JsonObject;
            foreach (var (key, bv) in bo)
            {
                DiffNode(ao?[key], bv, SchemaOf(schema, key, root), Join(path, "f:" + key), false, changed, removed);
            }

            if (ao is not null)
            {
                foreach (var (key, av) in ao)
                {
                    if (!bo.ContainsKey(key))
                    {
                        DiffNode(av, null, SchemaOf(schema, key, root), Join(path, "f:" + key), false, changed, removed);
                    }
                }
            }

            return;
        }

        if (a is JsonObject ao2 && b is null && !atomicMap && ao2.Count > 0)
        {
            removed.Add(path);
            return;
        }

        var listType = ListType(schema);
        if (b is JsonArray ba && (a is JsonArray || a is null) && listType is "map" or "set")
        {
            var aa = a as JsonArray ?? [];
            var items = schema!["items"] as JsonObject;
            var aKeys = aa.Select(i => ElementId(i, schema)).ToList();
            var bKeys = ba.Select(i => ElementId(i, schema)).ToList();
            for (var i = 0; i < ba.Count; i++)
            {
                var el = Join(path, bKeys[i]);
                var ai = aKeys.IndexOf(bKeys[i]);
                if (ai < 0)
                {
                    changed.Add(el);
                }

                if (listType == "map")
                {
                    DiffNode(ai < 0 ? null : aa[ai], ba[i], items, el, false, changed, removed);
                }
            }

            foreach (var k in aKeys.Where(k => !bKeys.Contains(k)))
            {
                removed.Add(Join(path, k));
            }

            return;
        }

        if (b is null && a is not null)
        {
            removed.Add(path);
        }
        else if (b is not null && !JsonNode.DeepEquals(a, b))
        {
            changed.Add(path);
        }
    }

    private static string ElementId(JsonNode? item, JsonObject schema) =>
        ListType(schema) == "map" && item is JsonObject o ? ElementKey(o, schema) : "v:" + Json.Serialize(item);

    private static string Join(string path, string el) => path.Length == 0 ? el : path + Sep + el;

    private static JsonNode? ValueAt(JsonNode? node, string path, JsonObject? schema)
    {
        var root = true;
        foreach (var el in path.Split(Sep))
        {
            if (el.StartsWith("f:", StringComparison.Ordinal))
            {
                schema = SchemaOf(schema, el[2..], root);
                node = (node as JsonObject)?[el[2..]];
            }
            else
            {
                node = (node as JsonArray)?.FirstOrDefault(i => schema is not null && ElementId(i, schema) == el);
                schema = schema?["items"] as JsonObject;
            }

            root = false;
            if (node is null)
            {
                return null;
            }
        }

        return node;
    }

    private static void RemoveAt(JsonObject obj, string path, JsonObject? schema)
    {
        var parts = path.Split(Sep);
        JsonNode? node = obj;
        var root = true;
        for (var i = 0; i < parts.Length; i++)
        {
            var el = parts[i];
            var last = i == parts.Length - 1;
            if (el.StartsWith("f:", StringComparison.Ordinal))
            {
                if (node is not JsonObject o)
                {
                    return;
                }

                if (last)
                {
                    o.Remove(el[2..]);
                    return;
                }

                schema = SchemaOf(schema, el[2..], root);
                node = o[el[2..]];
            }
            else
            {
                if (node is not JsonArray arr || schema is null)
                {
                    return;
                }

                var s = schema;
                var item = arr.FirstOrDefault(x => ElementId(x, s) == el);
                if (last)
                {
                    if (item is not null)
                    {
                        arr.Remove(item);
                    }

                    return;
                }

                schema = schema["items"] as JsonObject;
                node = item;
            }

            root = false;
        }
    }

    /// <summary>Merges an applied configuration into the live object by the schema's map/list semantics.</summary>
    private static void Merge(JsonObject target, JsonObject? applied, JsonObject? schema, bool root = true)
    {
        if (applied is null)
        {
            return;
        }

        foreach (var (key, value) in applied)
        {
            var childSchema = SchemaOf(schema, key, root);
            if (value is JsonObject vo && target[key] is JsonObject to && Json.Str(childSchema?["x-kubernetes-map-type"]) != "atomic")
            {
                Merge(to, vo, childSchema, false);
            }
            else if (value is JsonArray va && target[key] is JsonArray ta && ListType(childSchema) is "map" or "set")
            {
                foreach (var item in va)
                {
                    var id = ElementId(item, childSchema!);
                    var existing = ta.FirstOrDefault(t => ElementId(t, childSchema!) == id);
                    if (existing is JsonObject eo && item is JsonObject io)
                    {
                        Merge(eo, io, childSchema!["items"] as JsonObject, false);
                    }
                    else if (existing is null)
                    {
                        ta.Add(item?.DeepClone());
                    }
                }
            }
            else
            {
                target[key] = value?.DeepClone();
            }
        }
    }

    private static List<Entry> Entries(JsonObject? obj)
    {
        var list = new List<Entry>();
        if (obj?["metadata"]?["managedFields"] is not JsonArray arr)
        {
            return list;
        }

        foreach (var e in arr.OfType<JsonObject>())
        {
            var fields = new HashSet<string>();
            if (e["fieldsV1"] is JsonObject f)
            {
                FromFieldsV1(f, "", fields);
            }

            list.Add(new Entry(Json.Str(e["manager"]) ?? "", Json.Str(e["operation"]) ?? "Update", Json.Str(e["apiVersion"]) ?? "", Json.Str(e["subresource"]), fields)
            {
                Time = DateTimeOffset.TryParse(Json.Str(e["time"]), CultureInfo.InvariantCulture, out var t) ? t : null,
            });
        }

        return list;
    }

    private static void FromFieldsV1(JsonObject node, string path, HashSet<string> into)
    {
        foreach (var (key, value) in node)
        {
            if (key == ".")
            {
                into.Add(path);
            }
            else if (value is JsonObject child && child.Count > 0)
            {
                FromFieldsV1(child, Join(path, key), into);
            }
            else
            {
                into.Add(Join(path, key));
            }
        }
    }

    private static JsonArray ToJson(IEnumerable<Entry> entries)
    {
        var arr = new JsonArray();
        foreach (var e in entries)
        {
            var tree = new JsonObject();
            foreach (var path in e.Fields.Order(StringComparer.Ordinal))
            {
                var node = tree;
                foreach (var el in path.Split(Sep))
                {
                    if (node[el] is not JsonObject next)
                    {
                        next = new JsonObject();
                        node[el] = next;
                    }

                    node = next;
                }
            }

            MarkSelf(tree);
            var o = new JsonObject { ["manager"] = e.Manager, ["operation"] = e.Operation, ["apiVersion"] = e.ApiVersion };
            if (e.Time is { } time)
            {
                o["time"] = time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);
            }

            o["fieldsType"] = "FieldsV1";
            o["fieldsV1"] = tree;
            if (e.Subresource is not null)
            {
                o["subresource"] = e.Subresource;
            }

            arr.Add(o);
        }

        return arr;
    }

    /// <summary>An owned list element that also has owned children gets "." for itself, as FieldsV1 writes it.</summary>
    private static void MarkSelf(JsonObject tree)
    {
        foreach (var (key, value) in tree.ToList())
        {
            if (value is JsonObject child && child.Count > 0)
            {
                MarkSelf(child);
                if (key.StartsWith("k:", StringComparison.Ordinal) && !child.ContainsKey("."))
                {
                    var copy = new JsonObject { ["."] = new JsonObject() };
                    foreach (var (k, v) in child.ToList())
                    {
                        child.Remove(k);
                        copy[k] = v;
                    }

                    tree[key] = copy;
                }
            }
        }
    }

    private sealed class Entry(string manager, string operation, string apiVersion, string? subresource, HashSet<string> fields)
    {
        public string Manager { get; } = manager;

        public string Operation { get; } = operation;

        public string ApiVersion { get; set; } = apiVersion;

        public string? Subresource { get; } = subresource;

        public HashSet<string> Fields { get; set; } = fields;

        public DateTimeOffset? Time { get; set; }

        public string Encoded => $"{Manager}|{Operation}|{Subresource}";

        /// <summary>How conflict messages name a manager (printManager in the apiserver).</summary>
        public string Describe()
        {
            var s = Json.Serialize(JsonValue.Create(Manager));
            if (Subresource is not null)
            {
                s += $" with subresource \"{Subresource}\"";
            }

            if (Operation == "Update")
            {
                s += Time is { } t
                    ? $" using {ApiVersion} at {t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture)}"
                    : $" using {ApiVersion}";
            }

            return s;
        }
    }
}
