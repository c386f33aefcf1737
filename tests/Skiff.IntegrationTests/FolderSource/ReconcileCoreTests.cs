using System.Text.Json;
using Docker.DotNet.Models;
using Skiff.Api;
using Skiff.Reconcile;
using Skiff.State;
using Skiff.IntegrationTests.Infrastructure;

namespace Skiff.IntegrationTests.FolderSource;

/// <summary>The reconcile core on the real engine, through the real process: it never blocks a worker, and its arrows hold after a crash.</summary>
public sealed class ReconcileCoreTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(3);

    private static StatusRecord? Read(FolderWorkspace w, string name)
    {
        var file = Path.Combine(w.StateDir, "status", $"{w.Namespace}_{name}.json");
        try
        {
            return File.Exists(file) ? JsonSerializer.Deserialize<StatusRecord>(File.ReadAllText(file), StateStore.Json) : null;
        }
        catch (IOException)
        {
            return null;
        }
    }

    private static string Sleeper(FolderWorkspace w, string name, string version, int migrateSeconds) => $$"""
        apiVersion: skiff.dev/v1alpha1
        kind: AppDeployment
        metadata:
          name: {{name}}
          namespace: {{w.Namespace}}
        spec:
          node: local
          app:
            image: skiff-test/busybox:latest
            imagePullPolicy: Never
            command: ["sleep", "3600"]
            env:
              - { name: VERSION, value: "{{version}}" }
        {{(migrateSeconds > 0 ? $"    migrate:\n      command: [\"sleep\", \"{migrateSeconds}\"]\n      timeoutSeconds: 600\n" : "")}}  rollout:
            minReadySeconds: 1
        """;

    [Fact]
    public async Task Six_long_migrations_do_not_hold_up_another_stack_and_their_status_stays_current()
    {
        await using var w = new FolderWorkspace();
        w.Write("quick.yaml", Sleeper(w, "quick", "1", 0));
        await using var run = SkiffProcess.Start(w.RunArgs());
        await Eventually.UntilAsync("quick is Ready", () => Read(w, "quick")?.Status, s => Conditions.IsTrue(s, ConditionTypes.Ready), TimeSpan.FromSeconds(90), () => run.Stderr);

        // Six stacks whose migrations take 90 s, with the default four workers.
        for (var i = 1; i <= 6; i++)
        {
            w.Write($"slow{i}.yaml", Sleeper(w, $"slow{i}", "1", 90));
        }

        async Task<int> MigratingAsync() =>
            (await w.ContainersAsync()).Count(c => c.Component == StackNames.MigrateComponent && c.Running);
        await Eventually.UntilAsync("six migrations run", MigratingAsync, n => n == 6, TimeSpan.FromSeconds(60), () => run.Stderr);

        // While all six migrate, the seventh stack's change is rolled out.
        w.Write("quick.yaml", Sleeper(w, "quick", "2", 0));
        await Eventually.UntilAsync("quick's revision 2 is Ready", () => Read(w, "quick")?.Status,
            s => s is { Revision: 2 } && Conditions.IsTrue(s, ConditionTypes.Ready), TimeSpan.FromSeconds(60), () => run.Stderr);

        // An ordering, not a timing: the new revision was live before any of the six migrations ended.
        Assert.Equal(6, await MigratingAsync());
        for (var i = 1; i <= 6; i++)
        {
            var status = Read(w, $"slow{i}")!.Status;
            Assert.True(Conditions.RolloutInProgress(status), $"slow{i}: {JsonSerializer.Serialize(status?.Conditions)}");
            Assert.StartsWith($"migrating: revision 1's migration is running (skiff_{w.Namespace}_slow{i}_migrate_r1)",
                Conditions.Get(status, ConditionTypes.Reconciling)!.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_spec_reverted_after_a_crash_that_left_an_old_revision_stopped_rolls_out_as_a_new_revision()
    {
        await using var w = new FolderWorkspace();
        var port = Infrastructure.DockerFixture.FreeTcpPort();
        string Web(string version) => $$"""
            apiVersion: skiff.dev/v1alpha1
            kind: AppDeployment
            metadata:
              name: web
              namespace: {{w.Namespace}}
            spec:
              node: local
              app:
                image: skiff-test/app:1
                imagePullPolicy: Never
                env:
                  - { name: APP_VERSION, value: "{{version}}" }
                ports:
                  - { name: http, containerPort: 8080, hostPort: {{port}}, hostIP: 127.0.0.1 }
                healthCheck:
                  http: { path: /healthz, port: http }
                  periodSeconds: 1
            """;
        foreach (var version in new[] { "1", "2", "3", "4" })
        {
            w.Write("web.yaml", Web(version));
            var once = await SkiffProcess.RunAsync(Timeout, w.RunOnceArgs());
            Assert.True(once.Exit == 0, once.Stdout + once.Stderr);
        }

        // The crash point: killed right after "mark revision 4 succeeded and remove …_r2": r4 serves, r2 is stopped,
        // not removed. The engine is left as it would be (r2 as Skiff created it, with its labels and its host port).
        var r2 = Read(w, "web")!.Status!.History!.Single(h => h.Revision == 2);
        await w.Engine.Client.Containers.CreateContainerAsync(new CreateContainerParameters
        {
            Name = $"skiff_{w.Namespace}_web_app_r2",
            Image = "skiff-test/app:1",
            Env = ["APP_VERSION=2"],
            Labels = new Dictionary<string, string>
            {
                [SkiffLabels.ManagedBy] = SkiffLabels.ManagedByValue, [SkiffLabels.App] = $"{w.Namespace}/web",
                [SkiffLabels.Component] = StackNames.AppComponent, [SkiffLabels.Node] = "local",
                [SkiffLabels.Source] = (await w.ContainersAsync("web")).Single().Label(SkiffLabels.Source)!,
                [SkiffLabels.Revision] = "2", [SkiffLabels.SpecHash] = r2.SpecHash, [SkiffLabels.ImageRef] = "skiff-test/app:1",
            },
            ExposedPorts = new Dictionary<string, EmptyStruct> { ["8080/tcp"] = default },
            HostConfig = new HostConfig
            {
                NetworkMode = $"skiff_{w.Namespace}_web",
                PortBindings = new Dictionary<string, IList<global::Docker.DotNet.Models.PortBinding>> { ["8080/tcp"] = [new global::Docker.DotNet.Models.PortBinding { HostIP = "127.0.0.1", HostPort = port.ToString(System.Globalization.CultureInfo.InvariantCulture) }] },
            },
        });

        // Restarted, with the image (the spec) put back to revision 2's.
        w.Write("web.yaml", Web("2"));
        var (exit, stdout, stderr) = await SkiffProcess.RunAsync(Timeout, w.RunOnceArgs());

        Assert.True(exit == 0, stdout + stderr);
        Assert.DoesNotContain("port is already allocated", stderr, StringComparison.Ordinal);
        var status = Read(w, "web")!.Status!;
        Assert.Equal(5, status.Revision);
        Assert.Equal(r2.SpecHash, status.History!.Single(h => h.Revision == 5).SpecHash);
        Assert.Equal([$"skiff_{w.Namespace}_web_app_r5"], (await w.ContainersAsync("web")).Select(c => c.Name));
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        Assert.Contains("\"version\":\"2\"", await http.GetStringAsync(new Uri($"http://127.0.0.1:{port}/")), StringComparison.Ordinal);
    }
}
