using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Skiff.Api;
using Skiff.IntegrationTests.FolderSource;
using Skiff.IntegrationTests.Infrastructure;
using Skiff.Reconcile;
using Skiff.State;

namespace Skiff.IntegrationTests.Proxy;

/// <summary>
/// Rollouts through the node proxy (issue 16, DESIGN §7), end to end: a real <c>skiff run</c> with <c>--proxy-image</c>
/// runs <c>skiff_proxy</c> from the operator's test image on the real engine, and a bounded request loop on the loopback
/// (HTTP and TCP) runs through every rollout, an operator killed with SIGKILL, and a proxy upgrade.
/// </summary>
/// <remarks>
/// The tests of this class share the engine's one <c>skiff_proxy</c> container name, so they run one after the other
/// (xunit runs a class's tests in sequence), and remove the proxy when done.
/// </remarks>
[Collection(DockerCollection.Name)]
public sealed class ZeroDowntimeTests(DockerFixture docker) : IAsyncLifetime
{
    private const string ProxyImage = "skiff-test/skiff:dev";

    public Task InitializeAsync() => RemoveProxiesAsync();

    public Task DisposeAsync() => RemoveProxiesAsync();

    [Fact]
    public async Task Ten_rollouts_of_an_HTTP_and_a_TCP_port_one_of_them_failing_lose_no_request_and_only_healthy_revisions_answer()
    {
        await using var w = new FolderWorkspace();
        var site = new Site(w);
        w.Write("web.yaml", site.Yaml("v1"));
        await using var run = SkiffProcess.Start(site.RunArgs(ProxyImage));
        await site.ReadyAsync(1, run);

        using var load = new Load(site.HttpPort, site.TcpPort);
        var loop = load.RunAsync();
        await Eventually.TrueAsync("the loop gets answers", () => load.Answers > 50, TimeSpan.FromSeconds(30));

        // A long request that started before the next switch completes, on the revision it started on.
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        var slow = http.GetStringAsync(new Uri($"http://127.0.0.1:{site.HttpPort}/slow?seconds=5"));
        await Task.Delay(300);

        var revision = 1L;
        for (var i = 2; i <= 11; i++)
        {
            var bad = i == 6;
            // Revision 2's old revision drains for 6 s, long enough for the 5 s request; the others for 2 s.
            w.Write("web.yaml", site.Yaml($"v{i}", failHealth: bad, drain: i == 2 ? 6 : 2));
            load.Mark($"v{i} written");
            if (bad)
            {
                await Eventually.UntilAsync($"v{i} rolled back", site.Read, s => s?.Status?.History?.LastOrDefault()?.Outcome == Outcomes.RolledBack, TimeSpan.FromSeconds(90), () => run.Stderr);
                revision++;
                continue;
            }

            revision++;
            await site.ReadyAsync(revision, run);
            if (i == 2)
            {
                Assert.Contains("\"version\":\"v1\"", await slow, StringComparison.Ordinal);
            }
        }

        load.Stop();
        await loop;

        Assert.True(load.Failures.IsEmpty, $"{load.Failures.Count} failed of {load.Answers}: {string.Join("; ", load.Failures.Take(5))}\n{load.Timeline()}");
        Assert.DoesNotContain("v6", load.Versions.Keys);
        Assert.True(load.Versions.Count >= 5, $"answers came from {string.Join(", ", load.Versions.Keys)}");
        Assert.True(load.TcpAnswers > 30, $"{load.TcpAnswers} TCP exchanges");
        var app = Assert.Single(await w.ContainersAsync("web"), c => c.Component == StackNames.AppComponent);
        Assert.Equal(SkiffLabels.RoutingProxy, app.Label(SkiffLabels.Routing));

        // skiff status shows where each port goes.
        var status = await SkiffProcess.RunAsync(TimeSpan.FromSeconds(30), "status", "web", "-n", w.Namespace, "--state-dir", w.StateDir);
        Assert.Matches($@"127\.0\.0\.1:{site.HttpPort}\s+http\s+http\s+{revision}\s", status.Stdout);
        Assert.Matches($@"127\.0\.0\.1:{site.TcpPort}\s+tcp\s+echo\s+{revision}\s", status.Stdout);
        Assert.Contains("\"version\":\"v11\"", await http.GetStringAsync(new Uri($"http://127.0.0.1:{site.HttpPort}/")), StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_operator_killed_mid_rollout_and_a_proxy_upgrade_lose_no_request_and_the_new_proxy_is_skiff_proxy()
    {
        await using var w = new FolderWorkspace();
        var site = new Site(w);
        w.Write("web.yaml", site.Yaml("v1"));
        var run = SkiffProcess.Start(site.RunArgs(ProxyImage));
        try
        {
            await site.ReadyAsync(1, run);
            using var load = new Load(site.HttpPort, site.TcpPort);
            var loop = load.RunAsync();
            await Eventually.TrueAsync("the loop gets answers", () => load.Answers > 50, TimeSpan.FromSeconds(30));

            // SIGKILL while revision 2 is on its way (it warms up for 3 s), then a new operator finishes the rollout.
            w.Write("web.yaml", site.Yaml("v2", healthyAfter: 3));
            await Eventually.UntilAsync("revision 2 begins", site.Read, s => s?.Status?.History?.Any(h => h.Revision == 2) == true, TimeSpan.FromSeconds(30));
            load.Mark("operator killed mid-rollout");
            run.Kill();
            var log = run.Stderr;
            await run.DisposeAsync();
            run = SkiffProcess.Start(site.RunArgs(ProxyImage));
            load.Mark("second operator started");
            await site.ReadyAsync(2, run);
            load.Mark("revision 2 ready");

            // A new operator image: the proxy is replaced start-first, under the same load.
            await docker.Client.Images.TagImageAsync(ProxyImage, new global::Docker.DotNet.Models.ImageTagParameters { RepositoryName = "skiff-test/skiff", Tag = "next" });
            var before = await ProxiesAsync();
            run.Kill();
            log += run.Stderr;
            await run.DisposeAsync();
            run = SkiffProcess.Start(site.RunArgs("skiff-test/skiff:next"));
            load.Mark("operator of skiff:next started");
            await Eventually.TrueAsync("the proxy runs skiff-test/skiff:next alone", async () =>
            {
                var now = await ProxiesAsync();
                return now.Count == 1 && now[0].Image == "skiff-test/skiff:next" && now[0].State == "running" && now[0].Names!.Contains("/skiff_proxy");
            }, TimeSpan.FromSeconds(90), () => run.Stderr);
            load.Mark("skiff:next proxy alone");
            await Task.Delay(1000);

            load.Stop();
            await loop;
            Assert.Single(before);
            log += run.Stderr;
            Assert.True(load.Failures.IsEmpty, $"{load.Failures.Count} failed of {load.Answers}: {string.Join("; ", load.Failures.Take(5))}\n{load.Timeline()}\n"
                + string.Join('\n', log.Split('\n').Where(l => l.Contains("Proxy", StringComparison.Ordinal) || l.Contains("revision", StringComparison.Ordinal))));
            Assert.Equal(["v1", "v2"], load.Versions.Keys.Order(StringComparer.Ordinal));

            // skiff plan sees the running proxy: the next rollout starts beside the live revision (start-first); without the
            // proxy it would stop revision 2 first, for its host port.
            run.Kill();
            await run.DisposeAsync();
            w.Write("web.yaml", site.Yaml("v3"));
            var plan = await SkiffProcess.RunAsync(TimeSpan.FromSeconds(60), "plan", "--path", w.Resources, "--node", "local", "--state-dir", w.StateDir);
            Assert.True(plan.Exit == 0, plan.Stdout + plan.Stderr);
            Assert.Contains("roll out revision 3", plan.Stdout, StringComparison.Ordinal);
            Assert.Contains("start app container", plan.Stdout, StringComparison.Ordinal);
            Assert.DoesNotContain("stop container", plan.Stdout, StringComparison.Ordinal);

            // Leaving proxy mode: an operator without --proxy-image removes skiff_proxy and the app publishes its ports itself.
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
            run = SkiffProcess.Start(w.RunArgs());
            await site.ReadyAsync(3, run);
            Assert.Empty(await ProxiesAsync());
            await Eventually.TrueAsync("the app answers on its published port", async () =>
            {
                try
                {
                    return (await http.GetStringAsync(new Uri($"http://127.0.0.1:{site.HttpPort}/"))).Contains("\"version\":\"v3\"", StringComparison.Ordinal);
                }
                catch (HttpRequestException)
                {
                    return false;
                }
            }, TimeSpan.FromSeconds(30), () => run.Stderr);
            Assert.Contains("runs without --proxy-image, but the node proxy skiff_proxy", run.Stderr, StringComparison.Ordinal);
        }
        finally
        {
            await run.DisposeAsync();
            await docker.Client.Images.DeleteImageAsync("skiff-test/skiff:next", new global::Docker.DotNet.Models.ImageDeleteParameters { Force = false }).ContinueWith(_ => { }, TaskScheduler.Default);
        }
    }

    private async Task<IList<global::Docker.DotNet.Models.ContainerListResponse>> ProxiesAsync() =>
        await docker.Client.Containers.ListContainersAsync(new global::Docker.DotNet.Models.ContainersListParameters
        {
            All = true,
            Filters = new Dictionary<string, IDictionary<string, bool>> { ["label"] = new Dictionary<string, bool> { ["dev.skiff.component=proxy"] = true } },
        });

    private async Task RemoveProxiesAsync()
    {
        foreach (var c in await ProxiesAsync())
        {
            await docker.Client.Containers.RemoveContainerAsync(c.ID, new global::Docker.DotNet.Models.ContainerRemoveParameters { Force = true, RemoveVolumes = true });
        }
    }

    /// <summary>One stack with an HTTP and a TCP port on the loopback, through the proxy.</summary>
    private sealed class Site(FolderWorkspace w)
    {
        public int HttpPort { get; } = DockerFixture.FreeTcpPort();

        public int TcpPort { get; } = DockerFixture.FreeTcpPort();

        public int MetricsPort { get; } = DockerFixture.FreeTcpPort();

        public string[] RunArgs(string proxyImage) =>
            [.. w.RunArgs(), "--proxy-image", proxyImage, "--proxy-metrics-bind-address", $"127.0.0.1:{MetricsPort}"];

        public string Yaml(string version, bool failHealth = false, int healthyAfter = 0, int drain = 2) =>
            Stacks.Yaml(Stacks.Stateless("web", w.Namespace)
                .WithEnv("APP_VERSION", version)
                .WithEnv("TESTAPP_TCP_PORT", 9000)
                .WithEnv("TESTAPP_FAIL_HEALTH", failHealth ? "1" : "0")
                .WithEnv("TESTAPP_HEALTHY_AFTER_SECONDS", healthyAfter)
                .With(s =>
                {
                    s.App.Ports =
                    [
                        new PortSpec { Name = "http", ContainerPort = 8080, HostPort = HttpPort, HostIP = "127.0.0.1" },
                        new PortSpec { Name = "echo", ContainerPort = 9000, HostPort = TcpPort, HostIP = "127.0.0.1", Protocol = PortProtocols.Tcp },
                    ];
                    s.Rollout = new RolloutSpec { ProgressDeadlineSeconds = 8, DrainSeconds = drain };
                }));

        public StatusRecord? Read()
        {
            var file = Path.Combine(w.StateDir, "status", $"{w.Namespace}_web.json");
            try
            {
                return File.Exists(file) ? JsonSerializer.Deserialize<StatusRecord>(File.ReadAllText(file), StateStore.Json) : null;
            }
            catch (IOException)
            {
                return null;
            }
        }

        public Task ReadyAsync(long revision, SkiffProcess run) =>
            Eventually.UntilAsync($"web revision {revision} is Ready with its rollout done", Read,
                s => s?.Status?.Revision == revision && Conditions.IsTrue(s.Status, ConditionTypes.Ready) && !Conditions.RolloutInProgress(s.Status),
                TimeSpan.FromSeconds(90), () => run.Stderr);
    }

    /// <summary>
    /// A bounded request loop on the loopback: four HTTP workers (about 300 requests/s) and two TCP workers (a connection
    /// each 20 ms: banner, one echo, a clean close), until stopped or 5 minutes have passed.
    /// </summary>
    private sealed class Load(int httpPort, int tcpPort) : IDisposable
    {
        private readonly CancellationTokenSource stop = new(TimeSpan.FromMinutes(5));
        private readonly HttpClient http = new(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromSeconds(5) }) { Timeout = TimeSpan.FromSeconds(20) };
        private readonly Stopwatch clock = Stopwatch.StartNew();
        private readonly ConcurrentQueue<(TimeSpan At, string What)> events = new();
        private int answers;
        private int tcpAnswers;

        public ConcurrentQueue<string> Failures { get; } = new();

        public ConcurrentDictionary<string, int> Versions { get; } = new(StringComparer.Ordinal);

        public int Answers => Volatile.Read(ref answers);

        public int TcpAnswers => Volatile.Read(ref tcpAnswers);

        public Task RunAsync() => Task.WhenAll(
            Enumerable.Range(0, 4).Select(_ => Task.Run(HttpWorkerAsync))
                .Concat(Enumerable.Range(0, 2).Select(_ => Task.Run(TcpWorkerAsync))));

        public void Stop() => stop.Cancel();

        /// <summary>Notes a step of the test on the loop's clock, for <see cref="Timeline"/>.</summary>
        public void Mark(string what) => events.Enqueue((clock.Elapsed, "-- " + what));

        /// <summary>The marks and the first few failures of each second, in time order: where an outage sits.</summary>
        public string Timeline() => string.Join('\n', events
            .GroupBy(e => e.What.StartsWith("-- ", StringComparison.Ordinal) ? e.What + e.At : ((int)e.At.TotalSeconds).ToString(System.Globalization.CultureInfo.InvariantCulture))
            .SelectMany(g => g.Take(2))
            .OrderBy(e => e.At)
            .Select(e => $"{e.At.TotalSeconds,7:0.000}s {e.What}"));

        private void Fail(string what)
        {
            Failures.Enqueue(what);
            events.Enqueue((clock.Elapsed, what));
        }

        public void Dispose()
        {
            stop.Cancel();
            stop.Dispose();
            http.Dispose();
        }

        private async Task HttpWorkerAsync()
        {
            var uri = new Uri($"http://127.0.0.1:{httpPort}/");
            while (!stop.IsCancellationRequested)
            {
                var started = Stopwatch.GetTimestamp();
                try
                {
                    using var response = await http.GetAsync(uri, CancellationToken.None);
                    var body = await response.Content.ReadAsStringAsync(CancellationToken.None);
                    if (response.StatusCode != HttpStatusCode.OK)
                    {
                        Fail($"HTTP {(int)response.StatusCode}: {body.Trim()}");
                    }
                    else
                    {
                        var version = JsonDocument.Parse(body).RootElement.GetProperty("version").GetString()!;
                        Versions.AddOrUpdate(version, 1, (_, n) => n + 1);
                        Interlocked.Increment(ref answers);
                    }
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException or JsonException or IOException)
                {
                    Fail($"HTTP {e.GetType().Name}: {e.Message}");
                }

                var left = TimeSpan.FromMilliseconds(12) - Stopwatch.GetElapsedTime(started);
                if (left > TimeSpan.Zero)
                {
                    await Task.Delay(left, CancellationToken.None);
                }
            }
        }

        private async Task TcpWorkerAsync()
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
                    using var client = await EchoClient.ConnectAsync(tcpPort, timeout.Token);
                    if (await client.EchoAsync("ping", timeout.Token) != "ping")
                    {
                        Fail($"TCP: wrong echo from {client.Upstream}");
                    }

                    await client.CloseAsync(timeout.Token);
                    if (client.Upstream == "v6")
                    {
                        Fail("TCP: the failing revision v6 answered");
                    }

                    Interlocked.Increment(ref tcpAnswers);
                }
                catch (Exception e) when (e is SocketException or IOException or OperationCanceledException)
                {
                    Fail($"TCP {e.GetType().Name}: {e.Message}");
                }

                await Task.Delay(20, CancellationToken.None);
            }
        }
    }
}
