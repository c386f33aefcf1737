using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Prometheus;

namespace Skiff.Observability;

/// <summary>
/// The operator's HTTP endpoints, as controller-runtime's manager serves them: <c>/metrics</c>
/// (Prometheus text) and <c>/status</c> (JSON) on the metrics address, <c>/healthz</c> and
/// <c>/readyz</c> on the health-probe address. Kestrel, minimal hosting, its own logs quiet.
/// </summary>
/// <remarks>
/// # Guarantees
/// - A disabled address (<c>"0"</c>) serves nothing; two equal addresses with a fixed port share
///   one listener that serves all four paths.
/// - <see cref="MetricsEndpoint"/> and <see cref="HealthEndpoint"/> are the bound endpoints, with
///   the real port when 0 was asked for.
/// - Probe bodies follow Kubernetes' healthz: <c>ok</c> when every check passes, else one
///   <c>[+]name ok</c> / <c>[-]name failed</c> line per check; <c>?verbose</c> lists them on success too.
///
/// # Caveats
/// Plain HTTP without authentication, like controller-runtime's default: bind to an internal
/// address (the Helm chart's Service selects the pod) and keep secrets out of <c>/status</c>.
/// </remarks>
public sealed class OperatorHttp : IAsyncDisposable
{

    private readonly List<WebApplication> apps;

    private OperatorHttp(List<WebApplication> apps, IPEndPoint? metrics, IPEndPoint? health)
    {
        this.apps = apps;
        MetricsEndpoint = metrics;
        HealthEndpoint = health;
    }

    /// <summary>Where <c>/metrics</c> and <c>/status</c> are served; null when disabled.</summary>
    public IPEndPoint? MetricsEndpoint { get; }

    /// <summary>Where <c>/healthz</c> and <c>/readyz</c> are served; null when disabled.</summary>
    public IPEndPoint? HealthEndpoint { get; }

    /// <summary>Binds and starts the listeners; returns once they accept connections.</summary>
    /// <param name="metricsBindAddress">controller-runtime syntax (<c>":8080"</c>, <c>"127.0.0.1:0"</c>, <c>"0"</c> = disabled).</param>
    /// <param name="healthBindAddress">Same syntax, for the probes.</param>
    /// <param name="registry">The registry <c>/metrics</c> exports.</param>
    /// <param name="health">The checks behind <c>/healthz</c> and <c>/readyz</c>.</param>
    /// <param name="status">What <c>/status</c> serializes as JSON; null for 404.</param>
    /// <param name="loggerFactory">Where the server's warnings and errors go (Kestrel's information lines are dropped).</param>
    /// <param name="cancellationToken">Cancels the start.</param>
    /// <param name="posts">POST endpoints served beside <c>/status</c> (the Git source's <c>/sync</c>), by path.</param>
    /// <param name="statusTypes">
    /// Generated JSON metadata of what <paramref name="status"/> returns (web defaults: camelCase names); any other
    /// object is written by reflection, which a NativeAOT build may not be able to do.
    /// </param>
    /// <exception cref="FormatException">A bind address is malformed.</exception>
    /// <exception cref="IOException">A port is taken (Kestrel's address-in-use error).</exception>
    public static async Task<OperatorHttp> StartAsync(
        string metricsBindAddress,
        string healthBindAddress,
        CollectorRegistry registry,
        HealthChecks health,
        Func<object>? status,
        ILoggerFactory loggerFactory,
        CancellationToken cancellationToken,
        IReadOnlyDictionary<string, RequestDelegate>? posts = null,
        IJsonTypeInfoResolver? statusTypes = null)
    {
        var statusOptions = new JsonSerializerOptions(JsonSerializerDefaults.Web)
        {
            WriteIndented = true,
            TypeInfoResolver = statusTypes is null ? new DefaultJsonTypeInfoResolver() : JsonTypeInfoResolver.Combine(statusTypes, new DefaultJsonTypeInfoResolver()),
        };
        Func<byte[]>? statusJson = status is null ? null : () => status() is { } value ? JsonSerializer.SerializeToUtf8Bytes(value, value.GetType(), statusOptions) : "null"u8.ToArray();
        var metricsAt = BindAddress.Parse(metricsBindAddress);
        var healthAt = BindAddress.Parse(healthBindAddress);
        var logger = loggerFactory.CreateLogger<OperatorHttp>();
        var apps = new List<WebApplication>();
        try
        {
            IPEndPoint? metricsEndpoint = null;
            IPEndPoint? healthEndpoint = null;
            if (metricsAt is not null && metricsAt == healthAt && metricsAt.Port != 0)
            {
                metricsEndpoint = healthEndpoint = await StartOneAsync(apps, metricsAt, registry, health, statusJson, posts, loggerFactory, true, true, cancellationToken);
            }
            else
            {
                if (metricsAt is not null)
                {
                    metricsEndpoint = await StartOneAsync(apps, metricsAt, registry, health, statusJson, posts, loggerFactory, true, false, cancellationToken);
                }

                if (healthAt is not null)
                {
                    healthEndpoint = await StartOneAsync(apps, healthAt, registry, health, statusJson, posts, loggerFactory, false, true, cancellationToken);
                }
            }

            logger.LogInformation("Serving metrics on {MetricsAddress} and health probes on {HealthAddress}",
                metricsEndpoint?.ToString() ?? "(disabled)", healthEndpoint?.ToString() ?? "(disabled)");
            return new OperatorHttp(apps, metricsEndpoint, healthEndpoint);
        }
        catch
        {
            foreach (var app in apps)
            {
                await app.DisposeAsync();
            }

            throw;
        }
    }

    /// <summary>Stops accepting requests and lets the ones in flight finish.</summary>
    /// <param name="cancellationToken">Cuts the graceful stop short.</param>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        foreach (var app in apps)
        {
            await app.StopAsync(cancellationToken);
        }
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        foreach (var app in apps)
        {
            await app.DisposeAsync();
        }

        apps.Clear();
    }

    private static async Task<IPEndPoint> StartOneAsync(
        List<WebApplication> apps,
        BindAddress at,
        CollectorRegistry registry,
        HealthChecks health,
        Func<byte[]>? status,
        IReadOnlyDictionary<string, RequestDelegate>? posts,
        ILoggerFactory loggerFactory,
        bool serveMetrics,
        bool serveHealth,
        CancellationToken cancellationToken)
    {
        StartupTrace.Mark("kestrel: creating builder");
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });

        // Only our flags decide what is served: no appsettings.json, ASPNETCORE_URLS or Kestrel section
        // may add a listener, and the operator, not this embedded host, handles SIGTERM.
        builder.Configuration.Sources.Clear();
        builder.Services.AddSingleton<IHostLifetime, EmbeddedLifetime>();
        builder.Logging.ClearProviders();
        builder.Logging.AddProvider(new ForwardingLoggerProvider(loggerFactory));
        builder.Logging.AddFilter("Microsoft", LogLevel.Warning);
        ListenOptions? listen = null;
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            if (at.Address is null)
            {
                kestrel.ListenAnyIP(at.Port, o => listen = o);
            }
            else
            {
                kestrel.Listen(at.Address, at.Port, o => listen = o);
            }
        });

        StartupTrace.Mark("kestrel: builder configured");
        var app = builder.Build();
        StartupTrace.Mark("kestrel: app built");
        apps.Add(app);
        if (serveMetrics)
        {
            app.MapGet("/metrics", async (HttpContext http) =>
            {
                // Buffered: the exporter writes in small pieces, and a scrape is small.
                using var buffer = new MemoryStream();
                await registry.CollectAndExportAsTextAsync(buffer, http.RequestAborted);
                http.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
                http.Response.ContentLength = buffer.Length;
                buffer.Position = 0;
                await buffer.CopyToAsync(http.Response.Body, http.RequestAborted);
            });
            app.MapGet("/status", async (HttpContext http) =>
            {
                if (status is null)
                {
                    http.Response.StatusCode = StatusCodes.Status404NotFound;
                    return;
                }

                var json = status();
                http.Response.ContentType = "application/json; charset=utf-8";
                http.Response.ContentLength = json.Length;
                await http.Response.Body.WriteAsync(json, http.RequestAborted);
            });
            foreach (var (path, handler) in posts ?? new Dictionary<string, RequestDelegate>())
            {
                app.MapPost(path, handler);
            }
        }

        if (serveHealth)
        {
            app.MapGet("/healthz", (HttpContext http) =>
                ProbeAsync(http, "healthz", health.CheckLivenessAsync, StatusCodes.Status500InternalServerError));
            app.MapGet("/readyz", (HttpContext http) =>
                ProbeAsync(http, "readyz", health.CheckReadinessAsync, StatusCodes.Status503ServiceUnavailable));
        }

        await app.StartAsync(cancellationToken);
        StartupTrace.Mark("kestrel: started");

        // Kestrel writes the bound endpoint back into the listen options, the real port included.
        return listen?.IPEndPoint ?? throw new InvalidOperationException("Kestrel did not report the bound endpoint");
    }

    private static async Task ProbeAsync(HttpContext http, string probe, Func<CancellationToken, Task<HealthReport>> run, int failureCode)
    {
        StartupTrace.Mark($"{probe}: request");
        var report = await run(http.RequestAborted);
        StartupTrace.Mark($"{probe}: checked ({(report.Healthy ? "healthy" : "not healthy")})");
        var verbose = http.Request.Query.ContainsKey("verbose");
        var body = new StringBuilder();
        if (report.Healthy && !verbose)
        {
            body.Append("ok");
        }
        else
        {
            foreach (var name in report.Passed)
            {
                body.Append("[+]").Append(name).Append(" ok\n");
            }

            foreach (var name in report.Failed)
            {
                body.Append("[-]").Append(name).Append(" failed\n");
            }

            body.Append(report.Healthy ? $"{probe} check passed" : $"{probe} check failed");
        }

        http.Response.StatusCode = report.Healthy ? StatusCodes.Status200OK : failureCode;
        if (report.Healthy && probe == "readyz")
        {
            StartupTrace.MarkReady();
        }

        http.Response.ContentType = "text/plain; charset=utf-8";
        http.Response.Headers.CacheControl = "no-store";
        await http.Response.WriteAsync(body.ToString(), http.RequestAborted);
    }

    /// <summary>Leaves process signals to the operator: the server stops when <see cref="StopAsync"/> says so.</summary>
    private sealed class EmbeddedLifetime : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    /// <summary>Hands the server's log lines to the operator's logger factory (Serilog in Program.cs).</summary>
    private sealed class ForwardingLoggerProvider(ILoggerFactory factory) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => factory.CreateLogger(categoryName);

        public void Dispose()
        {
        }
    }
}
