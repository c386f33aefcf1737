using System.Text.RegularExpressions;
using k8s;
using Docker.DotNet.Models;
using Skiff.Api;
using Skiff.IntegrationTests.FolderSource;
using Skiff.Reconcile;
using Skiff.IntegrationTests.Infrastructure;

namespace Skiff.IntegrationTests.KubernetesSource;

/// <summary>
/// Every change of state is an Event (DESIGN §1): each one asserted where users look for it, in
/// <c>kubectl describe</c> (real kubectl, the test API server, the real skiff process and engine).
/// </summary>
public sealed class EventTests
{
    /// <summary>The Events table of <c>kubectl describe appdeployment NAME</c>, once it shows <paramref name="type"/> <paramref name="reason"/>.</summary>
    private static Task<string> DescribeUntilAsync(KubeHarness h, SkiffProcess op, string name, string type, string reason, int seconds = 120) =>
        Eventually.ValueAsync($"kubectl describe appdeployment {name} shows a {type} {reason} Event", async _ =>
        {
            var describe = await h.KubectlAsync("describe", "appdeployment", name);
            var last = describe.Stdout + describe.Stderr;
            var events = last.IndexOf("Events:", StringComparison.Ordinal) is var at and >= 0 ? last[at..] : "";
            return (Regex.IsMatch(events, $@"^\s+{type}\s+{reason}\s", RegexOptions.Multiline) ? events : null, last);
        }, TimeSpan.FromSeconds(seconds), interval: DockerFixture.PollInterval, context: () => op.Stderr);

    [Fact]
    public async Task Each_reason_a_resource_stalls_for_is_a_Warning_Event_that_kubectl_describe_shows()
    {
        await using var h = await KubeHarness.StartAsync();
        // A container of the stack "foreign" that another Skiff source owns.
        await h.Workspace.Engine.Client.Containers.CreateContainerAsync(new CreateContainerParameters
        {
            Name = $"skiff_{h.Namespace}_foreign_app_r1",
            Image = "skiff-test/busybox:latest",
            Cmd = ["sleep", "3600"],
            Labels = new Dictionary<string, string>
            {
                [SkiffLabels.ManagedBy] = SkiffLabels.ManagedByValue,
                [SkiffLabels.App] = $"{h.Namespace}/foreign",
                [SkiffLabels.Component] = StackNames.AppComponent,
                [SkiffLabels.Source] = "another-source",
            },
        });
        await h.ApplyAsync(h.Stateless("invalid", "local", s => s.App.Ports =
        [
            new PortSpec { Name = "a", ContainerPort = 8080, HostPort = 18091 },
            new PortSpec { Name = "b", ContainerPort = 8081, HostPort = 18091 },
        ]));
        await h.ApplyAsync(h.Stateless("nosecret", "local", s => s.App.Env =
            [new EnvVar { Name = "TOKEN", ValueFrom = new EnvVarSource { SecretKeyRef = new SecretKeySelector { Name = "missing", Key = "token" } } }]));
        // runtime: kubernetes: the instance holding skiff-cluster records its Events as the node's does.
        await h.ApplyAsync(h.Stateless("elsewhere", "local", s => (s.Runtime, s.App.ImagePullSecret) = (Runtimes.Kubernetes, "missing-pull")));
        await h.ApplyAsync(h.Api("novolume", edit: s => s.Database!.Volume = $"skiff-missing-{h.Namespace}"));
        await h.ApplyAsync(h.Stateless("foreign", "local"));
        var op = h.StartOperator();

        (string Name, string Reason, string Says)[] expected =
        [
            ("invalid", "InvalidSpec", "hostPort"),
            ("nosecret", "SecretNotFound", "Secret \"missing\""),
            ("elsewhere", "SecretNotFound", "Secret \"missing-pull\""),
            ("novolume", "VolumeNotFound", $"skiff-missing-{h.Namespace}"),
            ("foreign", "OwnedByAnotherSource", "another-source"),
        ];
        foreach (var (name, reason, says) in expected)
        {
            var events = await DescribeUntilAsync(h, op, name, "Warning", reason);
            Assert.Contains(says, events, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Rollbacks_start_first_and_stop_first_and_health_flips_after_a_rollout_are_Events()
    {
        await using var h = await KubeHarness.StartAsync();
        var port = Infrastructure.DockerFixture.FreeTcpPort();
        string App(string name, string image, bool stopFirst = false) => Stacks.Yaml(Stacks.Stateless(name, image: image).WithEnv("TESTAPP_CONTROL", "1").With(s =>
        {
            s.App.Ports = stopFirst ? [new PortSpec { Name = "http", ContainerPort = 8080, HostPort = port, HostIP = "127.0.0.1" }] : null;
            s.Rollout = new RolloutSpec { ProgressDeadlineSeconds = 10 };
        }));
        await h.ApplyAsync(App("startfirst", "skiff-test/app:1"));
        await h.ApplyAsync(App("stopfirst", "skiff-test/app:1", stopFirst: true));
        var op = h.StartOperator();
        Assert.Equal(0, (await h.WaitReadyAsync("startfirst")).ExitCode);
        Assert.Equal(0, (await h.WaitReadyAsync("stopfirst")).ExitCode);
        await DescribeUntilAsync(h, op, "startfirst", "Normal", "RolloutSucceeded");
        await DescribeUntilAsync(h, op, "startfirst", "Normal", "Ready");

        // A live app turns unhealthy, then recovers: Ready flips both ways, and each flip is an Event.
        var app = (await h.Workspace.ContainersAsync("startfirst")).Single(c => c.Component == StackNames.AppComponent);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        // A connection per request: the app may close an idle keep-alive connection just as it is reused.
        http.DefaultRequestHeaders.ConnectionClose = true;
        (await http.GetAsync(new Uri($"http://{app.NetworkIps.Values.First()}:8080/control/unhealthy"))).EnsureSuccessStatusCode();
        var sick = await DescribeUntilAsync(h, op, "startfirst", "Warning", "HealthCheckFailed");
        Assert.Contains("GET /healthz on port 8080 failed", sick, StringComparison.Ordinal);
        (await http.GetAsync(new Uri($"http://{app.NetworkIps.Values.First()}:8080/control/healthy"))).EnsureSuccessStatusCode();
        Assert.Equal(0, (await h.WaitReadyAsync("startfirst")).ExitCode);
        // Ready again: its second Ready Event (counted on the first, as Kubernetes aggregates a repeated Event).
        await Eventually.ValueAsync("a second Ready Event", async ct =>
        {
            var list = await h.Client.CoreV1.ListNamespacedEventAsync(h.Namespace, cancellationToken: ct);
            var ready = list.Items.Where(e => e.InvolvedObject.Name == "startfirst" && e.Reason == "Ready").Sum(e => e.Count ?? 1);
            return (ready >= 2 ? "ok" : null, $"{ready} Ready Events");
        }, TimeSpan.FromSeconds(60), interval: DockerFixture.PollInterval, context: () => op.Stderr);

        // A revision that never passes its health check is rolled back, start-first and stop-first alike.
        await h.ApplyAsync(App("startfirst", "skiff-test/app:bad-health"));
        await h.ApplyAsync(App("stopfirst", "skiff-test/app:bad-health", stopFirst: true));
        foreach (var name in new[] { "startfirst", "stopfirst" })
        {
            var events = await DescribeUntilAsync(h, op, name, "Warning", "RolledBack");
            Assert.Matches(@"Warning\s+HealthCheckFailed\s", events);
            Assert.Contains("serving revision 1 (skiff-test/app:1) again", events, StringComparison.Ordinal);
        }

        // Stop-first said that nothing served for a while; start-first never had such a gap.
        Assert.Matches(@"Normal\s+Replacing\s", await DescribeUntilAsync(h, op, "stopfirst", "Normal", "Replacing"));
        Assert.DoesNotMatch(@"Normal\s+Replacing\s", (await h.KubectlAsync("describe", "appdeployment", "startfirst")).Stdout);
        var resource = await h.GetAsync("stopfirst");
        Assert.Equal(Outcomes.RolledBack, resource!.Status!.History!.Last().Outcome);
    }

    [Fact]
    public async Task Disk_pressure_rising_and_clearing_are_Events_on_every_AppDeployment_of_the_node()
    {
        await using var h = await KubeHarness.StartAsync();
        await h.ApplyAsync(h.Stateless("web", "local"));
        var op = h.StartOperator();
        Assert.Equal(0, (await h.WaitReadyAsync("web")).ExitCode);

        // A policy whose high threshold every disk is above, that may remove nothing: GC cannot relieve it.
        await h.ApplyAsync("""
            apiVersion: skiff.dev/v1alpha1
            kind: ImageGCPolicy
            metadata:
              name: pressure-test
            spec:
              highThresholdPercent: 1
              lowThresholdPercent: 0
              keep: ["*"]
              interval: 10s
            """);
        var rising = await DescribeUntilAsync(h, op, "web", "Warning", "DiskPressure", seconds: 90);
        Assert.Contains("high threshold 1%", rising, StringComparison.Ordinal);

        var delete = await Kubectl(h, "delete", "imagegcpolicy", "pressure-test");
        Assert.True(delete.ExitCode == 0, delete.Stderr);
        await DescribeUntilAsync(h, op, "web", "Normal", "DiskSpaceAvailable", seconds: 90);
    }

    private static Task<TestApiServer.Kubectl.Result> Kubectl(KubeHarness h, params string[] args) =>
        h.Kubectl.RunAsync(TimeSpan.FromSeconds(60), args);
}
