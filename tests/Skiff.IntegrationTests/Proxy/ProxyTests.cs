using System.Net;
using System.Net.Sockets;
using Skiff.IntegrationTests.Infrastructure;
using Skiff.Proxy;

namespace Skiff.IntegrationTests.Proxy;

/// <summary>
/// <c>skiff proxy</c> as a real process on the loopback, with upstreams started by the test: route switches,
/// a lost routes file and a proxy handover under a bounded request loop (docs/PROXY.md).
/// </summary>
/// <remarks>One class, so its load loops never run at the same time as each other.</remarks>
public sealed class ProxyTests : IDisposable
{
    private static readonly HttpClient Client = new(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(30) };

    private readonly RoutesUnderTest routes = new();
    private readonly int httpPort = DockerFixture.FreeTcpPort();
    private readonly int tcpPort = DockerFixture.FreeTcpPort();

    private string HttpAddress => $"127.0.0.1:{httpPort}";

    private string TcpAddress => $"127.0.0.1:{tcpPort}";

    public void Dispose() => routes.Dispose();

    [Fact]
    public async Task Ten_switches_under_load_fail_no_request_reset_no_connection_and_answer_from_the_named_upstream()
    {
        await using var a = await HttpUpstream.StartAsync("http-a");
        await using var b = await HttpUpstream.StartAsync("http-b");
        await using var c = await HttpUpstream.StartAsync("http-c");
        await using var ta = TcpEchoUpstream.Start("tcp-a");
        await using var tb = TcpEchoUpstream.Start("tcp-b");
        await using var tc = TcpEchoUpstream.Start("tcp-c");
        HttpUpstream[] http = [a, b, c];
        TcpEchoUpstream[] tcp = [ta, tb, tc];
        var applied = routes.Write(Http(a, 1), Tcp(ta, 1));
        await using var proxy = await ProxyProcess.StartAsync(routes.Path);
        await proxy.WaitAppliedAsync(applied);

        // Connections that stay open across every switch, and a long request started before the first one.
        using var ct = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var open = new List<EchoClient>();
        for (var i = 0; i < 3; i++)
        {
            open.Add(await EchoClient.ConnectAsync(tcpPort, ct.Token));
        }

        var longRequest = Client.GetStringAsync(new Uri($"http://{HttpAddress}/slow?seconds=5"));
        await Task.Delay(TimeSpan.FromMilliseconds(300));

        // The loop runs through every switch and a second past the last, however slow the machine.
        var loop = new LoadLoop();
        using var stopLoop = new CancellationTokenSource();
        var running = loop.RunAsync(httpPort, tcpPort, TimeSpan.FromMinutes(2), () => routes.Generation, stop: stopLoop.Token);
        for (var n = 1; n <= 10; n++)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(600));
            var next = routes.Write(Http(http[n % 3], n + 1), Tcp(tcp[n % 3], n + 1));
            await proxy.WaitAppliedAsync(next);
            foreach (var client in open)
            {
                Assert.Equal($"still-{n}", await client.EchoAsync($"still-{n}", ct.Token));
            }
        }

        await Task.Delay(TimeSpan.FromSeconds(1));
        await stopLoop.CancelAsync();
        await running;
        Assert.Equal("http-a", await longRequest);
        foreach (var client in open)
        {
            Assert.Equal("tcp-a", client.Upstream);
            await client.CloseAsync(ct.Token);
            client.Dispose();
        }

        var outcomes = loop.Outcomes;
        Assert.Empty(loop.Problems(routes, HttpAddress, TcpAddress, Names(a, b, c, ta, tb, tc)));
        Assert.True(outcomes.Count(o => o.Kind == "http") > 300, $"only {outcomes.Count(o => o.Kind == "http")} HTTP requests ran");
        Assert.True(outcomes.Count(o => o.Kind == "tcp") > 50, $"only {outcomes.Count(o => o.Kind == "tcp")} TCP connections ran");

        // Every upstream answered: the switches took effect.
        Assert.Equal(["http-a", "http-b", "http-c"], outcomes.Where(o => o.Kind == "http").Select(o => o.Upstream!).Distinct().Order());
        Assert.Equal(["tcp-a", "tcp-b", "tcp-c"], outcomes.Where(o => o.Kind == "tcp").Select(o => o.Upstream!).Distinct().Order());

        var metrics = await proxy.MetricsTextAsync();
        Assert.Equal(10, ProxyProcess.Value(metrics, "skiff_proxy_route_switches_total", $"listener=\"{HttpAddress}\""));
        Assert.Equal(10, ProxyProcess.Value(metrics, "skiff_proxy_route_switches_total", $"listener=\"{TcpAddress}\""));
        Assert.True(ProxyProcess.Value(metrics, "skiff_proxy_requests_total", $"listener=\"{HttpAddress}\",code=\"2xx\"") >= outcomes.Count(o => o.Kind == "http"));
        Assert.True(ProxyProcess.Value(metrics, "skiff_proxy_request_duration_seconds_count", $"listener=\"{HttpAddress}\"") >= outcomes.Count(o => o.Kind == "http"));
        Assert.Equal(0, ProxyProcess.Value(metrics, "skiff_proxy_upstream_errors_total", $"listener=\"{HttpAddress}\""));
        Assert.Equal(0, ProxyProcess.Value(metrics, "skiff_proxy_upstream_errors_total", $"listener=\"{TcpAddress}\""));
        Assert.NotNull(ProxyProcess.Value(metrics, "skiff_proxy_active_connections", $"listener=\"{HttpAddress}\",protocol=\"http\""));
        Assert.Equal(0, ProxyProcess.Value(metrics, "skiff_proxy_active_connections", $"listener=\"{TcpAddress}\",protocol=\"tcp\""));
        Assert.Equal(routes.Current.Fingerprint, ProxyProcess.Value(metrics, "skiff_proxy_routes_version"));
    }

    [Fact]
    public async Task A_missing_empty_or_invalid_routes_file_keeps_the_last_routes_and_warns_once()
    {
        await using var a = await HttpUpstream.StartAsync("http-a");
        await using var b = await HttpUpstream.StartAsync("http-b");

        // Started before any file: it serves nothing and waits.
        await using var proxy = await ProxyProcess.StartAsync(routes.Path);
        Assert.Equal(0, ProxyProcess.Value(await proxy.MetricsTextAsync(), "skiff_proxy_routes_version"));
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => Client.GetStringAsync(new Uri($"http://{HttpAddress}/")));

        await proxy.WaitAppliedAsync(routes.Write(Http(a, 1)));
        Assert.Equal("http-a", await Client.GetStringAsync(new Uri($"http://{HttpAddress}/")));

        File.Delete(routes.Path);
        await UntilAsync(() => proxy.Process.Stderr.Contains("is gone; keeping the last good routes", StringComparison.Ordinal), proxy);
        Assert.Equal("http-a", await Client.GetStringAsync(new Uri($"http://{HttpAddress}/")));

        // Each bad file is put in place whole (as the operator writes), so the proxy never reads one half-written.
        ReplaceWith(routes.Path, "{\"version\": 1, \"listeners\": [{\"address\": ");
        await UntilAsync(() => proxy.Process.Stderr.Contains("is refused (not JSON", StringComparison.Ordinal), proxy);
        ReplaceWith(routes.Path, "");
        await UntilAsync(() => proxy.Process.Stderr.Contains("is refused (the file is empty)", StringComparison.Ordinal), proxy);

        // Three more checks of the same empty file say nothing more.
        await Task.Delay(TimeSpan.FromSeconds(6.5));
        Assert.Equal("http-a", await Client.GetStringAsync(new Uri($"http://{HttpAddress}/")));
        Assert.Equal(1, Count(proxy.Process.Stderr, "is refused (the file is empty)"));
        Assert.Equal(1, Count(proxy.Process.Stderr, "is refused (not JSON"));
        Assert.Equal(1, Count(proxy.Process.Stderr, "is gone"));
        Assert.Equal(routes.Current.Fingerprint, ProxyProcess.Value(await proxy.MetricsTextAsync(), "skiff_proxy_routes_version"));

        // A good file again: applied.
        await proxy.WaitAppliedAsync(routes.Write(Http(b, 2)));
        Assert.Equal("http-b", await Client.GetStringAsync(new Uri($"http://{HttpAddress}/")));
    }

    [Fact]
    public async Task A_second_proxy_takes_over_and_the_first_drains_on_SIGTERM_without_a_failed_request()
    {
        await using var a = await HttpUpstream.StartAsync("http-a");
        await using var ta = TcpEchoUpstream.Start("tcp-a");
        var applied = routes.Write(Http(a, 1), Tcp(ta, 1));
        await using var first = await ProxyProcess.StartAsync(routes.Path);
        await first.WaitAppliedAsync(applied);

        // In flight on the first proxy when it is told to stop: it must finish there.
        using var ownClient = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(30) };
        var longRequest = ownClient.GetStringAsync(new Uri($"http://{HttpAddress}/slow?seconds=4"));
        await Task.Delay(TimeSpan.FromMilliseconds(300));

        // The loop runs until the second proxy, alone, has answered 100 requests (however slow the machine).
        var loop = new LoadLoop();
        using var stopLoop = new CancellationTokenSource();
        var running = loop.RunAsync(httpPort, tcpPort, TimeSpan.FromMinutes(2), () => routes.Generation, stop: stopLoop.Token);
        await Task.Delay(TimeSpan.FromSeconds(2));
        await using var second = await ProxyProcess.StartAsync(routes.Path);
        await second.WaitAppliedAsync(applied);
        await Task.Delay(TimeSpan.FromSeconds(1));

        first.Terminate();
        var exit = await first.Process.WaitAsync(TimeSpan.FromSeconds(30));
        var servedBySecond = 0.0;
        for (var i = 0; i < 300 && servedBySecond <= 100; i++)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(200));
            servedBySecond = ProxyProcess.Value(await second.MetricsTextAsync(), "skiff_proxy_requests_total", $"listener=\"{HttpAddress}\",code=\"2xx\"") ?? 0;
        }

        await stopLoop.CancelAsync();
        await running;

        Assert.True(exit == 0, $"the first proxy exited {exit}:\n{first.Process.Stderr}");
        Assert.Equal("http-a", await longRequest);
        Assert.Empty(loop.Problems(routes, HttpAddress, TcpAddress, Names(a, ta)));
        Assert.True(loop.Outcomes.Count > 300, $"only {loop.Outcomes.Count} requests ran");
        var metrics = await second.MetricsTextAsync();
        Assert.True(ProxyProcess.Value(metrics, "skiff_proxy_requests_total", $"listener=\"{HttpAddress}\",code=\"2xx\"") > 100, metrics);
        Assert.Contains("Proxy stopped", first.Process.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Requests_pass_through_with_forwarded_headers_and_a_dead_upstream_is_502()
    {
        await using var a = await HttpUpstream.StartAsync("http-a");
        var closedPort = DockerFixture.FreeTcpPort();
        var dead = new ProxyListener($"127.0.0.1:{tcpPort}", ProxyProtocol.Tcp, "test/dead", "tcp", 1, $"127.0.0.1:{closedPort}");
        var applied = routes.Write(Http(a, 1), dead);
        await using var proxy = await ProxyProcess.StartAsync(routes.Path);
        await proxy.WaitAppliedAsync(applied);

        using var teapot = await Client.GetAsync(new Uri($"http://{HttpAddress}/status/418"));
        Assert.Equal((HttpStatusCode)418, teapot.StatusCode);
        Assert.Equal("http-a", await teapot.Content.ReadAsStringAsync());
        var headers = await Client.GetStringAsync(new Uri($"http://{HttpAddress}/headers"));
        Assert.Equal(
            $"X-Forwarded-For: 127.0.0.1\nX-Forwarded-Host: {HttpAddress}\nX-Forwarded-Port: {httpPort}\nX-Forwarded-Proto: http",
            headers);

        await proxy.WaitAppliedAsync(routes.Write(Http(a, 1) with { Upstream = $"127.0.0.1:{closedPort}" }, dead));
        using var bad = await Client.GetAsync(new Uri($"http://{HttpAddress}/"));
        Assert.Equal(HttpStatusCode.BadGateway, bad.StatusCode);

        // TCP: the client's connection is closed at once, and the error counted.
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(IPAddress.Loopback, tcpPort);
        Assert.Equal(0, await socket.ReceiveAsync(new byte[16], SocketFlags.None));

        var metrics = await proxy.MetricsTextAsync();
        Assert.Equal(1, ProxyProcess.Value(metrics, "skiff_proxy_upstream_errors_total", $"listener=\"{HttpAddress}\""));
        Assert.Equal(1, ProxyProcess.Value(metrics, "skiff_proxy_upstream_errors_total", $"listener=\"{TcpAddress}\""));
        Assert.Equal(1, ProxyProcess.Value(metrics, "skiff_proxy_requests_total", $"listener=\"{HttpAddress}\",code=\"5xx\""));
        Assert.Equal(1, ProxyProcess.Value(metrics, "skiff_proxy_requests_total", $"listener=\"{HttpAddress}\",code=\"4xx\""));

        // A removed listener stops accepting; its series go once it drained.
        await proxy.WaitAppliedAsync(routes.Write(Http(a, 1)));
        await UntilAsync(async () => ProxyProcess.Value(await proxy.MetricsTextAsync(), "skiff_proxy_upstream_errors_total", $"listener=\"{TcpAddress}\"") is null, proxy);
        await Assert.ThrowsAsync<SocketException>(async () =>
        {
            using var refused = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await refused.ConnectAsync(IPAddress.Loopback, tcpPort);
        });
    }

    private ProxyListener Http(HttpUpstream upstream, long revision) =>
        new(HttpAddress, ProxyProtocol.Http, "test/web", "http", revision, upstream.Address);

    private ProxyListener Tcp(TcpEchoUpstream upstream, long revision) =>
        new(TcpAddress, ProxyProtocol.Tcp, "test/echo", "echo", revision, upstream.Address);

    private static Dictionary<string, string> Names(params object[] upstreams) => upstreams.ToDictionary(
        u => u switch { HttpUpstream h => h.Address, TcpEchoUpstream t => t.Address, _ => throw new ArgumentException("not an upstream") },
        u => u switch { HttpUpstream h => h.Name, TcpEchoUpstream t => t.Name, _ => throw new ArgumentException("not an upstream") });

    private static int Count(string text, string part) => (text.Length - text.Replace(part, "", StringComparison.Ordinal).Length) / part.Length;

    private static Task UntilAsync(Func<bool> condition, ProxyProcess proxy) => UntilAsync(() => Task.FromResult(condition()), proxy);

    private static async Task UntilAsync(Func<Task<bool>> condition, ProxyProcess proxy)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"not within 30 s; proxy stderr:\n{proxy.Process.Stderr}");
            }

            await Task.Delay(100);
        }
    }

    private static void ReplaceWith(string path, string text)
    {
        var temporary = path + ".tmp";
        File.WriteAllText(temporary, text);
        File.Move(temporary, path, overwrite: true);
    }
}
