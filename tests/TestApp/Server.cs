using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
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
        using var listener = new HttpListener();
        // "+" binds every address (0.0.0.0), so the port is reachable from outside the container.
        listener.Prefixes.Add($"http://+:{settings.Port}/");
        try
        {
            listener.Start();
        }
        catch (HttpListenerException e)
        {
            Log.Line($"cannot listen on port {settings.Port}: {e.Message}");
            return 1;
        }

        await using var backends = new Backends(settings);
        Log.Line($"testapp {settings.Version} listening on 0.0.0.0:{settings.Port} " +
            $"(database: {(settings.DatabaseConnectionString is null ? "none" : "configured")}, " +
            $"cache: {(settings.Redis is null ? "none" : "configured")})");

        using var stop = ct.Register(listener.Stop);
        var inFlight = new List<Task>();
        while (!ct.IsCancellationRequested)
        {
            HttpListenerContext context;
            try
            {
                context = await listener.GetContextAsync();
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                if (ct.IsCancellationRequested)
                {
                    break;
                }

                Log.Line($"accept failed: {e.Message}");
                continue;
            }

            inFlight.RemoveAll(t => t.IsCompleted);
            inFlight.Add(HandleAsync(context, backends, ct));
        }

        // Give requests in flight a moment (a /slow one its time), then exit: a stop must not hang.
        await Task.WhenAny(Task.WhenAll(inFlight), Task.Delay(TimeSpan.FromSeconds(settings.StopGrace), CancellationToken.None));
        Log.Line("stopped");
        return 0;
    }

    private async Task HandleAsync(HttpListenerContext context, Backends backends, CancellationToken ct)
    {
        var watch = Stopwatch.StartNew();
        var request = context.Request;
        var path = request.Url?.AbsolutePath ?? "/";
        var line = $"{request.RemoteEndPoint} {request.HttpMethod} {path}";
        int status;
        try
        {
            (status, var contentType, var body) = path == "/slow"
                ? await SlowAsync(request.QueryString["seconds"], ct)
                : await RespondAsync(request.HttpMethod, path, backends, ct);
            var bytes = Encoding.UTF8.GetBytes(body);
            context.Response.StatusCode = status;
            context.Response.ContentType = contentType;
            context.Response.ContentLength64 = bytes.Length;
            await context.Response.OutputStream.WriteAsync(bytes, ct);
            context.Response.Close();
        }
        catch (Exception e) when (e is HttpListenerException or IOException or ObjectDisposedException or OperationCanceledException)
        {
            status = 0;
            context.Response.Abort();
        }
        catch (Exception e)
        {
            // A bug here must show in the log, not vanish with an unobserved task.
            Log.Line($"{line} failed: {settings.Mask(e.ToString())}");
            status = 0;
            context.Response.Abort();
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
