using System.Runtime.CompilerServices;
using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using Prometheus;
using Skiff.Observability;
using Skiff.Runtime;
using Skiff.IntegrationTests.Infrastructure;

namespace Skiff.Tests.Observability;

public class SkiffMetricsTests
{
    /// <summary>controller-runtime's families: name, type and label names (histograms: on their _count series).</summary>
    public static TheoryData<string, string, string[]> ControllerRuntimeFamilies => new()
    {
        { "controller_runtime_reconcile_total", "counter", ["controller", "result"] },
        { "controller_runtime_reconcile_errors_total", "counter", ["controller"] },
        { "controller_runtime_terminal_reconcile_errors_total", "counter", ["controller"] },
        { "controller_runtime_reconcile_time_seconds", "histogram", ["controller"] },
        { "controller_runtime_max_concurrent_reconciles", "gauge", ["controller"] },
        { "controller_runtime_active_workers", "gauge", ["controller"] },
        { "workqueue_depth", "gauge", ["name", "controller", "priority"] },
        { "workqueue_adds_total", "counter", ["name", "controller"] },
        { "workqueue_queue_duration_seconds", "histogram", ["name", "controller"] },
        { "workqueue_work_duration_seconds", "histogram", ["name", "controller"] },
        { "workqueue_unfinished_work_seconds", "gauge", ["name", "controller"] },
        { "workqueue_longest_running_processor_seconds", "gauge", ["name", "controller"] },
        { "workqueue_retries_total", "counter", ["name", "controller"] },
        { "leader_election_master_status", "gauge", ["name"] },
        { "rest_client_requests_total", "counter", ["code", "method", "host"] },
        { "skiff_appdeployment_ready", "gauge", ["namespace", "name"] },
        { "skiff_appdeployment_phase", "gauge", ["namespace", "name", "phase"] },
        { "skiff_rollouts_total", "counter", ["result"] },
        { "skiff_rollbacks_total", "counter", ["reason"] },
        { "skiff_rollout_duration_seconds", "histogram", [] },
        { "skiff_image_gc_runs_total", "counter", ["result"] },
        { "skiff_image_gc_images_removed_total", "counter", [] },
        { "skiff_image_gc_bytes_reclaimed_total", "counter", [] },
        { "skiff_image_gc_protected_images", "gauge", [] },
        { "skiff_disk_usage_ratio", "gauge", ["node"] },
        { "skiff_docker_requests_total", "counter", ["operation", "result"] },
    };

    [Theory]
    [MemberData(nameof(ControllerRuntimeFamilies))]
    public async Task Scrape_AfterDrivingEveryHook_HasTheFamilyWithItsTypeAndLabels(string name, string type, string[] labels)
    {
        await using var server = await TestServer.StartAsync();
        await DriveEveryHookAsync(new SkiffMetrics(server.Registry));

        var scrape = await server.ScrapeAsync();

        Assert.Equal(type, scrape.Types.GetValueOrDefault(name));
        var series = type == "histogram" ? name + "_count" : name;
        var samples = scrape.Find(series).ToList();
        Assert.NotEmpty(samples);
        Assert.All(samples, s => Assert.Equal(labels.Order(), s.Labels.Keys.Order()));
    }

    [Fact]
    public async Task RealControllerAndQueue_MoveTheReconcileAndQueueMetrics()
    {
        await using var server = await TestServer.StartAsync();
        var metrics = new SkiffMetrics(server.Registry);
        var queue = new WorkQueue<ObjectKey>("appdeployment", metrics: metrics.ForQueue("appdeployment"));
        var failed = 0;
        var reconciler = new LambdaReconciler((key, _) => key.Name switch
        {
            "ok" => Task.FromResult(ReconcileResult.Done),
            "later" => Task.FromResult(ReconcileResult.After(TimeSpan.FromHours(1))),
            "terminal" => throw new TerminalException("bad spec"),
            _ => Interlocked.Increment(ref failed) == 1 ? throw new InvalidOperationException("docker down") : Task.FromResult(ReconcileResult.Done),
        });
        var controller = new Controller(new ControllerOptions { Name = "appdeployment", MaxConcurrentReconciles = 2 }, queue, reconciler,
            NullLogger<Controller>.Instance, metrics.ForController("appdeployment"));
        using var stop = new CancellationTokenSource();
        var run = controller.RunAsync(stop.Token);
        foreach (var name in new[] { "ok", "later", "terminal", "flaky" })
        {
            queue.Add(new ObjectKey("prod", name));
        }

        var c = ("controller", "appdeployment");
        var scrape = await EventuallyAsync(server, s => s.Value("controller_runtime_reconcile_total", c, ("result", "success")) >= 2);
        await stop.CancelAsync();
        await run;

        Assert.Equal(1, scrape.Value("controller_runtime_reconcile_total", c, ("result", "requeue_after")));
        Assert.Equal(2, scrape.Value("controller_runtime_reconcile_total", c, ("result", "error")));
        Assert.Equal(0, scrape.Value("controller_runtime_reconcile_total", c, ("result", "requeue")));
        Assert.Equal(2, scrape.Value("controller_runtime_reconcile_errors_total", c));
        Assert.Equal(1, scrape.Value("controller_runtime_terminal_reconcile_errors_total", c));
        Assert.Equal(5, scrape.Value("controller_runtime_reconcile_time_seconds_count", c));
        Assert.Equal(5, scrape.Value("controller_runtime_reconcile_time_seconds_bucket", c, ("le", "+Inf")));
        Assert.Equal(2, scrape.Value("controller_runtime_max_concurrent_reconciles", c));
        var q = ("name", "appdeployment");
        Assert.True(scrape.Value("workqueue_adds_total", q) >= 5);
        Assert.Equal(1, scrape.Value("workqueue_retries_total", q));
        Assert.True(scrape.Value("workqueue_queue_duration_seconds_count", q) >= 5);
        Assert.True(scrape.Value("workqueue_work_duration_seconds_count", q) >= 5);
    }

    [Fact]
    public async Task Buckets_AreControllerRuntimes()
    {
        await using var server = await TestServer.StartAsync();
        await DriveEveryHookAsync(new SkiffMetrics(server.Registry));

        var scrape = await server.ScrapeAsync();

        string[] Les(string name) => [.. scrape.Find(name + "_bucket").Select(s => s.Labels["le"])];
        var reconcile = Les("controller_runtime_reconcile_time_seconds");
        Assert.Equal(41, reconcile.Length);
        Assert.Equal(["0.005", "0.01", "0.025"], reconcile[..3]);
        Assert.Equal(["50", "60", "+Inf"], reconcile[^3..]);
        var queue = Les("workqueue_queue_duration_seconds");
        Assert.Equal(13, queue.Length);
        Assert.Equal(1e-8, double.Parse(queue[0], System.Globalization.CultureInfo.InvariantCulture), 12);
        Assert.Equal("1000", queue[^2]);
    }

    [Fact]
    public async Task Rollouts_CountByResult_AndUnknownRollbackReasonsAreOther()
    {
        await using var server = await TestServer.StartAsync();
        var metrics = new SkiffMetrics(server.Registry);

        metrics.RolloutSucceeded(TimeSpan.FromSeconds(42));
        metrics.RolloutFailed("HealthCheckFailed", rolledBack: true);
        metrics.RolloutFailed("password=hunter2 leaked into a reason", rolledBack: true);
        metrics.RolloutFailed("MigrationFailed", rolledBack: false);
        var scrape = await server.ScrapeAsync();

        Assert.Equal(1, scrape.Value("skiff_rollouts_total", ("result", "succeeded")));
        Assert.Equal(2, scrape.Value("skiff_rollouts_total", ("result", "rolled_back")));
        Assert.Equal(1, scrape.Value("skiff_rollouts_total", ("result", "failed")));
        Assert.Equal(1, scrape.Value("skiff_rollbacks_total", ("reason", "HealthCheckFailed")));
        Assert.Equal(1, scrape.Value("skiff_rollbacks_total", ("reason", "Other")));
        Assert.Equal(2, scrape.Find("skiff_rollbacks_total").Count());
        Assert.Equal(1, scrape.Value("skiff_rollout_duration_seconds_count"));
        Assert.Equal(42, scrape.Value("skiff_rollout_duration_seconds_sum"));
        Assert.Equal(1, scrape.Value("skiff_rollout_duration_seconds_bucket", ("le", "45")));
        Assert.Equal(0, scrape.Value("skiff_rollout_duration_seconds_bucket", ("le", "30")));
    }

    [Fact]
    public async Task AppDeployment_PhaseIsOneHot_AndForgetRemovesEverySeries()
    {
        await using var server = await TestServer.StartAsync();
        var metrics = new SkiffMetrics(server.Registry);

        metrics.SetAppDeployment("prod", "api", ready: false, "Progressing");
        metrics.SetAppDeployment("prod", "api", ready: true, "Ready");
        metrics.SetAppDeployment("prod", "bot", ready: false, "Degraded");
        var scrape = await server.ScrapeAsync();

        Assert.Equal(1, scrape.Value("skiff_appdeployment_ready", ("namespace", "prod"), ("name", "api")));
        var phases = scrape.Find("skiff_appdeployment_phase", ("name", "api")).ToDictionary(s => s.Labels["phase"], s => s.Value);
        Assert.Equal(new Dictionary<string, double> { ["Pending"] = 0, ["Progressing"] = 0, ["Ready"] = 1, ["Degraded"] = 0, ["Failed"] = 0 }, phases);

        metrics.ForgetAppDeployment("prod", "api");
        scrape = await server.ScrapeAsync();

        Assert.Empty(scrape.Find("skiff_appdeployment_ready", ("name", "api")));
        Assert.Empty(scrape.Find("skiff_appdeployment_phase", ("name", "api")));
        Assert.Equal(5, scrape.Find("skiff_appdeployment_phase", ("name", "bot")).Count());
    }

    [Fact]
    public async Task AppDeployment_UnknownPhase_AddsNoSeries()
    {
        await using var server = await TestServer.StartAsync();
        var metrics = new SkiffMetrics(server.Registry);

        metrics.SetAppDeployment("prod", "api", ready: false, "Exploded");
        metrics.SetAppDeployment("prod", "api", ready: false, null);
        var scrape = await server.ScrapeAsync();

        var phases = scrape.Find("skiff_appdeployment_phase").ToList();
        Assert.Equal(SkiffMetrics.AppDeploymentPhases.Order(), phases.Select(p => p.Labels["phase"]).Order());
        Assert.All(phases, p => Assert.Equal(0, p.Value));
    }

    [Fact]
    public async Task Docker_UnexpectedOperationsAndResults_AreOther()
    {
        await using var server = await TestServer.StartAsync();
        var metrics = new SkiffMetrics(server.Registry);

        metrics.Docker.Request("image_pull", "success");
        metrics.Docker.Request("image_pull", "success");
        metrics.Docker.Request("container_start", "unreachable");
        metrics.Docker.Request("/containers/abc123/start", "error");
        metrics.Docker.Request("version", "exit code 137");
        var scrape = await server.ScrapeAsync();

        Assert.Equal(2, scrape.Value("skiff_docker_requests_total", ("operation", "image_pull"), ("result", "success")));
        Assert.Equal(1, scrape.Value("skiff_docker_requests_total", ("operation", "container_start"), ("result", "unreachable")));
        Assert.Equal(1, scrape.Value("skiff_docker_requests_total", ("operation", "other"), ("result", "error")));
        Assert.Equal(1, scrape.Value("skiff_docker_requests_total", ("operation", "version"), ("result", "other")));
    }

    [Fact]
    public async Task ImageGc_CountsRunsRemovalsAndBytes_DryRunRemovesNothing()
    {
        await using var server = await TestServer.StartAsync();
        var metrics = new SkiffMetrics(server.Registry);

        metrics.ImageGcRun(ImageGcResult.Success, imagesRemoved: 3, bytesReclaimed: 3_000_000_000, protectedImages: 7);
        metrics.ImageGcRun(ImageGcResult.DryRun, imagesRemoved: 5, bytesReclaimed: 9, protectedImages: 6);
        metrics.ImageGcRun(ImageGcResult.Error, imagesRemoved: 0, bytesReclaimed: 0, protectedImages: 0);
        metrics.SetDiskUsage("vps-1", 0.87);
        var scrape = await server.ScrapeAsync();

        Assert.Equal(1, scrape.Value("skiff_image_gc_runs_total", ("result", "success")));
        Assert.Equal(1, scrape.Value("skiff_image_gc_runs_total", ("result", "dry_run")));
        Assert.Equal(1, scrape.Value("skiff_image_gc_runs_total", ("result", "error")));
        Assert.Equal(3, scrape.Value("skiff_image_gc_images_removed_total"));
        Assert.Equal(3e9, scrape.Value("skiff_image_gc_bytes_reclaimed_total"));
        Assert.Equal(6, scrape.Value("skiff_image_gc_protected_images"));
        Assert.Equal(0.87, scrape.Value("skiff_disk_usage_ratio", ("node", "vps-1")));
    }

    [Fact]
    public async Task RestClientHandler_CountsByCodeMethodAndHost_AndTransportErrors()
    {
        await using var server = await TestServer.StartAsync();
        var metrics = new SkiffMetrics(server.Registry);
        var stub = new StubHandler(r => r.RequestUri!.AbsolutePath == "/down"
            ? throw new HttpRequestException("connection refused")
            : new HttpResponseMessage(r.Method == HttpMethod.Patch ? HttpStatusCode.Conflict : HttpStatusCode.OK));
        using var client = new HttpClient(new RestClientMetricsHandler(metrics) { InnerHandler = stub });

        (await client.GetAsync(new Uri("https://10.0.0.1:6443/apis/skiff.dev/v1alpha1/appdeployments"))).Dispose();
        (await client.GetAsync(new Uri("https://10.0.0.1:6443/api/v1/secrets"))).Dispose();
        (await client.PatchAsync(new Uri("https://10.0.0.1:6443/apis/x"), new StringContent("{}"))).Dispose();
        await Assert.ThrowsAsync<HttpRequestException>(() => client.GetAsync(new Uri("https://10.0.0.1:6443/down")));
        var scrape = await server.ScrapeAsync();

        var host = ("host", "10.0.0.1:6443");
        Assert.Equal(2, scrape.Value("rest_client_requests_total", ("code", "200"), ("method", "GET"), host));
        Assert.Equal(1, scrape.Value("rest_client_requests_total", ("code", "409"), ("method", "PATCH"), host));
        Assert.Equal(1, scrape.Value("rest_client_requests_total", ("code", "<error>"), ("method", "GET"), host));
    }

    [Fact]
    public async Task TwoInstances_OnTheirOwnRegistries_DoNotCollide()
    {
        await using var one = await TestServer.StartAsync();
        await using var two = await TestServer.StartAsync();
        var a = new SkiffMetrics(one.Registry);
        _ = new SkiffMetrics(two.Registry);

        a.SetLeader("skiff-vps-1", true);

        Assert.Equal(1, (await one.ScrapeAsync()).Value("leader_election_master_status", ("name", "skiff-vps-1")));
        Assert.Empty((await two.ScrapeAsync()).Find("leader_election_master_status"));
    }

    [Fact]
    public async Task Leader_FlipsBetweenOneAndZero()
    {
        await using var server = await TestServer.StartAsync();
        var metrics = new SkiffMetrics(server.Registry);

        metrics.SetLeader("skiff-vps-1", true);
        Assert.Equal(1, (await server.ScrapeAsync()).Value("leader_election_master_status", ("name", "skiff-vps-1")));
        metrics.SetLeader("skiff-vps-1", false);
        Assert.Equal(0, (await server.ScrapeAsync()).Value("leader_election_master_status", ("name", "skiff-vps-1")));
    }

    private static async Task DriveEveryHookAsync(SkiffMetrics metrics)
    {
        var queue = metrics.ForQueue("appdeployment");
        queue.Added();
        queue.SetDepth(1);
        queue.ObserveQueueDuration(TimeSpan.FromMilliseconds(3));
        queue.SetDepth(0);
        queue.ObserveWorkDuration(TimeSpan.FromMilliseconds(40));
        queue.SetUnfinishedWork(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
        queue.Retried();
        var controller = metrics.ForController("appdeployment");
        controller.SetMaxConcurrentReconciles(1);
        controller.SetActiveWorkers(1);
        controller.ObserveReconcile(ReconcileOutcome.Success, TimeSpan.FromMilliseconds(30));
        controller.ReconcileError();
        controller.TerminalReconcileError();
        controller.SetActiveWorkers(0);
        metrics.SetLeader("skiff-vps-1", true);
        using (var client = new HttpClient(new RestClientMetricsHandler(metrics) { InnerHandler = new StubHandler(_ => new HttpResponseMessage(HttpStatusCode.OK)) }))
        {
            (await client.GetAsync(new Uri("https://10.0.0.1:6443/version"))).Dispose();
        }

        metrics.SetAppDeployment("prod", "api", true, "Ready");
        metrics.RolloutSucceeded(TimeSpan.FromSeconds(12));
        metrics.RolloutFailed("HealthCheckFailed", rolledBack: true);
        metrics.ImageGcRun(ImageGcResult.Success, 1, 1000, 2);
        metrics.SetDiskUsage("vps-1", 0.5);
        metrics.Docker.Request("version", "success");
    }

    private static Task<Exposition> EventuallyAsync(TestServer server, Func<Exposition, bool> done, [CallerArgumentExpression(nameof(done))] string what = "")
    {
        return Eventually.UntilAsync(what, server.ScrapeAsync, scrape => Try(() => done(scrape)), TimeSpan.FromSeconds(10), interval: TimeSpan.FromMilliseconds(20));

        static bool Try(Func<bool> f)
        {
            try
            {
                return f();
            }
            catch (Xunit.Sdk.XunitException)
            {
                return false;
            }
        }
    }

    private sealed class StubHandler(Func<HttpRequestMessage, HttpResponseMessage> respond) : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
            Task.FromResult(respond(request));
    }
}
