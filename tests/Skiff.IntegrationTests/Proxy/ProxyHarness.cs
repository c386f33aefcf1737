using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Skiff.IntegrationTests.FolderSource;
using Skiff.Proxy;

namespace Skiff.IntegrationTests.Proxy;

/// <summary>
/// A small HTTP server on the loopback that answers with its name: <c>GET /</c> is the name,
/// <c>/slow?seconds=N</c> the name after N seconds, <c>/status/N</c> status N with the name,
/// <c>/headers</c> the request's <c>X-Forwarded-*</c> headers, one per line.
/// </summary>
public sealed class HttpUpstream : IAsyncDisposable
{
    private readonly WebApplication app;

    private HttpUpstream(string name, WebApplication app, int port)
    {
        Name = name;
        this.app = app;
        Address = $"127.0.0.1:{port}";
    }

    public string Name { get; }

    /// <summary><c>127.0.0.1:PORT</c>, as a routes file names an upstream.</summary>
    public string Address { get; }

    public static async Task<HttpUpstream> StartAsync(string name)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        app.MapGet("/", () => name);
        app.MapGet("/slow", async (int seconds) =>
        {
            await Task.Delay(TimeSpan.FromSeconds(seconds));
            return name;
        });
        app.MapGet("/status/{code:int}", (int code) => Results.Text(name, statusCode: code));
        app.MapGet("/headers", (HttpRequest request) => string.Join('\n', request.Headers
            .Where(h => h.Key.StartsWith("X-Forwarded-", StringComparison.OrdinalIgnoreCase))
            .OrderBy(h => h.Key, StringComparer.OrdinalIgnoreCase)
            .Select(h => $"{h.Key}: {h.Value}")));
        await app.StartAsync();
        var port = new Uri(app.Urls.Single()).Port;
        return new HttpUpstream(name, app, port);
    }

    public async ValueTask DisposeAsync()
    {
        await app.StopAsync();
        await app.DisposeAsync();
    }
}

/// <summary>A TCP server on the loopback: says its name and a newline, then echoes until the client closes.</summary>
public sealed class TcpEchoUpstream : IAsyncDisposable
{
    private readonly TcpListener listener;
    private readonly CancellationTokenSource stop = new();
    private readonly Task loop;

    private TcpEchoUpstream(string name)
    {
        Name = name;
        listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start(512);
        Address = $"127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}";
        loop = AcceptAsync();
    }

    public string Name { get; }

    public string Address { get; }

    public static TcpEchoUpstream Start(string name) => new(name);

    public async ValueTask DisposeAsync()
    {
        await stop.CancelAsync();
        listener.Stop();
        await loop;
        stop.Dispose();
    }

    private async Task AcceptAsync()
    {
        while (!stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listener.AcceptSocketAsync(stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            _ = EchoAsync(client);
        }
    }

    private async Task EchoAsync(Socket client)
    {
        using (client)
        {
            try
            {
                await client.SendAsync(Encoding.ASCII.GetBytes(Name + "\n"), SocketFlags.None, stop.Token);
                var buffer = new byte[4096];
                int read;
                while ((read = await client.ReceiveAsync(buffer, SocketFlags.None, stop.Token)) > 0)
                {
                    await client.SendAsync(buffer.AsMemory(0, read), SocketFlags.None, stop.Token);
                }

                client.Shutdown(SocketShutdown.Send);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException)
            {
            }
        }
    }
}

/// <summary>A TCP client of the echo protocol: reads the banner, then sends lines and reads them back.</summary>
public sealed class EchoClient : IDisposable
{
    private readonly Socket socket;
    private readonly List<byte> pending = [];

    private EchoClient(Socket socket)
    {
        this.socket = socket;
    }

    /// <summary>The upstream's name, as its banner said.</summary>
    public string Upstream { get; private set; } = "";

    public static async Task<EchoClient> ConnectAsync(int port, CancellationToken ct)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(IPAddress.Loopback, port, ct);
            var client = new EchoClient(socket);
            client.Upstream = await client.ReadLineAsync(ct);
            return client;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Sends one line and returns what came back.</summary>
    public async Task<string> EchoAsync(string line, CancellationToken ct)
    {
        await socket.SendAsync(Encoding.ASCII.GetBytes(line + "\n"), SocketFlags.None, ct);
        return await ReadLineAsync(ct);
    }

    /// <summary>Closes the sending half and waits for the other side's clean end (EOF, no reset).</summary>
    public async Task CloseAsync(CancellationToken ct)
    {
        socket.Shutdown(SocketShutdown.Send);
        var buffer = new byte[256];
        while (await socket.ReceiveAsync(buffer, SocketFlags.None, ct) > 0)
        {
        }
    }

    public void Dispose() => socket.Dispose();

    private async Task<string> ReadLineAsync(CancellationToken ct)
    {
        var buffer = new byte[256];
        while (true)
        {
            var newline = pending.IndexOf((byte)'\n');
            if (newline >= 0)
            {
                var line = Encoding.ASCII.GetString([.. pending.Take(newline)]);
                pending.RemoveRange(0, newline + 1);
                return line;
            }

            var read = await socket.ReceiveAsync(buffer, SocketFlags.None, ct);
            if (read == 0)
            {
                throw new IOException($"the connection ended before a full line (had \"{Encoding.ASCII.GetString([.. pending])}\")");
            }

            pending.AddRange(buffer.Take(read));
        }
    }
}

/// <summary><c>skiff proxy</c> as a real process, with its metrics endpoint and routes file.</summary>
public sealed partial class ProxyProcess : IAsyncDisposable
{
    private static readonly HttpClient Http = new(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(10) };

    private ProxyProcess(SkiffProcess process)
    {
        Process = process;
    }

    public SkiffProcess Process { get; }

    /// <summary><c>http://127.0.0.1:PORT/metrics</c>, once the proxy said where it serves.</summary>
    public Uri Metrics { get; private set; } = null!;

    /// <summary>Starts the proxy on <paramref name="routesPath"/> with metrics on an ephemeral loopback port.</summary>
    public static async Task<ProxyProcess> StartAsync(string routesPath, int drainSeconds = 10)
    {
        var process = SkiffProcess.Start(
            "proxy", "--routes", routesPath, "--metrics-bind-address", "127.0.0.1:0",
            "--drain-seconds", drainSeconds.ToString(CultureInfo.InvariantCulture));
        var proxy = new ProxyProcess(process);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (MetricsAddress().Match(process.Stderr) is not { Success: true } m)
        {
            if (process.HasExited || DateTime.UtcNow > deadline)
            {
                await proxy.DisposeAsync();
                throw new InvalidOperationException($"skiff proxy did not start; stderr:\n{process.Stderr}");
            }

            await Task.Delay(100);
        }

        proxy.Metrics = new Uri($"http://{MetricsAddress().Match(process.Stderr).Groups[1].Value}/metrics");
        return proxy;
    }

    /// <summary>The /metrics text.</summary>
    public Task<string> MetricsTextAsync() => Http.GetStringAsync(Metrics);

    /// <summary>Waits until <c>skiff_proxy_routes_version</c> says these routes are applied.</summary>
    public async Task WaitAppliedAsync(ProxyRoutes routes)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        var last = "";
        while (DateTime.UtcNow < deadline)
        {
            last = await MetricsTextAsync();
            if (Value(last, "skiff_proxy_routes_version") == routes.Fingerprint)
            {
                return;
            }

            await Task.Delay(50);
        }

        throw new TimeoutException($"the proxy did not apply routes {routes.Fingerprint} within 30 s; metrics:\n{last}\nstderr:\n{Process.Stderr}");
    }

    /// <summary>SIGTERM, as Docker stops a container.</summary>
    public void Terminate()
    {
        using var kill = System.Diagnostics.Process.Start("kill", ["-TERM", Process.Id.ToString(CultureInfo.InvariantCulture)])!;
        kill.WaitForExit();
    }

    /// <summary>The value of one sample, <c>name{labels} value</c>, or null when absent.</summary>
    public static double? Value(string metrics, string name, string labels = "")
    {
        var prefix = labels.Length == 0 ? name + " " : $"{name}{{{labels}}} ";
        var line = metrics.Split('\n').FirstOrDefault(l => l.StartsWith(prefix, StringComparison.Ordinal));
        return line is null ? null : double.Parse(line[prefix.Length..], CultureInfo.InvariantCulture);
    }

    public ValueTask DisposeAsync() => Process.DisposeAsync();

    [GeneratedRegex(@"metrics on (127\.0\.0\.1:\d+)")]
    private static partial Regex MetricsAddress();
}

/// <summary>
/// A routes file under test: the upstream of each listener by generation, written atomically through
/// <see cref="ProxyRoutes.Write"/>, with the generation counted up before each write.
/// </summary>
public sealed class RoutesUnderTest : IDisposable
{
    private readonly List<ProxyRoutes> history = [];
    private readonly Lock gate = new();

    public RoutesUnderTest()
    {
        Folder = Directory.CreateTempSubdirectory("skiff-proxy-").FullName;
    }

    public string Folder { get; }

    public string Path => System.IO.Path.Combine(Folder, "routes.json");

    /// <summary>The generation named by the file now (-1 before the first write).</summary>
    public int Generation
    {
        get
        {
            lock (gate)
            {
                return history.Count - 1;
            }
        }
    }

    public ProxyRoutes Current
    {
        get
        {
            lock (gate)
            {
                return history[^1];
            }
        }
    }

    /// <summary>The upstream <paramref name="address"/> had in generation <paramref name="generation"/> (null outside the history).</summary>
    public string? UpstreamAt(int generation, string address)
    {
        lock (gate)
        {
            return generation < 0 || generation >= history.Count ? null : history[generation].Listeners.SingleOrDefault(l => l.Address == address)?.Upstream;
        }
    }

    public ProxyRoutes Write(params ProxyListener[] listeners)
    {
        // As the operator writes routes without domains: version 1, which every proxy image reads.
        var routes = ProxyRoutes.For(listeners, null, []);
        lock (gate)
        {
            history.Add(routes);
        }

        ProxyRoutes.Write(Path, routes);
        return routes;
    }

    public void Dispose() => Directory.Delete(Folder, recursive: true);
}

/// <summary>
/// A bounded request loop on the loopback: HTTP requests and short TCP connections at a steady rate for
/// a fixed time, each outcome recorded with the routes generations at its start and end.
/// </summary>
public sealed class LoadLoop
{
    private readonly List<Outcome> outcomes = [];
    private readonly Lock gate = new();

    /// <summary>One request or connection: what answered (the upstream's name), or the failure.</summary>
    public sealed record Outcome(string Kind, int StartGeneration, int EndGeneration, string? Upstream, string? Failure, bool Reset);

    public IReadOnlyList<Outcome> Outcomes
    {
        get
        {
            lock (gate)
            {
                return [.. outcomes];
            }
        }
    }

    /// <summary>Runs HTTP workers against <paramref name="httpPort"/> and TCP workers against <paramref name="tcpPort"/> for <paramref name="duration"/>.</summary>
    /// <param name="generation">The routes generation now (read at each start and end).</param>
    /// <param name="stop">Ends the loop before <paramref name="duration"/> is up.</param>
    public async Task RunAsync(int httpPort, int? tcpPort, TimeSpan duration, Func<int> generation, int httpPerSecond = 300, int tcpPerSecond = 60, CancellationToken stop = default)
    {
        using var handler = new SocketsHttpHandler { UseProxy = false, PooledConnectionIdleTimeout = TimeSpan.FromSeconds(60) };
        using var client = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(30) };
        var end = Stopwatch.GetTimestamp() + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        const int httpWorkers = 6;
        const int tcpWorkers = 2;
        var workers = Enumerable.Range(0, httpWorkers)
            .Select(_ => PacedAsync(end, stop, httpPerSecond / (double)httpWorkers, () => HttpOnceAsync(client, httpPort, generation)))
            .ToList();
        if (tcpPort is { } port)
        {
            workers.AddRange(Enumerable.Range(0, tcpWorkers).Select(_ => PacedAsync(end, stop, tcpPerSecond / (double)tcpWorkers, () => TcpOnceAsync(port, generation))));
        }

        await Task.WhenAll(workers);
    }

    /// <summary>
    /// Failures, and answers from an upstream that no routes generation between the request's start
    /// (or the one before, the proxy may not have read the file yet) and its end named.
    /// </summary>
    /// <param name="routes">The routes written during the loop.</param>
    /// <param name="httpAddress">The HTTP listener's address.</param>
    /// <param name="tcpAddress">The TCP listener's address.</param>
    /// <param name="names">Each upstream's name by its address (what it answers with).</param>
    public IReadOnlyList<string> Problems(RoutesUnderTest routes, string httpAddress, string? tcpAddress, IReadOnlyDictionary<string, string> names)
    {
        var problems = new List<string>();
        foreach (var o in Outcomes)
        {
            if (o.Failure is not null)
            {
                problems.Add($"{o.Kind}: {(o.Reset ? "RESET " : "")}{o.Failure} (generations {o.StartGeneration}..{o.EndGeneration})");
                continue;
            }

            var address = o.Kind == "http" ? httpAddress : tcpAddress!;
            var allowed = Enumerable.Range(o.StartGeneration - 1, o.EndGeneration - o.StartGeneration + 2)
                .Select(g => routes.UpstreamAt(g, address))
                .Where(u => u is not null)
                .Select(u => names[u!])
                .ToHashSet();
            if (o.Upstream is null || !allowed.Contains(o.Upstream))
            {
                problems.Add($"{o.Kind}: answered by {o.Upstream}, but generations {o.StartGeneration - 1}..{o.EndGeneration} named {string.Join(", ", allowed)}");
            }
        }

        return problems;
    }

    private static async Task PacedAsync(long end, CancellationToken stop, double perSecond, Func<Task> once)
    {
        var interval = (long)(Stopwatch.Frequency / perSecond);
        var next = Stopwatch.GetTimestamp();
        while (Stopwatch.GetTimestamp() < end && !stop.IsCancellationRequested)
        {
            await once();
            next += interval;
            var wait = next - Stopwatch.GetTimestamp();
            if (wait > 0)
            {
                await Task.Delay(TimeSpan.FromSeconds(wait / (double)Stopwatch.Frequency));
            }
        }
    }

    private async Task HttpOnceAsync(HttpClient client, int port, Func<int> generation)
    {
        var start = generation();
        try
        {
            using var response = await client.GetAsync(new Uri($"http://127.0.0.1:{port}/"));
            var body = await response.Content.ReadAsStringAsync();
            Record(new Outcome("http", start, generation(), response.IsSuccessStatusCode ? body : null,
                response.IsSuccessStatusCode ? null : $"status {(int)response.StatusCode}: {body}", false));
        }
        catch (Exception e) when (e is HttpRequestException or IOException or TaskCanceledException)
        {
            Record(new Outcome("http", start, generation(), null, Describe(e), IsReset(e)));
        }
    }

    private async Task TcpOnceAsync(int port, Func<int> generation)
    {
        var start = generation();
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            using var client = await EchoClient.ConnectAsync(port, timeout.Token);
            var echo = await client.EchoAsync("ping", timeout.Token);
            await client.CloseAsync(timeout.Token);
            Record(new Outcome("tcp", start, generation(), echo == "ping" ? client.Upstream : null, echo == "ping" ? null : $"echo was \"{echo}\"", false));
        }
        catch (Exception e) when (e is SocketException or IOException or OperationCanceledException)
        {
            Record(new Outcome("tcp", start, generation(), null, Describe(e), IsReset(e)));
        }
    }

    private void Record(Outcome outcome)
    {
        lock (gate)
        {
            outcomes.Add(outcome);
        }
    }

    private static string Describe(Exception e) => string.Join(" <- ", Chain(e).Select(x => $"{x.GetType().Name}: {x.Message}"));

    private static bool IsReset(Exception e) => Chain(e).Any(x => x is SocketException { SocketErrorCode: SocketError.ConnectionReset });

    private static IEnumerable<Exception> Chain(Exception e)
    {
        for (Exception? x = e; x is not null; x = x.InnerException)
        {
            yield return x;
        }
    }
}
