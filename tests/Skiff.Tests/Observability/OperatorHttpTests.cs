using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Prometheus;
using Skiff.Observability;
using Skiff.Runtime;

namespace Skiff.Tests.Observability;

public class OperatorHttpTests
{
    [Fact]
    public async Task Readyz_Is503UntilEveryCheckPasses_ThenFlipsBackWhenOneFails()
    {
        var synced = false;
        var dockerUp = false;
        var health = new HealthChecks();
        health.AddReadiness("cache-synced", () => synced);
        health.AddReadiness("docker", _ => Task.FromResult(dockerUp), TimeSpan.Zero);
        await using var server = await TestServer.StartAsync(health: health);

        var (code, body) = await server.GetAsync(server.Readyz);
        Assert.Equal(503, code);
        Assert.Contains("[-]cache-synced failed", body);
        Assert.Contains("[-]docker failed", body);

        synced = true;
        (code, body) = await server.GetAsync(server.Readyz);
        Assert.Equal(503, code);
        Assert.Contains("[+]cache-synced ok", body);
        Assert.Contains("[-]docker failed", body);

        dockerUp = true;
        Assert.Equal((200, "ok"), await server.GetAsync(server.Readyz));

        dockerUp = false;
        (code, body) = await server.GetAsync(server.Readyz);
        Assert.Equal(503, code);
        Assert.Contains("[-]docker failed", body);
        Assert.DoesNotContain("[-]cache-synced", body);
    }

    [Fact]
    public async Task Healthz_Is200WhileWorkersMoveOrIdle_And500WhenOneIsWedged()
    {
        var time = new FakeTimeProvider();
        var watchdog = new Watchdog(time);
        watchdog.Register("controller/appdeployment", TimeSpan.FromMinutes(10));
        var health = new HealthChecks();
        health.AddLiveness("workers", () => watchdog.Healthy);
        await using var server = await TestServer.StartAsync(health: health);
        var entered = new TaskCompletionSource();
        var wedge = new TaskCompletionSource<ReconcileResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        var reconciler = new WatchdogReconciler(
            new LambdaReconciler((_, _) => { entered.TrySetResult(); return wedge.Task; }), watchdog, "controller/appdeployment");

        time.Advance(TimeSpan.FromHours(1)); // idle for an hour: healthy
        Assert.Equal((200, "ok"), await server.GetAsync(server.Healthz));

        var reconcile = reconciler.ReconcileAsync(new ObjectKey("prod", "api"), CancellationToken.None);
        await entered.Task;
        time.Advance(TimeSpan.FromMinutes(9));
        Assert.Equal((200, "ok"), await server.GetAsync(server.Healthz));

        time.Advance(TimeSpan.FromMinutes(2));
        var (code, body) = await server.GetAsync(server.Healthz);
        Assert.Equal(500, code);
        Assert.Contains("[-]workers failed", body);
        Assert.Equal(["controller/appdeployment"], watchdog.Stuck());

        wedge.SetResult(ReconcileResult.Done);
        await reconcile;
        Assert.Equal((200, "ok"), await server.GetAsync(server.Healthz));
    }

    [Fact]
    public async Task Probes_WithVerbose_ListEveryCheckOnSuccess()
    {
        var health = new HealthChecks();
        health.AddLiveness("ping", () => true);
        await using var server = await TestServer.StartAsync(health: health);

        var (code, body) = await server.GetAsync(new Uri(server.Healthz + "?verbose"));

        Assert.Equal(200, code);
        Assert.Equal("[+]ping ok\nhealthz check passed", body);
    }

    [Fact]
    public async Task Status_ServesTheProvidersObjectAsJson_And404WithoutOne()
    {
        var revision = 3;
        await using var server = await TestServer.StartAsync(status: () => new { Node = "vps-1", Revision = revision });
        revision = 4;

        using var response = await server.Http.GetAsync(new Uri($"http://{server.Server.MetricsEndpoint}/status"));
        Assert.Equal("application/json; charset=utf-8", response.Content.Headers.ContentType?.ToString());
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("vps-1", json.RootElement.GetProperty("node").GetString());
        Assert.Equal(4, json.RootElement.GetProperty("revision").GetInt32());

        await using var without = await TestServer.StartAsync();
        Assert.Equal(404, (await without.GetAsync(new Uri($"http://{without.Server.MetricsEndpoint}/status"))).Code);
    }

    [Fact]
    public async Task SeparateAddresses_ServeOnlyTheirOwnPaths()
    {
        await using var server = await TestServer.StartAsync();

        Assert.NotEqual(server.Server.MetricsEndpoint!.Port, server.Server.HealthEndpoint!.Port);
        Assert.Equal(404, (await server.GetAsync(new Uri($"http://{server.Server.MetricsEndpoint}/healthz"))).Code);
        Assert.Equal(404, (await server.GetAsync(new Uri($"http://{server.Server.HealthEndpoint}/metrics"))).Code);
        Assert.Equal(200, (await server.GetAsync(server.Metrics)).Code);
        Assert.Equal(200, (await server.GetAsync(server.Healthz)).Code);
    }

    [Fact]
    public async Task SameAddress_OneListenerServesEveryPath()
    {
        var address = "127.0.0.1:" + FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture);
        await using var server = await TestServer.StartAsync(metricsAddress: address, healthAddress: address);

        Assert.Equal(server.Server.MetricsEndpoint, server.Server.HealthEndpoint);
        foreach (var path in new[] { "/metrics", "/healthz", "/readyz" })
        {
            Assert.Equal(200, (await server.GetAsync(new Uri($"http://{address}{path}"))).Code);
        }
    }

    [Fact]
    public async Task DisabledAddress_ServesNothingThere()
    {
        await using var server = await TestServer.StartAsync(metricsAddress: "0");

        Assert.Null(server.Server.MetricsEndpoint);
        Assert.Equal(200, (await server.GetAsync(server.Healthz)).Code);
    }

    [Fact]
    public async Task AllInterfaces_EphemeralPort_IsReachableOnLoopback()
    {
        await using var server = await TestServer.StartAsync(metricsAddress: ":0", healthAddress: "0");

        var port = server.Server.MetricsEndpoint!.Port;
        Assert.NotEqual(0, port);
        Assert.Equal(200, (await server.GetAsync(new Uri($"http://127.0.0.1:{port}/metrics"))).Code);
    }

    [Fact]
    public async Task PortInUse_FailsTheStart()
    {
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        var address = $"127.0.0.1:{((IPEndPoint)taken.LocalEndpoint).Port}";

        await Assert.ThrowsAnyAsync<IOException>(() => OperatorHttp.StartAsync(address, "0", Metrics.NewCustomRegistry(), new HealthChecks(), null,
            NullLoggerFactory.Instance, CancellationToken.None));
    }

    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }
}
