using Microsoft.Extensions.Logging.Abstractions;
using Skiff.ImageGC;
using static Skiff.Tests.ImageGC.GcTestData;

namespace Skiff.Tests.ImageGC;

public class GcExecutorTests
{
    private static (GcPlan Plan, InMemoryImageStore Store) Setup(ImageInfo[] images, double usedPercent, GcPolicy? policy = null,
        IReadOnlyList<ContainerInfo>? containers = null)
    {
        var input = Input(images, usedPercent, policy, containers);
        var store = new InMemoryImageStore(images, input.Disk.TotalBytes, input.Disk.UsedBytes);
        return (ImageGcPlanner.Plan(input), store);
    }

    private static Task<GcRunResult> Run(GcPlan plan, InMemoryImageStore store, CancellationToken ct = default) =>
        new GcExecutor(store, NullLogger<GcExecutor>.Instance).ExecuteAsync(plan, ct);

    private static ImageInfo[] FiveImages() =>
    [
        Image(1, "a:1", sizeMiB: 40, lastUsedHoursAgo: 50),
        Image(2, "a:2", sizeMiB: 40, lastUsedHoursAgo: 40),
        Image(3, "a:3", sizeMiB: 40, lastUsedHoursAgo: 30),
        Image(4, "a:4", sizeMiB: 40, lastUsedHoursAgo: 20),
        Image(5, "a:5", sizeMiB: 40, lastUsedHoursAgo: 10),
    ];

    [Fact]
    public async Task Removes_in_plan_order_and_measures_after_each_removal()
    {
        var (plan, store) = Setup(FiveImages(), 90);

        var result = await Run(plan, store);

        Assert.Equal(["measure", "remove " + Id(1), "measure", "remove " + Id(2), "measure", "remove " + Id(3), "measure"], store.Calls);
        Assert.Equal(Ids(plan.Delete), Ids(result.Removed));
        Assert.Equal(120 * MiB, result.BytesReclaimed);
        Assert.True(result.ReachedLowThreshold);
        Assert.True(result.Complete);
        Assert.True(store.Contains(Id(4)));
    }

    [Fact]
    public async Task Under_pressure_stops_as_soon_as_the_measured_disk_is_below_low()
    {
        var (plan, store) = Setup(FiveImages(), 90);
        store.ReclaimFraction = 3; // the disk frees more than the image sizes suggest

        var result = await Run(plan, store);

        Assert.Equal([Id(1)], Ids(result.Removed));
        Assert.True(result.Complete);
    }

    [Fact]
    public async Task Under_pressure_continues_into_the_reserve_when_shared_layers_free_less_than_projected()
    {
        var (plan, store) = Setup(FiveImages(), 90);
        store.ReclaimFraction = 0.5; // 20 MiB real per image: five are needed, the plan projected three

        var result = await Run(plan, store);

        Assert.Equal([Id(1), Id(2), Id(3), Id(4), Id(5)], Ids(result.Removed));
        Assert.Equal(800 * MiB, result.After.UsedBytes);
        Assert.False(result.ReachedLowThreshold); // exactly 80 % is not below 80 %
        Assert.False(result.Complete);
    }

    [Fact]
    public async Task Never_touches_protected_images_even_when_the_disk_stays_above_low()
    {
        var (plan, store) = Setup(FiveImages(), 99, containers: [new ContainerInfo("db", Id(1), true)]);

        var result = await Run(plan, store);

        Assert.DoesNotContain("remove " + Id(1), store.Calls);
        Assert.Equal(4, result.Removed.Count);
        Assert.Equal(830 * MiB, result.After.UsedBytes);
        Assert.False(result.ReachedLowThreshold);
        Assert.False(result.Complete);
    }

    [Fact]
    public async Task Disk_still_above_high_is_reported_so_rollouts_can_wait()
    {
        var (plan, store) = Setup([Image(1, "postgres:16", sizeMiB: 40)], 90, containers: [new ContainerInfo("db", Id(1), true)]);

        var result = await Run(plan, store);

        Assert.Empty(result.Removed);
        Assert.True(result.AboveHighThreshold);
        Assert.False(result.Complete);
    }

    [Fact]
    public async Task In_use_and_missing_images_are_skipped_and_the_pass_goes_on()
    {
        var (plan, store) = Setup(FiveImages(), 90);
        store.InUse.Add(Id(1));
        var gone = plan with { Delete = [new GcDecision(Image(99, "gone:1"), GcReason.LeastRecentlyUsed, "test"), .. plan.Delete] };

        var result = await Run(gone, store);

        Assert.Equal([Id(99), Id(1)], result.Skipped.Select(s => s.Decision.Image.Id));
        Assert.StartsWith("NotFound", result.Skipped[0].Reason, StringComparison.Ordinal);
        Assert.StartsWith("InUse", result.Skipped[1].Reason, StringComparison.Ordinal);
        Assert.Equal([Id(2), Id(3), Id(4)], Ids(result.Removed));
        Assert.True(result.Complete);
    }

    [Fact]
    public async Task An_engine_error_is_recorded_and_the_pass_goes_on()
    {
        var (plan, store) = Setup(FiveImages(), 90);
        store.Failing.Add(Id(2));

        var result = await Run(plan, store);

        Assert.Equal([Id(2)], result.Failed.Select(f => f.Decision.Image.Id));
        Assert.Contains("engine error", result.Failed[0].Reason, StringComparison.Ordinal);
        Assert.Equal([Id(1), Id(3), Id(4)], Ids(result.Removed));
        Assert.False(result.Complete);
    }

    [Fact]
    public async Task Dry_run_removes_nothing_and_reports_what_would_go()
    {
        var (plan, store) = Setup(FiveImages(), 90, GcPolicy.BuiltIn with { DryRun = true });

        var result = await Run(plan, store);

        Assert.True(result.DryRun);
        Assert.Empty(result.Removed);
        Assert.Equal(Ids(plan.Delete), Ids(result.WouldRemove));
        Assert.DoesNotContain(store.Calls, c => c.StartsWith("remove", StringComparison.Ordinal));
        Assert.Equal(0, result.BytesReclaimed);
    }

    [Fact]
    public async Task Without_pressure_removes_every_planned_image_and_nothing_else()
    {
        var (plan, store) = Setup(FiveImages(), 50, GcPolicy.BuiltIn with { RetainPerRepository = 2 });

        var result = await Run(plan, store);

        Assert.False(result.StartedUnderPressure);
        Assert.Equal([Id(1), Id(2), Id(3)], Ids(result.Removed));
        Assert.True(store.Contains(Id(4)) && store.Contains(Id(5)));
        Assert.True(result.Complete);
    }

    [Fact]
    public async Task Without_pressure_removes_several_at_once_and_reports_in_plan_order()
    {
        var images = Enumerable.Range(1, 12).Select(i => Image(i, $"a:{i}", sizeMiB: 10, lastUsedHoursAgo: 100 - i)).ToArray();
        var (plan, store) = Setup(images, 50, GcPolicy.BuiltIn with { RetainPerRepository = 0, MinimumAge = TimeSpan.Zero });
        store.RemoveDelay = TimeSpan.FromMilliseconds(100);
        store.InUse.Add(Id(5));
        Assert.Equal(12, plan.Delete.Count);

        var result = await Run(plan, store);

        Assert.InRange(store.MaxInFlight, 2, GcExecutor.RemovalConcurrency);
        Assert.Equal(Ids(plan.Delete).Where(id => id != Id(5)), Ids(result.Removed));
        Assert.Equal(Id(5), Assert.Single(result.Skipped).Decision.Image.Id);
        Assert.Equal(["measure", "measure"], store.Calls.Where(c => c == "measure"));
        Assert.Equal(110 * MiB, result.BytesReclaimed);
    }

    [Fact]
    public async Task Under_pressure_removes_one_at_a_time()
    {
        var (plan, store) = Setup(FiveImages(), 90);
        store.RemoveDelay = TimeSpan.FromMilliseconds(50);

        await Run(plan, store);

        Assert.Equal(1, store.MaxInFlight);
    }

    [Fact]
    public async Task Cancellation_stops_the_pass()
    {
        var (plan, store) = Setup(FiveImages(), 90);
        using var cts = new CancellationTokenSource();
        store.OnRemove = id =>
        {
            if (id == Id(1))
            {
                cts.Cancel();
            }
        };

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Run(plan, store, cts.Token));
        Assert.Equal(1, store.Calls.Count(c => c.StartsWith("remove", StringComparison.Ordinal)));
    }
}
