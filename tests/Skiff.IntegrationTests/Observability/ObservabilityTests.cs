using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using k8s;
using Skiff.IntegrationTests.DockerTarget;
using Skiff.IntegrationTests.FolderSource;
using Skiff.IntegrationTests.KubernetesSource;
using Skiff.IntegrationTests.Infrastructure;

namespace Skiff.IntegrationTests.Observability;

/// <summary>/metrics, /status, probes and secret hygiene of the real skiff process.</summary>
public sealed class ObservabilityTests
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(5) };

    private static int FreePort() => Infrastructure.DockerFixture.FreeTcpPort();

    private static async Task<(int Code, string Body)> GetAsync(string url)
    {
        try
        {
            using var response = await Http.GetAsync(new Uri(url));
            return ((int)response.StatusCode, await response.Content.ReadAsStringAsync());
        }
        catch (HttpRequestException)
        {
            return (0, "");
        }
    }

    /// <summary>Waits until /readyz answers <paramref name="code"/>; a timeout shows its last answer.</summary>
    private static Task ReadyzAsync(int healthPort, int code, TimeSpan timeout) =>
        Eventually.UntilAsync($"/readyz answers {code}", () => GetAsync($"http://127.0.0.1:{healthPort}/readyz"), r => r.Code == code, timeout);

    private static string Sample(string metrics, string name, params string[] labels) =>
        metrics.Split('\n').FirstOrDefault(l => (l.StartsWith(name + "{", StringComparison.Ordinal) || l.StartsWith(name + " ", StringComparison.Ordinal)) && labels.All(l.Contains))
        ?? throw new Xunit.Sdk.XunitException($"no sample {name}{{{string.Join(',', labels)}}} in:\n{metrics}");

    /// <summary>The sum over every series of a metric that carries the labels.</summary>
    private static double Sum(string metrics, string name, params string[] labels) =>
        metrics.Split('\n').Where(l => l.StartsWith(name + "{", StringComparison.Ordinal) && labels.All(l.Contains)).Sum(Value);

    private static double Value(string sample) => double.Parse(sample[(sample.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture);

    [Fact]
    public async Task Metrics_have_controller_runtime_names_and_move_as_a_rollout_goes()
    {
        await using var w = new FolderWorkspace();
        w.Write("api.yaml", w.Api());
        var metricsPort = FreePort();
        var healthPort = FreePort();
        var args = w.RunArgs().ToList();
        args[args.IndexOf("--metrics-bind-address") + 1] = $"127.0.0.1:{metricsPort}";
        args[args.IndexOf("--health-probe-bind-address") + 1] = $"127.0.0.1:{healthPort}";
        await using var run = SkiffProcess.Start([.. args]);

        await ReadyzAsync(healthPort, 200, TimeSpan.FromSeconds(60));
        Assert.Equal(200, (await GetAsync($"http://127.0.0.1:{healthPort}/healthz")).Code);
        // Ready is reported from inside the reconcile; the reconcile itself is counted when it returns.
        await Eventually.UntilAsync("api Ready in the metrics and a reconcile counted", async () => (await GetAsync($"http://127.0.0.1:{metricsPort}/metrics")).Body,
            body => body.Contains($"skiff_appdeployment_ready{{namespace=\"{w.Namespace}\",name=\"api\"}} 1", StringComparison.Ordinal)
                && Sum(body, "controller_runtime_reconcile_total", "controller=\"appdeployment\"") >= 1, TimeSpan.FromSeconds(120));
        var metrics = (await GetAsync($"http://127.0.0.1:{metricsPort}/metrics")).Body;

        foreach (var (name, type) in new[]
        {
            ("controller_runtime_reconcile_total", "counter"), ("controller_runtime_reconcile_errors_total", "counter"),
            ("controller_runtime_reconcile_time_seconds", "histogram"), ("controller_runtime_max_concurrent_reconciles", "gauge"),
            ("controller_runtime_active_workers", "gauge"), ("workqueue_depth", "gauge"), ("workqueue_adds_total", "counter"),
            ("workqueue_queue_duration_seconds", "histogram"), ("workqueue_work_duration_seconds", "histogram"),
            ("workqueue_retries_total", "counter"), ("skiff_rollouts_total", "counter"), ("skiff_rollout_duration_seconds", "histogram"),
            ("skiff_appdeployment_phase", "gauge"), ("skiff_docker_requests_total", "counter"),
        })
        {
            Assert.Contains($"# TYPE {name} {type}", metrics);
        }

        Assert.True(Sum(metrics, "controller_runtime_reconcile_total", "controller=\"appdeployment\"") >= 1);
        Assert.True(Sum(metrics, "workqueue_adds_total", "name=\"appdeployment\"") >= 1);
        Assert.Equal(1, Value(Sample(metrics, "skiff_rollouts_total", "result=\"succeeded\"")));
        Assert.Equal(1, Value(Sample(metrics, "skiff_appdeployment_phase", $"namespace=\"{w.Namespace}\"", "phase=\"Ready\"")));
        Assert.True(Value(Sample(metrics, "skiff_docker_requests_total", "operation=\"container_create\"", "result=\"success\"")) >= 2);
        Assert.True(Value(Sample(metrics, "skiff_rollout_duration_seconds_count")) >= 1);

        // A second rollout moves the counters on.
        w.Write("api.yaml", w.Api(image: "skiff-test/app:2"));
        await Eventually.UntilAsync("two succeeded rollouts counted", async () => Sample((await GetAsync($"http://127.0.0.1:{metricsPort}/metrics")).Body, "skiff_rollouts_total", "result=\"succeeded\""),
            sample => Value(sample) == 2, TimeSpan.FromSeconds(120));

        var status = JsonDocument.Parse((await GetAsync($"http://127.0.0.1:{metricsPort}/status")).Body);
        Assert.Contains(status.RootElement.GetProperty("resources").EnumerateArray(), r => r.GetProperty("name").GetString() == "api");
    }

    [Fact]
    public async Task Readyz_answers_503_while_the_engine_is_down_and_healthz_stays_200()
    {
        await using var dockerd = new ThrowawayEngine("readyz");
        await dockerd.StartAsync();
        await using var w = new FolderWorkspace();
        var healthPort = FreePort();
        var args = w.RunArgs().ToList();
        args[args.IndexOf("--health-probe-bind-address") + 1] = $"127.0.0.1:{healthPort}";
        args.AddRange(["--docker-host", dockerd.Endpoint]);
        await using var run = SkiffProcess.Start([.. args]);
        await ReadyzAsync(healthPort, 200, TimeSpan.FromSeconds(60));

        await dockerd.StopAsync();
        await ReadyzAsync(healthPort, 503, TimeSpan.FromSeconds(30));
        Assert.Contains("docker", (await GetAsync($"http://127.0.0.1:{healthPort}/readyz")).Body);
        Assert.Equal(200, (await GetAsync($"http://127.0.0.1:{healthPort}/healthz")).Code);

        await dockerd.StartAsync();
        await ReadyzAsync(healthPort, 200, TimeSpan.FromSeconds(30));
    }

    [Theory]
    [InlineData("console")]
    [InlineData("json")]
    public async Task Secret_values_never_reach_logs_status_metrics_or_events(string logFormat)
    {
        await using var w = new FolderWorkspace();
        w.Write("api.yaml", w.Api());
        w.Write("bot.yaml", w.Bot());
        var metricsPort = FreePort();
        var args = w.RunArgs().ToList();
        args[args.IndexOf("--metrics-bind-address") + 1] = $"127.0.0.1:{metricsPort}";
        args.AddRange(["--log-format", logFormat, "--log-level", "debug"]);
        await using var run = SkiffProcess.Start([.. args]);
        await Eventually.TrueAsync("api and bot Ready in the metrics", async () =>
        {
            var m = (await GetAsync($"http://127.0.0.1:{metricsPort}/metrics")).Body;
            return m.Contains($"skiff_appdeployment_ready{{namespace=\"{w.Namespace}\",name=\"api\"}} 1", StringComparison.Ordinal)
                && m.Contains($"skiff_appdeployment_ready{{namespace=\"{w.Namespace}\",name=\"bot\"}} 1", StringComparison.Ordinal);
        }, TimeSpan.FromSeconds(180), () => run.Stderr);
        // A failing migration copies the app's log lines into status: they are masked too.
        w.Write("api.yaml", w.Api(image: "skiff-test/app:bad-migrate"));
        await Eventually.UntilAsync("api's status says MigrationFailed", () => File.ReadAllText(Path.Combine(w.StateDir, "status", $"{w.Namespace}_api.json")),
            status => status.Contains("MigrationFailed", StringComparison.Ordinal), TimeSpan.FromSeconds(120));

        var password = JsonDocument.Parse(File.ReadAllText(Path.Combine(w.StateDir, "secrets", $"{w.Namespace}_api-db.json"))).RootElement.GetProperty("password").GetString()!;
        const string token = Stacks.BotToken;
        var everything = string.Join("\n",
            run.Stdout, run.Stderr,
            (await GetAsync($"http://127.0.0.1:{metricsPort}/metrics")).Body,
            (await GetAsync($"http://127.0.0.1:{metricsPort}/status")).Body,
            string.Join("\n", Directory.GetFiles(Path.Combine(w.StateDir, "status")).Select(File.ReadAllText)));
        Assert.Contains("MigrationFailed", everything);
        Assert.DoesNotContain(password, everything);
        Assert.DoesNotContain(token, everything);
    }

    [Fact]
    public async Task Secret_values_never_reach_events_or_status_in_the_cluster()
    {
        await using var h = await KubeHarness.StartAsync();
        var op = h.StartOperator(extra: ["--log-level", "debug"]);
        await h.Client.CoreV1.CreateNamespacedSecretAsync(new k8s.Models.V1Secret
        {
            Metadata = new() { Name = "bot-secrets" },
            StringData = new Dictionary<string, string> { ["token"] = "cluster-token-value-456" },
        }, h.Namespace);
        await h.ApplyAsync(Stacks.Yaml(Stacks.Bot("bot").With(s => s.Cache = null)));
        await h.ApplyAsync(h.Api());
        Assert.Equal(0, (await h.WaitReadyAsync("api")).ExitCode);
        Assert.Equal(0, (await h.WaitReadyAsync("bot")).ExitCode);
        await h.ApplyAsync(h.Api(image: "skiff-test/app:bad-migrate"));
        await Eventually.UntilAsync("api is Stalled for MigrationFailed", () => h.GetAsync("api"),
            r => Skiff.Reconcile.Conditions.Get(r?.Status, Skiff.Api.ConditionTypes.Stalled)?.Reason == "MigrationFailed", TimeSpan.FromSeconds(120), () => op.Stderr);

        var password = System.Text.Encoding.UTF8.GetString((await h.Client.CoreV1.ReadNamespacedSecretAsync("api-db", h.Namespace)).Data["password"]);
        var events = await h.Client.CoreV1.ListNamespacedEventAsync(h.Namespace);
        var everything = string.Join("\n",
            op.Stdout, op.Stderr,
            string.Join("\n", events.Items.Select(e => e.Message)),
            JsonSerializer.Serialize((await h.GetAsync("api"))!.Status),
            JsonSerializer.Serialize((await h.GetAsync("bot"))!.Status));
        Assert.Contains("MigrationFailed", everything);
        Assert.DoesNotContain(password, everything);
        Assert.DoesNotContain("cluster-token-value-456", everything);
    }
}
