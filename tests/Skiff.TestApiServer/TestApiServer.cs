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
/// no garbage collection of owned objects, no controllers (a test writes the workloads' status), no protobuf, no
/// OpenAPI v2, no aggregated discovery (kubectl falls back).
/// </remarks>
public sealed class TestApiServer : IAsyncDisposable
{
    private readonly ObjectStore _store;
    private readonly List<RequestRecord> _log = [];
    private readonly Lock _logLock = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly SemaphoreSlim _lifecycle = new(1, 1);
    private readonly TestApiServerOptions _options;
    private readonly ResourceCatalog _catalog;
    private readonly OpenApi _openApi;
    private readonly TimeProvider _clock;
    private WebApplication? _app;

    /// <summary>The port the server listens on (chosen at the first start when the options said 0), kept across restarts.</summary>
    private int _port;

    /// <summary>Cancelled when the current serving period ends (<see cref="StopAsync"/>): open watches end with it.</summary>
    private CancellationTokenSource? _serving;
    private Task? _bookmarks;

    private TestApiServer(TestApiServerOptions options, ResourceCatalog catalog, ObjectStore store, Registry registry, TimeProvider clock)
    {
        _options = options;
        _catalog = catalog;
        _store = store;
        _clock = clock;
        _openApi = new OpenApi(catalog);
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

    /// <summary>Whether the server is listening (false between <see cref="StopAsync"/> and <see cref="RestartAsync"/>).</summary>
    public bool IsRunning => _app is not null;

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

        var server = new TestApiServer(options, catalog, store, registry, clock);
        await server.ListenAsync(options.Port, ct);
        var host = options.BindAddress is "0.0.0.0" or "::" ? "127.0.0.1" : options.BindAddress;
        server.BaseUri = new UriBuilder("http", host, server._port).Uri;
        server._bookmarks = server.BookmarkLoopAsync(options.BookmarkInterval);
        return server;
    }

    /// <summary>
    /// Stops listening, as a kube-apiserver that is restarted or crashes: open connections and watches end, new
    /// connections are refused. Every stored object, the resourceVersion counter and the watch history are kept for
    /// <see cref="RestartAsync"/>; requests held by <see cref="FaultInjector.Pause()"/> are released first.
    /// </summary>
    public async Task StopAsync()
    {
        await _lifecycle.WaitAsync();
        try
        {
            if (_app is not { } app)
            {
                return;
            }

            _app = null;
            await _serving!.CancelAsync();
            Faults.Resume();
            try
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                await app.StopAsync(timeout.Token);
            }
            finally
            {
                await app.DisposeAsync();
                _serving.Dispose();
                _serving = null;
            }
        }
        finally
        {
            _lifecycle.Release();
        }
    }

    /// <summary>
    /// Listens again on the same address and port with the same objects: resourceVersions go on from where they were, and
    /// a watch resumed from a resourceVersion the server remembers gets the events it missed, as after a real restart.
    /// </summary>
    public async Task RestartAsync(CancellationToken ct = default)
    {
        await _lifecycle.WaitAsync(ct);
        try
        {
            if (_app is null)
            {
                await ListenAsync(_port, ct);
            }
        }
        finally
        {
            _lifecycle.Release();
        }
    }

    private async Task ListenAsync(int port, CancellationToken ct)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ApplicationName = typeof(TestApiServer).Assembly.GetName().Name });
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k =>
        {
            k.Listen(IPAddress.Parse(_options.BindAddress), port, l => l.Protocols = HttpProtocols.Http1);
            k.AllowSynchronousIO = false;
        });
        var app = builder.Build();
        var serving = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
        var handler = new ApiHandler(_catalog, Registry, _openApi, _options, _clock, () => BaseUri.Authority, serving.Token);
        app.Run(ctx => ServeAsync(ctx, handler, serving.Token));
        await app.StartAsync(ct);
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        _port = new Uri(address).Port;
        _serving = serving;
        _app = app;
    }

    private async Task ServeAsync(HttpContext ctx, ApiHandler handler, CancellationToken serving)
    {
        _options.OnRequestArrived?.Invoke(ctx.Request);
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
        catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested || serving.IsCancellationRequested)
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
        try
        {
            await StopAsync();
        }
        finally
        {
            await _stopping.CancelAsync();
            if (_bookmarks is not null)
            {
                await _bookmarks;
            }

            _stopping.Dispose();
            _lifecycle.Dispose();
        }
    }
}
