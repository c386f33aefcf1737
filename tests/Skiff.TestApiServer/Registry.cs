using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Skiff.TestApiServer;

/// <summary>Per-request write options from the query string.</summary>
internal sealed class WriteOptions
{
    public string FieldManager { get; init; } = "unknown";

    /// <summary>Strict, Warn (the server's default) or Ignore.</summary>
    public string FieldValidation { get; init; } = "Warn";

    public bool DryRun { get; init; }

    public bool Force { get; init; }

    public List<string> Warnings { get; } = [];
}

/// <summary>The apiserver's registry semantics on top of the store: create, update, status, patch, apply, delete.</summary>
internal sealed partial class Registry(ObjectStore store, ResourceCatalog catalog, TimeProvider clock)
{
    private static readonly ResourceType NamespaceType = new()
    {
        Group = "", Version = "v1", Kind = "Namespace", Plural = "namespaces", Singular = "namespace", Namespaced = false,
    };

    /// <summary>Cluster IPs handed out to Services, from 10.96.0.1 (the default service CIDR).</summary>
    private int _clusterIps;

    public ObjectStore Store => store;

    private string NextClusterIp()
    {
        var n = Interlocked.Increment(ref _clusterIps);
        return $"10.96.{(n / 250).ToString(CultureInfo.InvariantCulture)}.{(n % 250 + 1).ToString(CultureInfo.InvariantCulture)}";
    }

    private string Now() => clock.GetUtcNow().UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    public void EnsureNamespace(string name)
    {
        lock (store.Lock)
        {
            if (store.Get(NamespaceType, "", name) is null)
            {
                Create(catalog.Find("", "v1", "namespaces")!, "", new JsonObject { ["apiVersion"] = "v1", ["kind"] = "Namespace", ["metadata"] = new JsonObject { ["name"] = name } }, new WriteOptions { FieldManager = "kube-apiserver" });
            }
        }
    }

    private void RequireNamespace(ResourceType type, string ns)
    {
        if (type.Namespaced && store.Get(NamespaceType, "", ns) is null)
        {
            throw ApiError.NamespaceNotFound(ns);
        }
    }

    public JsonObject Create(ResourceType type, string ns, JsonObject body, WriteOptions opts, JsonNode? appliedFields = null)
    {
        lock (store.Lock)
        {
            var obj = Json.Clone(body);
            var meta = Json.Metadata(obj);
            CheckKind(type, obj);
            if (type.Namespaced)
            {
                var bodyNs = Json.Str(meta["namespace"]);
                if (bodyNs is { Length: > 0 } && bodyNs != ns)
                {
                    throw ApiError.BadRequest("the namespace of the provided object does not match the namespace sent on the request");
                }

                meta["namespace"] = ns;
            }
            else
            {
                meta.Remove("namespace");
            }

            if (Json.Str(meta["name"]) is not { Length: > 0 } && Json.Str(meta["generateName"]) is { Length: > 0 } prefix)
            {
                meta["name"] = prefix + RandomSuffix();
            }

            var name = Json.Str(meta["name"]) ?? "";
            if (name.Length == 0)
            {
                throw ApiError.Invalid(type, "", [FieldError.Required("metadata.name", "name or generateName is required")]);
            }

            RequireNamespace(type, ns);
            if (store.Get(type, ns, name) is not null)
            {
                throw ApiError.AlreadyExists(type, name);
            }

            foreach (var key in new[] { "uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink", "managedFields" })
            {
                meta.Remove(key);
            }

            meta["uid"] = Guid.NewGuid().ToString();
            meta["creationTimestamp"] = Now();
            if (type.TracksGeneration)
            {
                meta["generation"] = 1;
            }

            if (type.HasStatus)
            {
                // A kind with a status subresource ignores status on create; only /status writes it.
                obj.Remove("status");
            }

            PrepareBuiltIn(type, obj);
            Workloads.PrepareCreate(type, obj, NextClusterIp);
            Admit(type, obj, opts);
            if (appliedFields is null)
            {
                ManagedFields.RecordUpdate(null, obj, opts.FieldManager, type.ApiVersion, null, type, clock.GetUtcNow());
            }
            else
            {
                meta["managedFields"] = appliedFields.DeepClone();
            }

            SortMetadata(obj);
            return opts.DryRun ? obj : store.Put(type, obj, null);
        }
    }

    /// <summary>
    /// The one update path behind PUT, PATCH and apply, for the main resource and /status: preconditions, status rules,
    /// system metadata, admission, generation, no-op detection, and removal once the last finalizer goes.
    /// </summary>
    public JsonObject Update(ResourceType type, string ns, string name, string? subresource, Func<JsonObject, JsonObject> change, WriteOptions opts, bool managedByApply = false)
    {
        lock (store.Lock)
        {
            var current = store.Get(type, ns, name) ?? throw ApiError.NotFound(type, name);
            var candidate = change(Json.Clone(current));
            CheckKind(type, candidate);
            var meta = Json.Metadata(candidate);
            if (Json.Str(meta["name"]) is { } bodyName && bodyName != name)
            {
                throw ApiError.BadRequest($"the name of the object ({bodyName}) does not match the name on the URL ({name})");
            }

            if (type.Namespaced && Json.Str(meta["namespace"]) is { Length: > 0 } bodyNs && bodyNs != ns)
            {
                throw ApiError.BadRequest("the namespace of the provided object does not match the namespace sent on the request");
            }

            if (Json.Str(meta["resourceVersion"]) is { Length: > 0 } rv && rv != Json.MetaStr(current, "resourceVersion"))
            {
                throw ApiError.Conflict(type, name);
            }

            JsonObject result;
            if (subresource == "status")
            {
                result = Json.Clone(current);
                result.Remove("status");
                if (candidate["status"] is { } status)
                {
                    result["status"] = status.DeepClone();
                }

                if (managedByApply)
                {
                    Json.Metadata(result)["managedFields"] = meta["managedFields"]?.DeepClone();
                }
            }
            else
            {
                result = candidate;
                if (type.HasStatus)
                {
                    result.Remove("status");
                    if (current["status"] is { } status)
                    {
                        result["status"] = status.DeepClone();
                    }
                }

                var curMeta = Json.Metadata(current);
                foreach (var key in new[] { "uid", "creationTimestamp", "generation", "deletionTimestamp", "deletionGracePeriodSeconds", "name", "namespace" })
                {
                    meta.Remove(key);
                    if (curMeta[key] is { } v)
                    {
                        meta[key] = v.DeepClone();
                    }
                }

                meta.Remove("selfLink");
                if (!managedByApply)
                {
                    meta["managedFields"] = curMeta["managedFields"]?.DeepClone();
                }

                if (curMeta["deletionTimestamp"] is not null)
                {
                    var had = Finalizers(current);
                    var added = Finalizers(result).Where(f => !had.Contains(f)).ToList();
                    if (added.Count > 0)
                    {
                        throw ApiError.Invalid(type, name, [FieldError.Forbidden("metadata.finalizers", $"no new finalizers can be added if the object is being deleted, found new finalizers []string{{{string.Join(", ", added.Select(a => $"\"{a}\""))}}}")]);
                    }
                }
            }

            PrepareBuiltIn(type, result);
            if (subresource is null)
            {
                Workloads.KeepAllocated(type, current, result);
                if (Workloads.ValidateUpdate(type, current, result) is { Count: > 0 } immutable)
                {
                    throw ApiError.Invalid(type, name, immutable);
                }
            }

            Admit(type, result, opts);
            if (type.TracksGeneration && !JsonNode.DeepEquals(WithoutMetaAndStatus(current), WithoutMetaAndStatus(result)))
            {
                Json.Metadata(result)["generation"] = (Json.Long(current["metadata"]?["generation"]) ?? 0) + 1;
            }

            if (!managedByApply)
            {
                ManagedFields.RecordUpdate(current, result, opts.FieldManager, type.ApiVersion, subresource, type, clock.GetUtcNow());
            }

            Json.Metadata(result)["resourceVersion"] = Json.MetaStr(current, "resourceVersion");
            SortMetadata(result);
            if (JsonNode.DeepEquals(current, result) || opts.DryRun)
            {
                // The real server does not write (nor bump resourceVersion) when nothing changed.
                return opts.DryRun ? result : current;
            }

            if (Json.Metadata(result)["deletionTimestamp"] is not null && Finalizers(result).Count == 0)
            {
                store.Put(type, result, current);
                return store.Remove(type, result);
            }

            return store.Put(type, result, current);
        }
    }

    /// <summary>Server-side apply: create when missing, else merge by field ownership through <see cref="Update"/>.</summary>
    public (JsonObject Obj, bool Created) Apply(ResourceType type, string ns, string name, string? subresource, JsonObject config, WriteOptions opts)
    {
        lock (store.Lock)
        {
            CheckKind(type, config);
            if (Json.MetaStr(config, "name") is { } bodyName && bodyName != name)
            {
                throw ApiError.BadRequest($"the name of the object ({bodyName}) does not match the name on the URL ({name})");
            }

            var unknown = new List<string>();
            var cfg = Json.Clone(config);
            Decode(type, cfg, unknown);
            ReportUnknown(type, unknown, opts);
            var apiVersion = type.ApiVersion;
            if (store.Get(type, ns, name) is null)
            {
                if (subresource is not null)
                {
                    throw ApiError.NotFound(type, name);
                }

                var created = ManagedFields.Apply(null, cfg, opts.FieldManager, opts.Force, apiVersion, null, type, clock.GetUtcNow());
                Json.Metadata(created)["name"] = name;
                return (Create(type, ns, created, opts, Json.Metadata(created)["managedFields"] ?? new JsonArray()), true);
            }

            var updated = Update(type, ns, name, subresource,
                current => ManagedFields.Apply(current, cfg, opts.FieldManager, opts.Force, apiVersion, subresource, type, clock.GetUtcNow()),
                opts, managedByApply: true);
            return (updated, false);
        }
    }

    public JsonNode Delete(ResourceType type, string ns, string name, JsonObject? deleteOptions, WriteOptions opts)
    {
        lock (store.Lock)
        {
            var current = store.Get(type, ns, name) ?? throw ApiError.NotFound(type, name);
            if (deleteOptions?["preconditions"] is JsonObject pre)
            {
                if (Json.Str(pre["uid"]) is { } uid && uid != Json.MetaStr(current, "uid"))
                {
                    throw ApiError.Conflict(type, name, $"Precondition failed: UID in precondition: {uid}, UID in object meta: {Json.MetaStr(current, "uid")}");
                }

                if (Json.Str(pre["resourceVersion"]) is { } rv && rv != Json.MetaStr(current, "resourceVersion"))
                {
                    throw ApiError.Conflict(type, name, $"Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {Json.MetaStr(current, "resourceVersion")}");
                }
            }

            if (type.Plural == "namespaces" && type.Group.Length == 0)
            {
                return DeleteNamespace(type, current, opts);
            }

            if (Finalizers(current).Count > 0)
            {
                if (current["metadata"]?["deletionTimestamp"] is not null || opts.DryRun)
                {
                    return current;
                }

                var marked = Json.Clone(current);
                var meta = Json.Metadata(marked);
                meta["deletionTimestamp"] = Now();
                meta["deletionGracePeriodSeconds"] = 0;
                if (type.TracksGeneration)
                {
                    meta["generation"] = (Json.Long(meta["generation"]) ?? 0) + 1;
                }

                SortMetadata(marked);
                return store.Put(type, marked, current);
            }

            if (!opts.DryRun)
            {
                store.Remove(type, current);
            }

            return type.ReturnDeletedObject ? current : SuccessStatus(type, current);
        }
    }

    private JsonNode DeleteNamespace(ResourceType type, JsonObject ns, WriteOptions opts)
    {
        var name = Json.Name(ns);
        if (opts.DryRun)
        {
            return ns;
        }

        // The real namespace controller empties the namespace and then removes it; here that happens at once.
        foreach (var (key, obj) in store.InNamespace(name))
        {
            var t = catalog.All.First(t => t.StorageKey == key);
            store.Remove(t, obj);
        }

        var terminating = Json.Clone(ns);
        Json.Metadata(terminating)["deletionTimestamp"] = Now();
        terminating["status"] = new JsonObject { ["phase"] = "Terminating" };
        store.Remove(type, ns);
        return terminating;
    }

    public static JsonObject SuccessStatus(ResourceType type, JsonObject obj)
    {
        var details = new JsonObject { ["name"] = Json.Name(obj) };
        if (type.Group.Length > 0)
        {
            details["group"] = type.Group;
        }

        details["kind"] = type.Plural;
        details["uid"] = Json.MetaStr(obj, "uid");
        return new JsonObject
        {
            ["kind"] = "Status",
            ["apiVersion"] = "v1",
            ["metadata"] = new JsonObject(),
            ["status"] = "Success",
            ["details"] = details,
        };
    }

    private static List<string> Finalizers(JsonObject obj) =>
        (obj["metadata"]?["finalizers"] as JsonArray)?.Select(f => Json.Str(f) ?? "").ToList() ?? [];

    private static JsonObject WithoutMetaAndStatus(JsonObject obj)
    {
        var copy = new JsonObject();
        foreach (var (k, v) in obj)
        {
            if (k is not ("metadata" or "status" or "apiVersion" or "kind"))
            {
                copy[k] = v?.DeepClone();
            }
        }

        return copy;
    }

    private static void CheckKind(ResourceType type, JsonObject obj)
    {
        var kind = Json.Str(obj["kind"]);
        var apiVersion = Json.Str(obj["apiVersion"]);
        if (kind is not null && kind != type.Kind)
        {
            throw ApiError.BadRequest($"the kind in the data ({kind}) does not match the expected kind ({type.Kind})");
        }

        if (apiVersion is not null && apiVersion != type.ApiVersion)
        {
            throw ApiError.BadRequest($"the API version in the data ({apiVersion}) does not match the expected API version ({type.ApiVersion})");
        }

        obj["apiVersion"] = type.ApiVersion;
        obj["kind"] = type.Kind;
    }

    /// <summary>Decoding (unknown fields), defaulting and validation, in the apiserver's order.</summary>
    private void Admit(ResourceType type, JsonObject obj, WriteOptions opts)
    {
        var unknown = new List<string>();
        Decode(type, obj, unknown);
        ReportUnknown(type, unknown, opts);
        StructuralSchema.ApplyDefaults(obj, type.Schema);
        var errors = ValidateMetadata(type, obj);
        errors.AddRange(StructuralSchema.Validate(obj, type.Schema));
        if (errors.Count > 0)
        {
            throw ApiError.Invalid(type, Json.Name(obj), errors);
        }
    }

    /// <summary>Drops the fields the kind's schema (custom resource) or typed model (built-in kind) does not have; a mistyped value fails the request.</summary>
    private static void Decode(ResourceType type, JsonObject obj, List<string> unknown)
    {
        if (type.Schema is null && type.Model is not null)
        {
            if (ModelSchema.Decode(obj, type.Model, unknown) is { } typeError)
            {
                throw ApiError.BadRequest($"{type.Kind} in version \"{type.Version}\" cannot be handled as a {type.Kind}: {typeError}");
            }

            return;
        }

        StructuralSchema.Prune(obj, type.Schema, unknown);
    }

    private static void ReportUnknown(ResourceType type, List<string> unknown, WriteOptions opts)
    {
        if (unknown.Count == 0 || opts.FieldValidation == "Ignore")
        {
            return;
        }

        var list = string.Join(", ", unknown.Distinct().Select(u => $"unknown field \"{u}\""));
        if (opts.FieldValidation == "Strict")
        {
            throw ApiError.BadRequest($"{type.Kind} in version \"{type.Version}\" cannot be handled as a {type.Kind}: strict decoding error: {list}");
        }

        opts.Warnings.AddRange(unknown.Distinct().Select(u => $"unknown field \"{u}\""));
    }

    [GeneratedRegex(@"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")]
    private static partial Regex Dns1123Subdomain();

    private static List<FieldError> ValidateMetadata(ResourceType type, JsonObject obj)
    {
        var errors = new List<FieldError>();
        var name = Json.Name(obj);
        if (name.Length > 253 || !Dns1123Subdomain().IsMatch(name))
        {
            errors.Add(FieldError.Invalid("metadata.name", JsonValue.Create(name),
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"));
        }

        if (obj["metadata"]?["labels"] is JsonObject labels)
        {
            foreach (var (k, v) in labels)
            {
                if (Json.Str(v) is not { } s || s.Length > 63)
                {
                    errors.Add(FieldError.Invalid($"metadata.labels", v?.DeepClone(), "must be no more than 63 characters"));
                }
            }
        }

        return errors;
    }

    /// <summary>What the core registries do on write: Secret stringData folds into data; a Namespace gets its phase.</summary>
    private static void PrepareBuiltIn(ResourceType type, JsonObject obj)
    {
        if (type.Group.Length != 0)
        {
            return;
        }

        switch (type.Kind)
        {
            case "Secret":
                if (obj["stringData"] is JsonObject sd)
                {
                    var data = obj["data"] as JsonObject ?? new JsonObject();
                    foreach (var (k, v) in sd)
                    {
                        data[k] = Convert.ToBase64String(Encoding.UTF8.GetBytes(Json.Str(v) ?? ""));
                    }

                    obj["data"] = data;
                    obj.Remove("stringData");
                }

                obj["type"] ??= "Opaque";
                break;
            case "Namespace":
                obj["spec"] ??= new JsonObject { ["finalizers"] = new JsonArray("kubernetes") };
                obj["status"] ??= new JsonObject { ["phase"] = "Active" };
                break;
        }
    }

    /// <summary>Keeps metadata in the order the real server writes it, so YAML output reads familiar.</summary>
    private static void SortMetadata(JsonObject obj)
    {
        if (obj["metadata"] is not JsonObject meta)
        {
            return;
        }

        string[] order = ["annotations", "creationTimestamp", "deletionGracePeriodSeconds", "deletionTimestamp", "finalizers", "generateName", "generation", "labels", "managedFields", "name", "namespace", "ownerReferences", "resourceVersion", "uid"];
        var entries = meta.ToList();
        meta.Clear();
        foreach (var (k, v) in entries.OrderBy(e => Array.IndexOf(order, e.Key) is var i && i < 0 ? int.MaxValue : i).ThenBy(e => e.Key, StringComparer.Ordinal))
        {
            meta[k] = v;
        }

        if (meta["managedFields"] is null)
        {
            meta.Remove("managedFields");
        }
    }

    private static string RandomSuffix()
    {
        const string alphabet = "bcdfghjklmnpqrstvwxz2456789";
        return string.Concat(Enumerable.Range(0, 5).Select(_ => alphabet[RandomNumberGenerator.GetInt32(alphabet.Length)]));
    }
}
