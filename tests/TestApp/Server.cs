using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;

namespace Skiff.TestApp;

/// <summary>The HTTP side: <c>/healthz</c> for probes, <c>/</c> counts visits and hits.</summary>
internal sealed class Server(Settings settings)
{
    /// <summary>When the server was made (at start-up), for TESTAPP_HEALTHY_AFTER_SECONDS.</summary>
    private readonly long startedAt = Environment.TickCount64;

    /// <summary>Set by <c>GET /control/unhealthy</c> (TESTAPP_CONTROL=1): an app that turns unhealthy after its rollout.</summary>
    private volatile bool sickened;

    public async Task<int> RunAsync(CancellationToken ct)
    {
        // Kestrel, not HttpListener: the managed HttpListener crashes in Start() with an ArgumentNullException when a
        // client connects while it starts (dotnet/corefx#35191), which a proxy or probe polling a restarted app does.
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore().ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.ListenAnyIP(settings.Port);
        });
        builder.Services.AddSingleton<IHostLifetime, SignalsHandledByProgram>();
        await using var backends = new Backends(settings);
        await using var app = builder.Build();
        app.Run(context => HandleAsync(context, backends, ct));
        try
        {
            await app.StartAsync(CancellationToken.None);
        }
        catch (IOException e)
        {
            Log.Line($"cannot listen on port {settings.Port}: {e.Message}");
            return 1;
        }

        Log.Line($"testapp {settings.Version} listening on 0.0.0.0:{settings.Port} " +
            $"(database: {(settings.DatabaseConnectionString is null ? "none" : "configured")}, " +
            $"cache: {(settings.Redis is null ? "none" : "configured")})");

        try
        {
            await Task.Delay(Timeout.Infinite, ct);
        }
        catch (OperationCanceledException)
        {
        }

        // Stop accepting, give requests in flight a moment (a /slow one its time), then exit: a stop must not hang.
        using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(settings.StopGrace));
        await app.StopAsync(grace.Token);
        Log.Line("stopped");
        return 0;
    }

    private async Task HandleAsync(HttpContext context, Backends backends, CancellationToken ct)
    {
        var watch = Stopwatch.StartNew();
        var request = context.Request;
        var path = request.Path.HasValue ? request.Path.Value! : "/";
        var remote = context.Connection.RemoteIpAddress is { IsIPv4MappedToIPv6: true } mapped
            ? mapped.MapToIPv4()
            : context.Connection.RemoteIpAddress;
        var line = $"{remote}:{context.Connection.RemotePort} {request.Method} {path}";
        int status;
        try
        {
            (status, var contentType, var body) = path == "/slow"
                ? await SlowAsync(request.Query["seconds"], ct)
                : await RespondAsync(request.Method, path, backends, ct);
            var bytes = Encoding.UTF8.GetBytes(body);
            context.Response.StatusCode = status;
            context.Response.ContentType = contentType;
            context.Response.ContentLength = bytes.Length;
            if (!HttpMethods.IsHead(request.Method))
            {
                await context.Response.Body.WriteAsync(bytes, ct);
            }
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or OperationCanceledException)
        {
            status = 0;
            context.Abort();
        }
        catch (Exception e)
        {
            // A bug here must show in the log, not vanish with an unobserved task.
            Log.Line($"{line} failed: {settings.Mask(e.ToString())}");
            status = 0;
            context.Abort();
        }

        Log.Line($"{line} {status} {watch.ElapsedMilliseconds}ms");
    }

    /// <summary><c>GET /slow?seconds=N</c>: the version after N seconds (at most 60), a long request to be drained.</summary>
    private async Task<(int Status, string ContentType, string Body)> SlowAsync(string? secondsText, CancellationToken ct)
    {
        if (!int.TryParse(secondsText, out var seconds) || seconds is < 0 or > 60)
        {
            return (400, "text/plain; charset=utf-8", "seconds: a whole number from 0 to 60\n");
        }

        // Not cancelled by SIGTERM: a request in flight finishes, as a drained app's would.
        await Task.Delay(TimeSpan.FromSeconds(seconds), CancellationToken.None);
        return (200, "application/json", Json(settings.Version, null, null) + "\n");
    }

    private async Task<(int Status, string ContentType, string Body)> RespondAsync(
        string method, string path, Backends backends, CancellationToken ct)
    {
        const string Text = "text/plain; charset=utf-8";
        if (method is not ("GET" or "HEAD"))
        {
            return (405, Text, "method not allowed\n");
        }

        switch (path)
        {
            case "/healthz":
                if (settings.FailHealth)
                {
                    return (500, Text, "unhealthy on purpose (TESTAPP_FAIL_HEALTH=1)\n");
                }

                if (sickened)
                {
                    return (500, Text, "unhealthy on purpose (GET /control/unhealthy)\n");
                }

                if (Environment.TickCount64 - startedAt < settings.HealthyAfter.TotalMilliseconds)
                {
                    return (503, Text, $"warming up for {settings.HealthyAfter.TotalSeconds:0}s (TESTAPP_HEALTHY_AFTER_SECONDS)\n");
                }

                var problem = await backends.CheckAsync(ct);
                return problem is null ? (200, Text, "ok\n") : (503, Text, problem + "\n");

            case "/":
                long? visits, hits;
                try
                {
                    visits = await backends.RecordVisitAsync(ct);
                }
                catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UndefinedTable)
                {
                    return (500, Text, "table visits does not exist: the migration has not run (testapp migrate)\n");
                }
                catch (Exception e) when (e is NpgsqlException or TimeoutException or IOException or InvalidOperationException)
                {
                    return (503, Text, "database: " + settings.Mask(e.Message) + "\n");
                }

                try
                {
                    hits = await backends.RecordHitAsync(ct);
                }
                catch (Exception e) when (e is IOException or SocketException or RedisException)
                {
                    return (503, Text, "cache: " + settings.Mask(e.Message) + "\n");
                }

                return (200, "application/json", Json(settings.Version, visits, hits) + "\n");

            case "/control/unhealthy" or "/control/healthy" when settings.Control:
                // For tests of health after a rollout: the health check fails, or passes again, from now on.
                sickened = path == "/control/unhealthy";
                return (200, Text, sickened ? "unhealthy from now on\n" : "healthy again\n");

            default:
                return (404, Text, "not found\n");
        }
    }

    internal static string Json(string version, long? visits, long? hits)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("version", version);
            WriteCount(json, "visits", visits);
            WriteCount(json, "hits", hits);
            json.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    private static void WriteCount(Utf8JsonWriter json, string name, long? value)
    {
        if (value is { } v)
        {
            json.WriteNumber(name, v);
        }
        else
        {
            json.WriteNull(name);
        }
    }
}

/// <summary>SIGTERM and SIGINT are Program's (it cancels the token <see cref="Server.RunAsync"/> waits on): no ConsoleLifetime.</summary>
internal sealed class SignalsHandledByProgram : IHostLifetime
{
    public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
