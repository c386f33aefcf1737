using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using k8s;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Skiff.TestApiServer;

/// <summary>
/// An in-process stand-in for kube-apiserver v1.32 over plain HTTP: discovery, OpenAPI v3, CRUD with resourceVersion and
/// conflicts, status subresources and generation, finalizers, server-side apply, watch with bookmarks and expiry, and
/// Table output, faithful enough for the real kubectl and for KubernetesClient (DESIGN §6, KUBE-API-FACTS.md).
/// </summary>
/// <remarks>
/// # Caveats
/// No authentication or authorization, no admission webhooks, no CEL (<c>x-kubernetes-validations</c> are skipped),
/// no garbage collection of owned objects, no protobuf, no OpenAPI v2, no aggregated discovery (kubectl falls back).
/// </remarks>
public sealed class TestApiServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ObjectStore _store;
    private readonly List<RequestRecord> _log = [];
    private readonly Lock _logLock = new();
    private readonly CancellationTokenSource _stopping = new();
    private Task? _bookmarks;

    private TestApiServer(WebApplication app, ObjectStore store, Registry registry)
    {
        _app = app;
        _store = store;
        Registry = registry;
        Faults = new FaultInjector(store);
    }

    /// <summary>The server's address, e.g. http://127.0.0.1:41234/ (a wildcard bind is advertised as 127.0.0.1).</summary>
    public Uri BaseUri { get; private set; } = null!;

    /// <summary>Faults to inject: dropped watches, failing requests, a paused server, expired resourceVersions.</summary>
    public FaultInjector Faults { get; }

    /// <summary>Every request answered so far, in order of response.</summary>
    public IReadOnlyList<RequestRecord> RequestLog
    {
        get
        {
            lock (_logLock)
            {
                return _log.ToList();
            }
        }
    }

    /// <summary>The current (highest) resourceVersion of the whole server.</summary>
    public long ResourceVersion => _store.CurrentRv;

    internal Registry Registry { get; }

    public static async Task<TestApiServer> StartAsync(TestApiServerOptions options, CancellationToken ct = default)
    {
        var clock = options.Clock ?? TimeProvider.System;
        var catalog = new ResourceCatalog(options.CrdPaths);
        var store = new ObjectStore(options.WatchHistorySize);
        var registry = new Registry(store, catalog, clock);
        foreach (var ns in new[] { "default", "kube-system" }.Concat(options.Namespaces).Distinct())
        {
            registry.EnsureNamespace(ns);
        }

        var openApi = new OpenApi(catalog);
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ApplicationName = typeof(TestApiServer).Assembly.GetName().Name });
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k =>
        {
            k.Listen(IPAddress.Parse(options.BindAddress), options.Port, l => l.Protocols = HttpProtocols.Http1);
            k.AllowSynchronousIO = false;
        });
        var app = builder.Build();
        var server = new TestApiServer(app, store, registry);
        var handler = new ApiHandler(catalog, registry, openApi, options, clock, () => server.BaseUri.Authority, server._stopping.Token);
        app.Run(ctx => server.ServeAsync(ctx, handler));
        await app.StartAsync(ct);

        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        var uri = new Uri(address);
        var host = options.BindAddress is "0.0.0.0" or "::" ? "127.0.0.1" : options.BindAddress;
        server.BaseUri = new UriBuilder("http", host, uri.Port).Uri;
        server._bookmarks = server.BookmarkLoopAsync(options.BookmarkInterval);
        return server;
    }

    private async Task ServeAsync(HttpContext ctx, ApiHandler handler)
    {
        var method = ctx.Request.Method;
        var path = ctx.Request.Path.Value ?? "/";
        var watch = ctx.Request.Query["watch"].ToString() is "true" or "1";
        var info = RequestInfo.Parse(method, path, watch);
        ctx.Response.OnStarting(() =>
        {
            var h = ctx.Request.Headers;
            var record = new RequestRecord(DateTimeOffset.UtcNow, method, path, ctx.Request.QueryString.Value ?? "", info.Verb,
                info.Group, info.Version, info.Resource, info.Subresource, info.Namespace, info.Name,
                h.UserAgent.ToString(), h.Accept.ToString(), ctx.Request.ContentType ?? "", ctx.Response.StatusCode)
            {
                RemoteAddress = ctx.Connection.RemoteIpAddress is { IsIPv4MappedToIPv6: true } mapped
                    ? mapped.MapToIPv4().ToString()
                    : ctx.Connection.RemoteIpAddress?.ToString() ?? "",
            };
            lock (_logLock)
            {
                _log.Add(record);
            }

            return Task.CompletedTask;
        });

        try
        {
            await Faults.WaitIfPausedAsync(ctx.RequestAborted);
            if (Faults.TakeFailure(method, path) is { } code)
            {
                await WriteFaultAsync(ctx, code, info);
                return;
            }

            await handler.HandleAsync(ctx, info);
        }
        catch (ApiError e)
        {
            if (!ctx.Response.HasStarted)
            {
                await ApiHandler.WriteJsonAsync(ctx, e.Code, e.Status);
            }
        }
        catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested || _stopping.IsCancellationRequested)
        {
            // The client went away.
        }
        catch (Exception e) when (!ctx.Response.HasStarted)
        {
            // A bug in the fake: answer like the apiserver's panic handler, with the exception for whoever debugs the test.
            await ApiHandler.WriteJsonAsync(ctx, 500, ApiError.StatusBody(500, "InternalError", $"Internal error occurred: {e}"));
        }
    }

    private static async Task WriteFaultAsync(HttpContext ctx, int code, RequestInfo info)
    {
        var resource = info.Group.Length == 0 ? info.Resource : $"{info.Resource}.{info.Group}";
        JsonObject body = code switch
        {
            409 => ApiError.StatusBody(409, "Conflict",
                $"Operation cannot be fulfilled on {resource} \"{info.Name}\": the object has been modified; please apply your changes to the latest version and try again",
                new JsonObject { ["name"] = info.Name, ["group"] = info.Group, ["kind"] = info.Resource }),
            429 => ApiError.StatusBody(429, "TooManyRequests", "Too many requests, please try again later.",
                new JsonObject { ["retryAfterSeconds"] = 1 }),
            500 => ApiError.StatusBody(500, "InternalError", "Internal error occurred: injected fault"),
            503 => ApiError.StatusBody(503, "ServiceUnavailable", "the server is currently unable to handle the request"),
            404 => ApiError.StatusBody(404, "NotFound", $"{resource} \"{info.Name}\" not found", new JsonObject { ["name"] = info.Name, ["kind"] = info.Resource }),
            _ => ApiError.StatusBody(code, "", $"injected fault {code}"),
        };
        if (code == 429)
        {
            ctx.Response.Headers.RetryAfter = "1";
        }

        await ApiHandler.WriteJsonAsync(ctx, code, body);
    }

    private async Task BookmarkLoopAsync(TimeSpan interval)
    {
        using var timer = new PeriodicTimer(interval);
        try
        {
            while (await timer.WaitForNextTickAsync(_stopping.Token))
            {
                _store.Bookmark();
            }
        }
        catch (OperationCanceledException)
        {
            // Stopping.
        }
    }

    /// <summary>Writes a kubeconfig for plain HTTP that kubectl and KubernetesClient accept; returns <paramref name="path"/>.</summary>
    /// <param name="path">Where to write it.</param>
    /// <param name="namespace">The context's namespace (default: "default").</param>
    /// <param name="server">The address clients should use, when not <see cref="BaseUri"/> (e.g. a veth address seen from another network namespace).</param>
    public string WriteKubeconfig(string path, string? @namespace = null, Uri? server = null)
    {
        var address = (server ?? BaseUri).ToString().TrimEnd('/');
        var text = new StringBuilder()
            .AppendLine("apiVersion: v1")
            .AppendLine("kind: Config")
            .AppendLine("clusters:")
            .AppendLine("- name: skiff-test")
            .AppendLine("  cluster:")
            .AppendLine($"    server: {address}")
            .AppendLine("contexts:")
            .AppendLine("- name: skiff-test")
            .AppendLine("  context:")
            .AppendLine("    cluster: skiff-test")
            .AppendLine("    user: skiff-test")
            .AppendLine($"    namespace: {@namespace ?? "default"}")
            .AppendLine("current-context: skiff-test")
            .AppendLine("preferences: {}")
            .AppendLine("users:")
            .AppendLine("- name: skiff-test")
            .AppendLine("  user:")
            .AppendLine("    token: skiff-test-token")
            .ToString();
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null)
        {
            Directory.CreateDirectory(dir);
        }

        File.WriteAllText(path, text);
        return path;
    }

    /// <summary>A KubernetesClient pointed at this server.</summary>
    public Kubernetes CreateClient() => new(new KubernetesClientConfiguration { Host = BaseUri.ToString().TrimEnd('/') });

    public void ClearRequestLog()
    {
        lock (_logLock)
        {
            _log.Clear();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        Faults.Resume();
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await _app.StopAsync(timeout.Token);
        }
        finally
        {
            if (_bookmarks is not null)
            {
                await _bookmarks;
            }

            await _app.DisposeAsync();
            _stopping.Dispose();
        }
    }
}
