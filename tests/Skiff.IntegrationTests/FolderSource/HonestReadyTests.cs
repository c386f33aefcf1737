using System.Text.Json;
using System.Text.RegularExpressions;
using Skiff.Api;
using Skiff.Reconcile;
using Skiff.State;
using Skiff.IntegrationTests.Infrastructure;

namespace Skiff.IntegrationTests.FolderSource;

/// <summary>Ready means something answers: what a stop-first replacement says while nothing does.</summary>
public sealed class HonestReadyTests
{
    [Fact]
    public async Task A_stop_first_replacement_is_not_Ready_while_nothing_serves_and_the_metric_says_so()
    {
        await using var w = new FolderWorkspace();
        var port = Infrastructure.DockerFixture.FreeTcpPort();
        string Api(string version) => w.Api(name: "web", edit: s =>
        {
            (s.App.Ports![0].HostPort, s.App.Ports[0].HostIP) = (port, "127.0.0.1");
            s.App.Env =
            [
                new EnvVar { Name = "APP_VERSION", Value = version },
                new EnvVar { Name = "TESTAPP_HEALTHY_AFTER_SECONDS", Value = version == "v1" ? "0" : "5" },
            ];
        });
        w.Write("web.yaml", Api("v1"));
        string[] args = [.. w.RunArgs().Select(a => a == "0" ? "127.0.0.1:0" : a)];
        await using var run = SkiffProcess.Start(args);
        var statusFile = Path.Combine(w.StateDir, "status", $"{w.Namespace}_web.json");
        StatusRecord? Read() => File.Exists(statusFile) ? JsonSerializer.Deserialize<StatusRecord>(File.ReadAllText(statusFile), StateStore.Json) : null;
        await Eventually.UntilAsync("web is Ready", () => Read()?.Status, s => Conditions.IsTrue(s, ConditionTypes.Ready), TimeSpan.FromSeconds(120), () => run.Stderr);
        var metrics = new Uri($"http://{Regex.Match(run.Stderr, @"Serving metrics on (127\.0\.0\.1:\d+)").Groups[1].Value}/metrics");
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        http.DefaultRequestHeaders.ConnectionClose = true;
        var series = $"skiff_appdeployment_ready{{namespace=\"{w.Namespace}\",name=\"web\"}}";
        // The metric follows the status file (both are written after each reconcile).
        await Eventually.TrueAsync("the ready metric says 1", async () => (await http.GetStringAsync(metrics)).Contains(series + " 1", StringComparison.Ordinal), TimeSpan.FromSeconds(10));

        // The new revision warms up for 5 s after the old one is stopped: nothing answers on the port meanwhile.
        w.Write("web.yaml", Api("v2"));
        string? replacing = null;
        var sawZero = false;
        await Eventually.TrueAsync("Ready=False Replacing while the metric says 0", async () =>
        {
            var ready = Conditions.Get(Read()?.Status, ConditionTypes.Ready);
            if (ready is { Status: "False", Reason: "Replacing" })
            {
                replacing = ready.Message;
                sawZero |= (await http.GetStringAsync(metrics)).Contains(series + " 0", StringComparison.Ordinal);
            }

            return replacing is not null && sawZero;
        }, TimeSpan.FromSeconds(60), () => $"replacing: {replacing ?? "never seen"}, metric 0: {sawZero}; status: {JsonSerializer.Serialize(Read()?.Status)}");
        Assert.Contains("nothing serves until that one is ready", replacing, StringComparison.Ordinal);

        // And Ready again once the new revision passes its health check.
        await Eventually.UntilAsync("web's revision 2 is Ready", () => Read()?.Status, s => s?.Revision == 2 && Conditions.IsTrue(s, ConditionTypes.Ready), TimeSpan.FromSeconds(60));
        await Eventually.TrueAsync("the ready metric says 1 again", async () => (await http.GetStringAsync(metrics)).Contains(series + " 1", StringComparison.Ordinal), TimeSpan.FromSeconds(10));
    }
}
