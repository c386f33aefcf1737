using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;

namespace Skiff.TestApiServer.Tests;

/// <summary>Raw HTTP against the server, for asserting exact bodies, plus AppDeployment builders.</summary>
public sealed class Api(TestApiServer server) : IDisposable
{
    public const string Collection = "/apis/skiff.dev/v1alpha1/namespaces/default/appdeployments";

    /// <summary>Serializes like the server (and Go): quotes as \", not \u0022.</summary>
    public static readonly System.Text.Json.JsonSerializerOptions Relaxed = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private readonly HttpClient _http = new() { BaseAddress = server.BaseUri, Timeout = TimeSpan.FromSeconds(60) };

    public HttpClient Http => _http;

    public static string Item(string name) => $"{Collection}/{name}";

    public static JsonObject AppDeployment(string name, string image = "shop:1", string node = "vps-1") => new()
    {
        ["apiVersion"] = "skiff.dev/v1alpha1",
        ["kind"] = "AppDeployment",
        ["metadata"] = new JsonObject { ["name"] = name },
        ["spec"] = new JsonObject { ["node"] = node, ["app"] = new JsonObject { ["image"] = image } },
    };

    public async Task<(int Code, JsonNode? Body, HttpResponseMessage Response)> SendAsync(HttpMethod method, string path, JsonNode? body = null, string contentType = "application/json", string? accept = null)
    {
        using var request = new HttpRequestMessage(method, path);
        if (body is not null)
        {
            request.Content = new StringContent(body.ToJsonString(), Encoding.UTF8);
            request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        }

        if (accept is not null)
        {
            request.Headers.TryAddWithoutValidation("Accept", accept);
        }

        var response = await _http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return ((int)response.StatusCode, text.Length == 0 ? null : JsonNode.Parse(text), response);
    }

    public async Task<JsonObject> CreateAsync(JsonObject obj, string collection = Collection)
    {
        var (code, body, _) = await SendAsync(HttpMethod.Post, collection, obj);
        Assert.True(code == 201, $"create answered {code}: {body}");
        return body!.AsObject();
    }

    public async Task<JsonObject> GetAsync(string path)
    {
        var (code, body, _) = await SendAsync(HttpMethod.Get, path);
        Assert.True(code == 200, $"get answered {code}: {body}");
        return body!.AsObject();
    }

    public async Task<JsonObject?> GetAsyncOrNull(string path)
    {
        var (code, body, _) = await SendAsync(HttpMethod.Get, path);
        return code == 200 ? body!.AsObject() : null;
    }

    public async Task<(int Code, JsonNode? Body)> MergePatchAsync(string path, JsonNode patch)
    {
        var (code, body, _) = await SendAsync(HttpMethod.Patch, path, patch, "application/merge-patch+json");
        return (code, body);
    }

    public async Task<JsonObject> SetReadyAsync(string name, string status = "True")
    {
        var (code, body) = await MergePatchAsync(Item(name) + "/status", JsonNode.Parse($$$$$"""
            {"status":{"phase":"Ready","image":"shop@sha256:abc","revision":3,
              "conditions":[{"type":"Ready","status":"{{{{{status}}}}}","reason":"RolloutSucceeded","message":"ok","lastTransitionTime":"2024-01-01T00:00:00Z"}]}}
            """)!);
        Assert.True(code == 200, $"status patch answered {code}: {body}");
        return body!.AsObject();
    }

    public void Dispose() => _http.Dispose();
}
