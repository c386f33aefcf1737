using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;

namespace Skiff.TestApiServer;

/// <summary>The HTTP surface: discovery, OpenAPI, and the REST verbs on every resource, with watch and Table output.</summary>
internal sealed class ApiHandler(ResourceCatalog catalog, Registry registry, OpenApi openApi, TestApiServerOptions options, TimeProvider clock, Func<string> serverAddress, CancellationToken stopping)
{
    private ObjectStore Store => registry.Store;

    public async Task HandleAsync(HttpContext ctx, RequestInfo info)
    {
        var path = ctx.Request.Path.Value ?? "/";
        if (!info.IsResource)
        {
            await NonResourceAsync(ctx, path.TrimEnd('/'));
            return;
        }

        var type = catalog.Find(info.Group, info.Version, info.Resource) ?? throw ApiError.PathNotFound();
        if (info.Subresource.Length > 0 && !(info.Subresource == "status" && type.HasStatus))
        {
            throw ApiError.PathNotFound();
        }

        var ns = type.Namespaced ? info.Namespace : "";
        switch (info.Verb)
        {
            case "get":
            {
                var obj = Store.Get(type, ns, info.Name) ?? throw ApiError.NotFound(type, info.Name);
                await WriteObjectAsync(ctx, 200, type, obj);
                break;
            }

            case "list":
                await ListAsync(ctx, type, info);
                break;
            case "watch":
                await WatchAsync(ctx, type, info);
                break;
            case "create":
            {
                RequireNamespaceInPath(type, info);
                var body = await ReadObjectAsync(ctx);
                var opts = WriteOptionsOf(ctx);
                var created = registry.Create(type, ns, body, opts);
                await WriteObjectAsync(ctx, 201, type, created, opts);
                break;
            }

            case "update":
            {
                var body = await ReadObjectAsync(ctx);
                var opts = WriteOptionsOf(ctx);
                var sub = info.Subresource.Length > 0 ? info.Subresource : null;
                var updated = registry.Update(type, ns, info.Name, sub, _ => body, opts);
                await WriteObjectAsync(ctx, 200, type, updated, opts);
                break;
            }

            case "patch":
                await PatchAsync(ctx, type, ns, info);
                break;
            case "delete":
            {
                var text = await ReadBodyAsync(ctx);
                var deleteOptions = text.Length > 0 ? Yaml.ParseOne(text) as JsonObject : null;
                var opts = WriteOptionsOf(ctx);
                var result = registry.Delete(type, ns, info.Name, deleteOptions, opts);
                if (result is JsonObject o && Json.Str(o["kind"]) != "Status")
                {
                    await WriteObjectAsync(ctx, 200, type, o, opts);
                }
                else
                {
                    await WriteJsonAsync(ctx, 200, result);
                }

                break;
            }

            case "deletecollection":
            {
                var opts = WriteOptionsOf(ctx);
                var (items, rv) = Store.List(type, type.Namespaced && info.Namespace.Length > 0 ? ns : null);
                var labels = LabelSelector.Parse(ctx.Request.Query["labelSelector"]);
                var fields = FieldSelector.Parse(ctx.Request.Query["fieldSelector"], type);
                var deleted = new List<JsonObject>();
                foreach (var item in items.Where(i => labels.Matches(i) && fields.Matches(i)))
                {
                    if (registry.Delete(type, Json.Namespace(item), Json.Name(item), null, opts) is JsonObject d)
                    {
                        deleted.Add(Json.Str(d["kind"]) == "Status" ? item : d);
                    }
                }

                await WriteListAsync(ctx, type, deleted, rv, null, null);
                break;
            }

            default:
                throw ApiError.MethodNotAllowed($"the server does not allow this method on the requested resource");
        }

    }

    private static void RequireNamespaceInPath(ResourceType type, RequestInfo info)
    {
        if (type.Namespaced && info.Namespace.Length == 0)
        {
            throw ApiError.PathNotFound();
        }
    }

    private async Task NonResourceAsync(HttpContext ctx, string path)
    {
        switch (path)
        {
            case "/version":
                await WriteJsonAsync(ctx, 200, Discovery.Version());
                return;
            case "/api":
                await WriteJsonAsync(ctx, 200, Discovery.CoreVersions(serverAddress()));
                return;
            case "/apis":
                await WriteJsonAsync(ctx, 200, Discovery.GroupList(catalog));
                return;
            case "/healthz" or "/readyz" or "/livez":
                ctx.Response.ContentType = "text/plain; charset=utf-8";
                await ctx.Response.WriteAsync("ok");
                return;
            case "/openapi/v3":
                await WriteTextAsync(ctx, 200, openApi.Index());
                return;
        }

        if (path.StartsWith("/openapi/v3/", StringComparison.Ordinal) && openApi.Document(path["/openapi/v3/".Length..]) is { } doc)
        {
            await WriteTextAsync(ctx, 200, doc);
            return;
        }

        var parts = path.Trim('/').Split('/');
        JsonObject? answer = parts switch
        {
            ["api", var v] when v == "v1" => Discovery.ResourceList(catalog, "", v),
            ["apis", var g] => Discovery.GroupDoc(catalog, g),
            ["apis", var g, var v] => Discovery.ResourceList(catalog, g, v),
            _ => null,
        };
        if (answer is null)
        {
            // Includes /openapi/v2: kubectl asks for protobuf there and proceeds without it on 404.
            throw ApiError.PathNotFound();
        }

        await WriteJsonAsync(ctx, 200, answer);
    }

    private async Task ListAsync(HttpContext ctx, ResourceType type, RequestInfo info)
    {
        var q = ctx.Request.Query;
        var labels = LabelSelector.Parse(q["labelSelector"]);
        var fields = FieldSelector.Parse(q["fieldSelector"], type);
        var (all, rv) = Store.List(type, type.Namespaced && info.Namespace.Length > 0 ? info.Namespace : null);
        var items = all.Where(o => labels.Matches(o) && fields.Matches(o)).ToList();
        string? next = null;
        long? remaining = null;
        if (q["continue"].ToString() is { Length: > 0 } token)
        {
            var after = DecodeContinue(token);
            items = items.Where(o => string.CompareOrdinal(SortKey(o), after) > 0).ToList();
        }

        if (int.TryParse(q["limit"], out var limit) && limit > 0 && items.Count > limit)
        {
            remaining = items.Count - limit;
            items = items.Take(limit).ToList();
            next = EncodeContinue(SortKey(items[^1]));
        }

        await WriteListAsync(ctx, type, items, rv, next, remaining);
    }

    private static string SortKey(JsonObject o) => Json.Namespace(o).Length == 0 ? Json.Name(o) : $"{Json.Namespace(o)}/{Json.Name(o)}";

    private static string EncodeContinue(string key) =>
        Convert.ToBase64String(Encoding.UTF8.GetBytes(Json.Serialize(new JsonObject { ["v"] = "meta.k8s.io/v1", ["start"] = key })));

    private static string DecodeContinue(string token)
    {
        try
        {
            return Json.Str(JsonNode.Parse(Convert.FromBase64String(token))?["start"]) ?? "";
        }
        catch (Exception e) when (e is FormatException or JsonException)
        {
            throw ApiError.BadRequest("continue key is not valid: illegal base64 data");
        }
    }

    private async Task PatchAsync(HttpContext ctx, ResourceType type, string ns, RequestInfo info)
    {
        var contentType = (ctx.Request.ContentType ?? "").Split(';')[0].Trim();
        var text = await ReadBodyAsync(ctx);
        var sub = info.Subresource.Length > 0 ? info.Subresource : null;
        var q = ctx.Request.Query;
        if (contentType == "application/apply-patch+yaml")
        {
            if (q["fieldManager"].ToString().Length == 0)
            {
                var cause = new JsonObject { ["reason"] = "FieldValueRequired", ["message"] = "Required value: is required for apply patch", ["field"] = "fieldManager" };
                throw new ApiError(422, ApiError.StatusBody(422, "Invalid", "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                    new JsonObject { ["group"] = "meta.k8s.io", ["kind"] = "PatchOptions", ["causes"] = new JsonArray(cause) }));
            }

            var config = ParseBody(text, contentType) as JsonObject ?? throw ApiError.BadRequest("apply patch must be an object");
            var opts = WriteOptionsOf(ctx);
            var (obj, created) = registry.Apply(type, ns, info.Name, sub, config, opts);
            await WriteObjectAsync(ctx, created ? 201 : 200, type, obj, opts);
            return;
        }

        var patch = ParseBody(text, "application/json");
        Func<JsonObject, JsonObject> change = contentType switch
        {
            "application/merge-patch+json" or "application/strategic-merge-patch+json" =>
                current => Patches.MergePatch(current, patch) as JsonObject ?? throw ApiError.BadRequest("patch must result in an object"),
            "application/json-patch+json" =>
                current => Patches.JsonPatch(current, patch as JsonArray ?? throw ApiError.BadRequest("json patch must be an array")) as JsonObject
                    ?? throw ApiError.BadRequest("patch must result in an object"),
            _ => throw ApiError.UnsupportedMediaType(contentType),
        };
        var options = WriteOptionsOf(ctx);
        var updated = registry.Update(type, ns, info.Name, sub, change, options);
        await WriteObjectAsync(ctx, 200, type, updated, options);
    }

    private async Task WatchAsync(HttpContext ctx, ResourceType type, RequestInfo info)
    {
        var q = ctx.Request.Query;
        var labels = LabelSelector.Parse(q["labelSelector"]);
        var fields = FieldSelector.Parse(q["fieldSelector"], type);
        var ns = type.Namespaced && info.Namespace.Length > 0 ? info.Namespace : null;
        var name = info.Name.Length > 0 ? info.Name : null;
        long? fromRv = long.TryParse(q["resourceVersion"], out var rv) ? rv : null;
        var bookmarks = IsTrue(q["allowWatchBookmarks"]);
        var sendInitial = IsTrue(q["sendInitialEvents"]);
        var timeout = int.TryParse(q["timeoutSeconds"], out var secs) && secs > 0 ? TimeSpan.FromSeconds(secs) : options.DefaultWatchTimeout;
        var asTable = Tables.Wanted(ctx.Request.Headers.Accept);

        ctx.Response.StatusCode = 200;
        ctx.Response.ContentType = "application/json";
        Watcher watcher;
        try
        {
            watcher = Store.Subscribe(type, fromRv, bookmarks, sendInitial);
        }
        catch (ExpiredException e)
        {
            var status = ApiError.StatusBody(410, "Expired", e.Message);
            await WriteLineAsync(ctx, new JsonObject { ["type"] = "ERROR", ["object"] = status });
            return;
        }

        using var _ = watcher;
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted, watcher.Dropped.Token, stopping);
        cts.CancelAfter(timeout);
        bool Matches(JsonObject? o) =>
            o is not null && (ns is null || Json.Namespace(o) == ns) && (name is null || Json.Name(o) == name) && labels.Matches(o) && fields.Matches(o);
        try
        {
            await ctx.Response.StartAsync(cts.Token);
            await ctx.Response.Body.FlushAsync(cts.Token);
            await foreach (var e in watcher.Events.Reader.ReadAllAsync(cts.Token))
            {
                string? kind;
                if (e.Type == "BOOKMARK")
                {
                    var meta = new JsonObject { ["resourceVersion"] = e.Rv.ToString(CultureInfo.InvariantCulture) };
                    if (e.InitialEventsEnd)
                    {
                        meta["annotations"] = new JsonObject { ["k8s.io/initial-events-end"] = "true" };
                    }

                    await WriteLineAsync(ctx, new JsonObject
                    {
                        ["type"] = "BOOKMARK",
                        ["object"] = new JsonObject { ["kind"] = type.Kind, ["apiVersion"] = type.ApiVersion, ["metadata"] = meta },
                    }, cts.Token);
                    continue;
                }

                var now = Matches(e.Object);
                var before = e.Type == "MODIFIED" && Matches(e.Previous);
                kind = e.Type switch
                {
                    "ADDED" when now => "ADDED",
                    "MODIFIED" when now && before => "MODIFIED",
                    "MODIFIED" when now => "ADDED",
                    "MODIFIED" when before => "DELETED",
                    "DELETED" when now => "DELETED",
                    _ => null,
                };
                if (kind is null)
                {
                    continue;
                }

                var obj = Present(type, e.Object!);
                JsonNode payload = asTable ? Tables.Build(type, [obj], e.Rv, null, q["includeObject"].ToString(), clock.GetUtcNow()) : obj;
                await WriteLineAsync(ctx, new JsonObject { ["type"] = kind, ["object"] = payload.DeepClone() }, cts.Token);
            }
        }
        catch (OperationCanceledException)
        {
            // Timeout, client gone, watch dropped by a fault, or server stopping: the stream just ends.
        }
        finally
        {
            Store.Unsubscribe(watcher);
        }
    }

    private static bool IsTrue(Microsoft.Extensions.Primitives.StringValues v) => v.ToString() is "true" or "1" or "True";

    private static async Task WriteLineAsync(HttpContext ctx, JsonObject line, CancellationToken ct = default)
    {
        var bytes = Encoding.UTF8.GetBytes(Json.Serialize(line) + "\n");
        await ctx.Response.Body.WriteAsync(bytes, ct);
        await ctx.Response.Body.FlushAsync(ct);
    }

    /// <summary>An object as this version of its resource presents it (one store serves every version of a CRD).</summary>
    private static JsonObject Present(ResourceType type, JsonObject obj)
    {
        if (Json.Str(obj["apiVersion"]) == type.ApiVersion)
        {
            return obj;
        }

        var copy = Json.Clone(obj);
        copy["apiVersion"] = type.ApiVersion;
        return copy;
    }

    private WriteOptions WriteOptionsOf(HttpContext ctx)
    {
        var q = ctx.Request.Query;
        var manager = q["fieldManager"].ToString();
        if (manager.Length == 0)
        {
            // The apiserver names an unnamed manager after the client: the user agent up to its first '/'.
            manager = ctx.Request.Headers.UserAgent.ToString().Split('/')[0];
            if (manager.Length == 0)
            {
                manager = "unknown";
            }
        }

        var validation = q["fieldValidation"].ToString();
        if (validation.Length > 0 && validation is not ("Strict" or "Warn" or "Ignore"))
        {
            throw ApiError.BadRequest($"fieldValidation must be one of \"Ignore\", \"Warn\", or \"Strict\", got: {validation}");
        }

        return new WriteOptions
        {
            FieldManager = manager,
            FieldValidation = validation.Length > 0 ? validation : "Warn",
            DryRun = q["dryRun"].ToString() == "All",
            Force = IsTrue(q["force"]),
        };
    }

    private static async Task<string> ReadBodyAsync(HttpContext ctx)
    {
        using var reader = new StreamReader(ctx.Request.Body, Encoding.UTF8);
        return await reader.ReadToEndAsync(ctx.RequestAborted);
    }

    private static async Task<JsonObject> ReadObjectAsync(HttpContext ctx)
    {
        var contentType = (ctx.Request.ContentType ?? "application/json").Split(';')[0].Trim();
        if (contentType == "application/vnd.kubernetes.protobuf")
        {
            using var ms = new MemoryStream();
            await ctx.Request.Body.CopyToAsync(ms, ctx.RequestAborted);
            return Protobuf.Decode(ms.ToArray());
        }

        var text = await ReadBodyAsync(ctx);
        return ParseBody(text, contentType) as JsonObject ?? throw ApiError.BadRequest("Object 'Kind' is missing in the body");
    }

    private static JsonNode? ParseBody(string text, string contentType)
    {
        if (contentType.Contains("protobuf", StringComparison.Ordinal))
        {
            throw ApiError.UnsupportedMediaType(contentType);
        }

        try
        {
            return contentType.Contains("yaml", StringComparison.Ordinal) ? Yaml.ParseOne(text) : JsonNode.Parse(text);
        }
        catch (Exception e) when (e is JsonException or YamlDotNet.Core.YamlException)
        {
            throw ApiError.BadRequest($"the body of the request could not be decoded: {e.Message}");
        }
    }

    private async Task WriteObjectAsync(HttpContext ctx, int code, ResourceType type, JsonObject obj, WriteOptions? opts = null)
    {
        foreach (var w in opts?.Warnings ?? [])
        {
            ctx.Response.Headers.Append("Warning", $"299 - \"{w.Replace("\"", "\\\"", StringComparison.Ordinal)}\"");
        }

        if (Tables.Wanted(ctx.Request.Headers.Accept) && Json.Str(obj["kind"]) != "Status")
        {
            await WriteJsonAsync(ctx, code, Tables.Build(type, [obj], Json.Rv(obj), null, ctx.Request.Query["includeObject"].ToString(), clock.GetUtcNow()));
            return;
        }

        await WriteJsonAsync(ctx, code, Present(type, obj));
    }

    private async Task WriteListAsync(HttpContext ctx, ResourceType type, List<JsonObject> items, long rv, string? next, long? remaining)
    {
        if (Tables.Wanted(ctx.Request.Headers.Accept))
        {
            await WriteJsonAsync(ctx, 200, Tables.Build(type, items, rv, next, ctx.Request.Query["includeObject"].ToString(), clock.GetUtcNow()));
            return;
        }

        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, Json.WriterOptions))
        {
            w.WriteStartObject();
            w.WriteString("apiVersion", type.ApiVersion);
            w.WriteStartArray("items");
            foreach (var item in items)
            {
                Present(type, item).WriteTo(w);
            }

            w.WriteEndArray();
            w.WriteString("kind", type.ListKind);
            w.WriteStartObject("metadata");
            w.WriteString("continue", next ?? "");
            if (remaining is { } r)
            {
                w.WriteNumber("remainingItemCount", r);
            }

            w.WriteString("resourceVersion", rv.ToString(CultureInfo.InvariantCulture));
            w.WriteEndObject();
            w.WriteEndObject();
        }

        ctx.Response.StatusCode = 200;
        ctx.Response.ContentType = "application/json";
        await ctx.Response.Body.WriteAsync(ms.ToArray());
    }

    public static async Task WriteJsonAsync(HttpContext ctx, int code, JsonNode node)
    {
        ctx.Response.StatusCode = code;
        ctx.Response.ContentType = "application/json";
        await ctx.Response.WriteAsync(Json.Serialize(node));
    }

    private static async Task WriteTextAsync(HttpContext ctx, int code, string json)
    {
        ctx.Response.StatusCode = code;
        ctx.Response.ContentType = "application/json";
        await ctx.Response.WriteAsync(json);
    }
}
