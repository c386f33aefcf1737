using Docker.DotNet.Models;
using Microsoft.Extensions.Logging.Abstractions;
using Skiff.Api;
using Skiff.Cli;
using Skiff.Docker;
using Skiff.ImageGC;
using Skiff.IntegrationTests.DockerTarget;
using Skiff.IntegrationTests.Infrastructure;
using Skiff.Reconcile;
using Skiff.Hosting;

namespace Skiff.IntegrationTests.ImageGC;

/// <summary>
/// Image GC on the real engine. The engine is shared: every pass here is scoped to the test's own
/// <c>skiffgc-&lt;runid&gt;/</c> images (<see cref="ImageGcPass.Scope"/>), so nothing else is ever removed.
/// </summary>
[Collection(DockerCollection.Name)]
public sealed class ImageGcEngineTests(DockerFixture docker) : IDisposable
{
    private readonly string stateDir = Directory.CreateTempSubdirectory("skiff-gc-it-").FullName;

    public void Dispose() => Directory.Delete(stateDir, recursive: true);

    private sealed class NoReports : IGcReporter
    {
        public Task ReportAsync(GcNodeReport report, CancellationToken ct) => Task.CompletedTask;
    }

    /// <summary>A pass on the real engine, scoped to <paramref name="images"/>, with every image already seen two days ago unless listed as fresh.</summary>
    private async Task<ImageGcPass> PassAsync(DockerEngine engine, GcImages images, IDiskMeter meter, ImageEngineLock engineLock,
        Func<IReadOnlyList<DeploymentImages>> deployments, params string[] fresh)
    {
        var firstSeen = await FirstSeenStore.LoadAsync(Path.Combine(stateDir, "images.json"), CancellationToken.None);
        foreach (var image in await engine.ListImagesAsync(CancellationToken.None))
        {
            firstSeen.MarkSeen(image.Id, fresh.Contains(image.Id) ? DateTimeOffset.UtcNow : DateTimeOffset.UtcNow.AddDays(-2));
        }

        return new ImageGcPass(new DockerImageStore(engine, meter), firstSeen, engineLock, deployments, NullLogger<GcExecutor>.Instance)
        {
            Scope = images.Mine,
        };
    }

    [Fact]
    public async Task Pass_under_pressure_removes_exactly_the_unprotected_images_and_no_container()
    {
        await using var images = new GcImages(docker);
        using var engine = new DockerEngine(docker.DockerHost.ToString());
        var ids = new Dictionary<int, string>();
        for (var n = 1; n <= 32; n++)
        {
            ids[n] = await images.CommitAsync(TestImages.Busybox, n is >= 13 and <= 16 ? $"keep:{n}" : $"img:{n}");
        }

        // 30 also lives in a second repository: removing it needs untagging first.
        await images.TagAsync(ids[30], "other:30");
        var containers = new List<string>();
        for (var n = 1; n <= 8; n++)
        {
            var parameters = new CreateContainerParameters { Image = ids[n], Cmd = ["sleep", "3600"], Labels = docker.Labels, Name = docker.Name("gc") };
            var created = await docker.Client.Containers.CreateContainerAsync(parameters);
            containers.Add(created.ID);
            if (n <= 4)
            {
                await docker.Client.Containers.StartContainerAsync(created.ID, new ContainerStartParameters());
            }
        }

        DeploymentImages[] deployments = [new("prod", "api", ids[9], [ids[10], ids[11], ids[12]], 3)];
        var policy = GcPolicy.BuiltIn with { Keep = [images.Prefix + "keep:*"] };
        var pass = await PassAsync(engine, images, new FixedDiskMeter(95), new ImageEngineLock(), () => deployments, [.. Enumerable.Range(17, 4).Select(n => ids[n])]);

        var result = await pass.RunAsync(policy, CancellationToken.None);

        var unprotected = Enumerable.Range(21, 12).Select(n => ids[n]).ToHashSet();
        Assert.Equal(unprotected.Order(), result.Run.Removed.Select(d => d.Image.Id).Order());
        Assert.Empty(result.Run.Failed);
        Assert.Empty(result.Run.Skipped);
        foreach (var (n, id) in ids)
        {
            Assert.True(await images.ExistsAsync(id) != unprotected.Contains(id), $"image {n} ({id}) {(unprotected.Contains(id) ? "was kept" : "was removed")}");
        }

        var reasons = result.Plan.Protected.ToDictionary(d => d.Image.Id, d => d.Reason);
        Assert.Equal(GcReason.InUseByRunningContainer, reasons[ids[1]]);
        Assert.Equal(GcReason.InUseByStoppedContainer, reasons[ids[5]]);
        Assert.Equal(GcReason.DeploymentCurrent, reasons[ids[9]]);
        Assert.Equal(GcReason.DeploymentHistory, reasons[ids[12]]);
        Assert.Equal(GcReason.KeepPattern, reasons[ids[13]]);
        Assert.Equal(GcReason.YoungerThanMinimumAge, reasons[ids[17]]);

        // GC never removes containers, and every one of them still starts.
        foreach (var id in containers)
        {
            var inspect = await docker.Client.Containers.InspectContainerAsync(id);
            if (!inspect.State!.Running)
            {
                await docker.Client.Containers.StartContainerAsync(id, new ContainerStartParameters());
            }

            Assert.True((await docker.Client.Containers.InspectContainerAsync(id)).State!.Running);
        }

        foreach (var shared in TestImages.All)
        {
            Assert.True(await images.ExistsAsync(shared), $"{shared} must never be touched");
        }
    }

    [Fact]
    public async Task Automatic_rollback_after_gc_still_finds_its_image()
    {
        await using var images = new GcImages(docker);
        await using var h = new StackHarness();
        var port = DockerFixture.FreeTcpPort();
        var app = new AppDeployment
        {
            Metadata = new() { Name = "web", NamespaceProperty = h.Namespace, Generation = 0 },
            Spec = new AppDeploymentSpec
            {
                Node = "local",
                App = new AppSpec
                {
                    Image = "",
                    // A published port: replaced stop-first, so a rollback must create a container from the old image.
                    Ports = [new PortSpec { Name = "http", ContainerPort = 8080, HostPort = port, HostIP = "127.0.0.1" }],
                    HealthCheck = new HealthCheckSpec { Http = new HttpCheck { Path = "/healthz", Port = "http" }, PeriodSeconds = 1 },
                },
                Rollout = new RolloutSpec { ProgressDeadlineSeconds = 8, MinReadySeconds = 1 },
            },
        };
        var revisionIds = new List<string>();
        for (var v = 1; v <= 5; v++)
        {
            revisionIds.Add(await images.CommitAsync(TestImages.App1, $"app:v{v}"));
            app.Spec.App.Image = images.Prefix + $"app:v{v}";
            app.Metadata.Generation++;
            await h.ReconcileAsync(app);
            Assert.True(Conditions.IsTrue(app.Status, ConditionTypes.Ready), Conditions.Get(app.Status, ConditionTypes.Ready)?.Message);
        }

        var pass = await PassAsync(h.Engine, images, new FixedDiskMeter(95), h.Reconciler.EngineLock,
            () => [DeploymentImagesFrom.Status(h.Namespace, "web", app.Spec, app.Status)]);
        var result = await pass.RunAsync(GcPolicy.BuiltIn, CancellationToken.None);

        // v5 runs, v4..v2 are the rollback images (revisionHistoryLimit 3); only v1 can go.
        Assert.Equal([revisionIds[0]], result.Run.Removed.Select(d => d.Image.Id));
        await images.CommitAsync(TestImages.AppBadHealth, "app:v6-bad");
        app.Spec.App.Image = images.Prefix + "app:v6-bad";
        app.Metadata.Generation++;
        await h.ReconcileAsync(app);

        Assert.Equal(Outcomes.RolledBack, app.Status!.History!.Last().Outcome);
        Assert.Equal(Phases.Degraded, app.Status.Phase);
        var serving = (await h.ContainersAsync(app)).Single(c => c.Component == StackNames.AppComponent && c.Running);
        Assert.Equal(revisionIds[4], serving.ImageId);
        // The rollback container was just started: give the app a moment to listen.
        await Eventually.ValueAsync("the rolled-back app answers /healthz", async _ =>
        {
            try
            {
                var (code, _) = await h.GetAppAsync(app, "/healthz");
                return (code == 200 ? "ok" : null, $"status {code}");
            }
            catch (HttpRequestException e)
            {
                return (null, e.Message);
            }
        }, TimeSpan.FromSeconds(20), interval: DockerFixture.PollInterval);
    }

    [Fact]
    public async Task Rollout_in_progress_is_not_disturbed_gc_waits_and_the_engine_refuses_the_image_once_a_container_uses_it()
    {
        await using var images = new GcImages(docker);
        await using var h = new StackHarness();
        var id = await images.CommitAsync(TestImages.App1, "app:fresh");
        var app = h.BotWithRedis("bot");
        app.Spec.Cache = null;
        app.Spec.App.Image = images.Prefix + "app:fresh";
        var pass = await PassAsync(h.Engine, images, new FixedDiskMeter(95), h.Reconciler.EngineLock, () => []);

        // The rollout's pull phase is under way (its lease), and GC planned to delete the image before.
        var pulling = await h.Reconciler.EngineLock.EnterUseAsync([app.Spec.App.Image], CancellationToken.None);
        var plan = ImageGcPlanner.Plan((await pass.GatherAsync(GcPolicy.BuiltIn, CancellationToken.None)) with { InUseNow = new HashSet<string>() });
        Assert.Contains(plan.Delete, d => d.Image.Id == id);
        var gc = Task.Run(() => pass.ExecuteAsync(plan, CancellationToken.None));
        await Task.Delay(500);
        Assert.False(gc.IsCompleted, "GC must wait while a rollout pulls or starts");

        // The rollout itself is not held up by the waiting GC.
        await h.ReconcileAsync(app).WaitAsync(TimeSpan.FromMinutes(2));
        Assert.True(Conditions.IsTrue(app.Status, ConditionTypes.Ready), Conditions.Get(app.Status, ConditionTypes.Ready)?.Message);
        pulling.Dispose();

        var run = await gc.WaitAsync(TimeSpan.FromMinutes(1));
        Assert.DoesNotContain(run.Removed, d => d.Image.Id == id);
        Assert.Contains(run.Skipped, s => s.Decision.Image.Id == id && s.Reason.StartsWith("InUse", StringComparison.Ordinal));
        Assert.True(await images.ExistsAsync(id));
        Assert.Equal(200, (await h.GetAppAsync(app, "/healthz")).Status);
    }

    [Fact]
    public async Task Disk_guard_sets_DiskPressure_holds_new_rollouts_and_clears_itself()
    {
        await using var images = new GcImages(docker);
        var guard = new DiskGuard();
        await using var h = new StackHarness(services: new StackServices { DiskGuard = guard });
        var meter = new FixedDiskMeter(95);
        var pass = await PassAsync(h.Engine, images, meter, h.Reconciler.EngineLock, () => []);
        var loop = new ImageGcLoop(pass, meter, guard, _ => Task.FromResult(new PolicyChoice(GcPolicy.BuiltIn, null)), new NoReports(), "local", null,
            NullLogger<ImageGcLoop>.Instance);
        var app = h.BotWithRedis("bot");
        app.Spec.Cache = null;

        await loop.RunPassAsync("pressure", CancellationToken.None);
        Assert.True(guard.IsRaised);
        await h.ReconcileAsync(app);

        var pressure = Conditions.Get(app.Status, ConditionTypes.DiskPressure);
        Assert.Equal("True", pressure?.Status);
        Assert.Contains("95.0%", pressure!.Message);
        Assert.Equal("DiskPressure", Conditions.Get(app.Status, ConditionTypes.Reconciling)?.Reason);
        Assert.False(Conditions.IsTrue(app.Status, ConditionTypes.Ready));
        Assert.Empty(await h.ContainersAsync(app));

        meter.UsedPercent = 60;
        Assert.Null(await loop.CheckPressureAsync(CancellationToken.None));
        Assert.False(guard.IsRaised);
        await h.ReconcileAsync(app);

        Assert.Equal("False", Conditions.Get(app.Status, ConditionTypes.DiskPressure)?.Status);
        Assert.True(Conditions.IsTrue(app.Status, ConditionTypes.Ready), Conditions.Get(app.Status, ConditionTypes.Ready)?.Message);
    }

    [Fact]
    public async Task Skiff_gc_dry_run_lists_decisions_and_bad_input_gets_the_documented_exit_codes()
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var dryRun = new GcCommand.GcOptions("local", docker.DockerHost.ToString(), stateDir, null, DryRun: true, OutputFormat.Table) { Meter = new FixedDiskMeter(50) };
        Assert.Equal(ExitCodes.Ok, await GcCommand.RunAsync(dryRun, output, error, NullLoggerFactory.Instance, CancellationToken.None));
        Assert.Contains("Image GC plan (dry run)", output.ToString());
        Assert.Contains("protect", output.ToString());

        var bad = Path.Combine(stateDir, "policy.yaml");
        await File.WriteAllTextAsync(bad, "apiVersion: skiff.dev/v1alpha1\nkind: ImageGCPolicy\nmetadata: { name: p }\nspec:\n  highThresholdPercent: 150\n  minimumAge: 1d\n");
        error = new StringWriter();
        // An invalid policy document is invalid input (1, issue 14 item 5), not a usage error.
        Assert.Equal(ExitCodes.NotOk, await GcCommand.RunAsync(dryRun with { PolicyFile = bad }, new StringWriter(), error, NullLoggerFactory.Instance, CancellationToken.None));
        Assert.Contains("spec.highThresholdPercent", error.ToString());
        Assert.Contains("spec.minimumAge", error.ToString());

        var unreachable = dryRun with { DockerHost = "unix:///nonexistent/docker.sock" };
        Assert.Equal(ExitCodes.Unreachable, await GcCommand.RunAsync(unreachable, new StringWriter(), new StringWriter(), NullLoggerFactory.Instance, CancellationToken.None));
    }
}
