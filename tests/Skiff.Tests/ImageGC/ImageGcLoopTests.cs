using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Skiff.Api;
using Skiff.ImageGC;
using Skiff.Reconcile;
using static Skiff.Tests.ImageGC.GcTestData;

namespace Skiff.Tests.ImageGC;

/// <summary>The GC loop's pass, the disk guard it drives, and the input it gathers.</summary>
public sealed class ImageGcLoopTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("skiff-gcloop-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private sealed class Reports : IGcReporter
    {
        public List<GcNodeReport> All { get; } = [];

        public Task ReportAsync(GcNodeReport report, CancellationToken ct)
        {
            All.Add(report);
            return Task.CompletedTask;
        }
    }

    private static ImageInfo Raw(int n, string? tag = null, long sizeMiB = 100) => new(Id(n), tag is null ? [] : [tag], [], sizeMiB * MiB, Now.AddDays(-30));

    private async Task<(ImageGcLoop Loop, InMemoryImageStore Engine, DiskGuard Guard, Reports Reports, ImageGcPass Pass, FakeTimeProvider Time)> LoopAsync(
        IEnumerable<ImageInfo> images, long usedMiB, GcPolicy? policy = null, IReadOnlyList<DeploymentImages>? deployments = null, ImageEngineLock? engineLock = null)
    {
        var time = new FakeTimeProvider(Now);
        var engine = new InMemoryImageStore(images, 1000 * MiB, usedMiB * MiB);
        var firstSeen = await FirstSeenStore.LoadAsync(Path.Combine(dir, "images.json"), CancellationToken.None);
        // Everything was first seen two days ago, past the default minimumAge.
        firstSeen.Observe(await engine.ListImagesAsync(CancellationToken.None), Now.AddDays(-2));
        var pass = new ImageGcPass(engine, firstSeen, engineLock ?? new ImageEngineLock(), () => deployments ?? [], NullLogger<GcExecutor>.Instance, time);
        var guard = new DiskGuard();
        var reports = new Reports();
        var loop = new ImageGcLoop(pass, engine, guard, _ => Task.FromResult(new PolicyChoice(policy ?? GcPolicy.BuiltIn, null)), reports, "vps-1", null,
            NullLogger<ImageGcLoop>.Instance, time);
        return (loop, engine, guard, reports, pass, time);
    }

    [Fact]
    public async Task Pass_that_cannot_get_below_high_raises_the_guard_with_what_it_could_not_free()
    {
        // 950 MiB used of 1000: only image 2 is free to go; image 1 runs.
        var (loop, engine, guard, reports, _, _) = await LoopAsync([Raw(1, "app:1", 400), Raw(2, "app:0", 50)], usedMiB: 950);
        engine.Containers.Add(new ContainerInfo("c1", Id(1), true));
        var raised = new List<bool>();
        guard.Changed += raised.Add;

        var result = await loop.RunPassAsync("pressure", CancellationToken.None);

        Assert.NotNull(result);
        Assert.Equal([Id(2)], result.Run.Removed.Select(d => d.Image.Id));
        Assert.True(guard.IsRaised);
        Assert.Equal([true], raised);
        Assert.Contains("90.0%", guard.Message);
        Assert.Contains("1 used by running containers", guard.Message);
        var report = reports.All.Single();
        Assert.Equal("incomplete", report.Result);
        Assert.True(report.DiskPressure);
        Assert.Equal(1, report.ImagesRemoved);
        Assert.Equal(50 * MiB, report.BytesReclaimed);
        Assert.Equal(Now + GcPolicy.BuiltIn.Interval, report.NextRun);
    }

    [Fact]
    public async Task Guard_clears_when_a_reading_drops_below_high_and_pressure_triggers_a_pass()
    {
        var (loop, engine, guard, _, _, _) = await LoopAsync([Raw(1, "app:1", 400)], usedMiB: 950);
        engine.Containers.Add(new ContainerInfo("c1", Id(1), true));
        await loop.RunPassAsync("pressure", CancellationToken.None);
        Assert.True(guard.IsRaised);

        // Still above: no new pass within PressureRetryAfter (GC could not help a moment ago).
        Assert.Null(await loop.CheckPressureAsync(CancellationToken.None));

        engine.UsedBytes = 700 * MiB; // someone deleted a big log file
        Assert.Null(await loop.CheckPressureAsync(CancellationToken.None));
        Assert.False(guard.IsRaised);
        Assert.Contains("70.0%", guard.Message);

        engine.UsedBytes = 860 * MiB;
        Assert.Equal("pressure", await loop.CheckPressureAsync(CancellationToken.None));
    }

    [Fact]
    public async Task The_startup_pass_waits_for_the_stacks_first_pass_unless_the_disk_is_under_pressure()
    {
        // 500 of 1000 MiB used: the startup pass waits until the stacks' first pass is handed out.
        var (loop, _, _, reports, _, _) = await LoopAsync([Raw(2, "app:0", 50)], usedMiB: 500);
        var stacksFirst = new TaskCompletionSource();
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        var running = loop.RunAsync(cts.Token, t => stacksFirst.Task.WaitAsync(t));
        await Task.Delay(500);
        Assert.Empty(reports.All);
        stacksFirst.SetResult();
        await UntilAsync(() => reports.All.Count == 1);
        Assert.Equal("startup", reports.All.Single().Trigger);
        await StopAsync(cts, running);

        // 950 MiB used (above the built-in 85%): the pass runs at once, whatever the stacks do.
        var (pressed, _, _, pressedReports, _, _) = await LoopAsync([Raw(2, "app:0", 50)], usedMiB: 950);
        using var cts2 = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        var never = new TaskCompletionSource();
        var running2 = pressed.RunAsync(cts2.Token, t => never.Task.WaitAsync(t));
        await UntilAsync(() => pressedReports.All.Count == 1);
        Assert.Equal("startup", pressedReports.All.Single().Trigger);
        await StopAsync(cts2, running2);
    }

    private static async Task UntilAsync(Func<bool> condition)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        while (!condition())
        {
            await Task.Delay(20, timeout.Token);
        }
    }

    private static async Task StopAsync(CancellationTokenSource cts, Task running)
    {
        await cts.CancelAsync();
        try
        {
            await running;
        }
        catch (OperationCanceledException)
        {
        }
    }

    [Fact]
    public async Task Pass_below_high_clears_a_raised_guard()
    {
        var (loop, engine, guard, reports, _, _) = await LoopAsync([Raw(1, "app:1", 400), Raw(2, "app:0", 200)], usedMiB: 950);
        guard.Raise("earlier");

        await loop.RunPassAsync("pressure", CancellationToken.None);

        Assert.False(guard.IsRaised);
        Assert.Equal("success", reports.All.Single().Result);
        Assert.True(engine.UsedBytes < 800 * MiB);
    }

    [Fact]
    public async Task Failing_pass_is_reported_as_an_error_and_does_not_throw()
    {
        var (loop, _, guard, reports, _, _) = await LoopAsync([Raw(1)], usedMiB: 100);
        var broken = new ImageGcLoop(
            new ImageGcPass(new ThrowingEngine(), await FirstSeenStore.LoadAsync(Path.Combine(dir, "x.json"), CancellationToken.None), new ImageEngineLock(), () => [],
                NullLogger<GcExecutor>.Instance),
            new FixedDiskMeter(50), guard, _ => Task.FromResult(new PolicyChoice(GcPolicy.BuiltIn, null)), reports, "vps-1", null, NullLogger<ImageGcLoop>.Instance);

        var result = await broken.RunPassAsync("rollout", CancellationToken.None);

        Assert.Null(result);
        Assert.Equal("error", reports.All.Single().Result);
        Assert.Contains("engine down", reports.All.Single().Message);
    }

    [Fact]
    public async Task Gathered_input_has_first_seen_times_every_container_deployments_and_leased_images()
    {
        var engineLock = new ImageEngineLock();
        var deployments = new[] { new DeploymentImages("prod", "api", Id(1), [Id(2)], 3) };
        var (_, engine, _, _, pass, _) = await LoopAsync([Raw(1, "api:2"), Raw(2, "api:1"), Raw(3, "other:1")], 100, deployments: deployments, engineLock: engineLock);
        engine.Containers.Add(new ContainerInfo("c-stopped", Id(3), false));
        using var lease = await engineLock.EnterUseAsync(["api:3"], CancellationToken.None);

        var input = await pass.GatherAsync(GcPolicy.BuiltIn, CancellationToken.None);

        Assert.Equal(3, input.Images.Count);
        Assert.All(input.Images, i => Assert.Equal(Now.AddDays(-2), i.FirstSeen));
        Assert.Equal("c-stopped", input.Containers.Single().Id);
        Assert.Same(deployments[0], input.Deployments.Single());
        Assert.Equal(["api:3"], input.InUseNow);
        Assert.Equal(100 * MiB, input.Disk.UsedBytes);
    }

    [Fact]
    public async Task Scope_restricts_the_images_considered_but_remembers_every_image()
    {
        var engine = new InMemoryImageStore([Raw(1, "mine/a:1"), Raw(2, "theirs/b:1")], 1000 * MiB, 100 * MiB);
        var firstSeen = await FirstSeenStore.LoadAsync(Path.Combine(dir, "images.json"), CancellationToken.None);
        var scoped = new ImageGcPass(engine, firstSeen, new ImageEngineLock(), () => [], NullLogger<GcExecutor>.Instance)
        {
            Scope = i => i.RepoTags.Any(t => t.StartsWith("mine/", StringComparison.Ordinal)),
        };

        var input = await scoped.GatherAsync(GcPolicy.BuiltIn, CancellationToken.None);

        Assert.Equal([Id(1)], input.Images.Select(i => i.Id));
        Assert.NotNull(firstSeen.Get(Id(2)));
    }

    [Fact]
    public void Deployment_images_come_from_status_image_id_and_history_newest_first()
    {
        var spec = new AppDeploymentSpec { Rollout = new RolloutSpec { RevisionHistoryLimit = 2 } };
        var status = new AppDeploymentStatus
        {
            ImageId = Id(3),
            History =
            [
                new RevisionRecord { Revision = 1, ImageId = Id(1), Outcome = Outcomes.Succeeded },
                new RevisionRecord { Revision = 3, ImageId = Id(3), Outcome = Outcomes.Succeeded },
                new RevisionRecord { Revision = 2, ImageId = Id(2), Outcome = Outcomes.Succeeded },
                new RevisionRecord { Revision = 4, Outcome = Outcomes.RolledBack },
            ],
        };

        var images = DeploymentImagesFrom.Status("prod", "api", spec, status);

        Assert.Equal(Id(3), images.CurrentImageId);
        Assert.Equal([Id(3), Id(2), Id(1)], images.HistoryImageIds);
        Assert.Equal(2, images.RevisionHistoryLimit);
        Assert.Equal(3, DeploymentImagesFrom.Status("prod", "api", null, null).RevisionHistoryLimit);
    }

    [Fact]
    public async Task A_dry_run_reports_what_it_would_remove_and_skiff_gc_builds_its_report_the_same_way()
    {
        // 950 MiB used of 1000: the larger unused image would bring usage below the low threshold; nothing is removed.
        var (loop, engine, guard, reports, _, time) = await LoopAsync([Raw(1, "app:1", 400), Raw(2, "app:0", 50)], usedMiB: 950,
            policy: GcPolicy.BuiltIn with { DryRun = true });

        var result = await loop.RunPassAsync("interval", CancellationToken.None);

        var report = reports.All.Single();
        Assert.Equal("dry_run", report.Result);
        Assert.Equal(0, report.ImagesRemoved);
        Assert.Equal([Id(1)], report.Removed.Select(r => r.Id));
        Assert.StartsWith("dry run: would remove 1 images, reclaimed ", report.Message, StringComparison.Ordinal);
        Assert.EndsWith("; disk 95.0% -> 95.0%; 0 protected", report.Message, StringComparison.Ordinal);
        Assert.Equal(2, (await engine.ListImagesAsync(CancellationToken.None)).Count);
        Assert.False(guard.IsRaised);

        // skiff gc's report of the same pass: its own trigger, time and message, every other field alike.
        var gc = GcNodeReport.Of(result!, "vps-1", "skiff gc", time.GetUtcNow(), diskPressure: false, "skiff gc removed 0 images");
        Assert.Equal(report with { Trigger = "skiff gc", LastRun = gc.LastRun, NextRun = null, Message = gc.Message, Removed = gc.Removed }, gc);
        Assert.Equal(report.Removed, gc.Removed);
    }

    private sealed class ThrowingEngine : IGcEngine
    {
        public Task<IReadOnlyList<ImageInfo>> ListImagesAsync(CancellationToken ct) => throw new InvalidOperationException("engine down");

        public Task<RemoveResult> RemoveImageAsync(string id, CancellationToken ct) => throw new InvalidOperationException("engine down");

        public Task<DiskUsage> MeasureAsync(CancellationToken ct) => throw new InvalidOperationException("engine down");

        public Task<IReadOnlyList<ContainerInfo>> ListContainersAsync(CancellationToken ct) => throw new InvalidOperationException("engine down");

        public Task<long> PruneBuildCacheAsync(CancellationToken ct) => throw new InvalidOperationException("engine down");
    }
}
