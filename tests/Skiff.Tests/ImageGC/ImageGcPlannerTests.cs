using Skiff.ImageGC;
using static Skiff.Tests.ImageGC.GcTestData;

namespace Skiff.Tests.ImageGC;

public class ImageGcPlannerTests
{
    [Theory]
    [InlineData(true, GcReason.InUseByRunningContainer)]
    [InlineData(false, GcReason.InUseByStoppedContainer)]
    public void Image_of_any_container_is_never_deleted(bool running, GcReason expected)
    {
        var plan = ImageGcPlanner.Plan(Input([Image(1, "acme/api:1"), Image(2, "acme/api:2")], 99,
            containers: [new ContainerInfo("c1", Id(1), running)]));

        Assert.Equal([Id(2)], Ids(plan.Delete));
        Assert.Equal(expected, Decision(plan, 1).Reason);
        Assert.Contains("c1", Decision(plan, 1).Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void Running_container_outranks_stopped_one_in_the_reason()
    {
        var plan = ImageGcPlanner.Plan(Input([Image(1, "acme/api:1")], 99,
            containers: [new ContainerInfo("a-stopped", Id(1), false), new ContainerInfo("b-running", Id(1), true)]));

        Assert.Equal(GcReason.InUseByRunningContainer, Decision(plan, 1).Reason);
    }

    [Fact]
    public void Deployment_current_and_last_history_images_are_protected_by_id_not_tag()
    {
        // 1 is current; history newest first: 1 again (does not use a slot), 2, 3, 4; limit 2 keeps 2 and 3.
        // 5 carries the tag the deployment names, but a different id: a tag can move, ids cannot.
        ImageInfo[] images = [Image(1, "acme/api:4"), Image(2, "acme/api:3"), Image(3, "acme/api:2"), Image(4, "acme/api:1"), Image(5, "acme/api:latest")];
        var plan = ImageGcPlanner.Plan(Input(images, 99,
            deployments: [new DeploymentImages("prod", "api", Id(1), [Id(1), Id(2), Id(3), Id(4)], 2)]));

        Assert.Equal(GcReason.DeploymentCurrent, Decision(plan, 1).Reason);
        Assert.Equal(GcReason.DeploymentHistory, Decision(plan, 2).Reason);
        Assert.Equal(GcReason.DeploymentHistory, Decision(plan, 3).Reason);
        Assert.Contains("prod/api", Decision(plan, 2).Detail, StringComparison.Ordinal);
        Assert.Equal([Id(4), Id(5)], Ids(plan.Delete).Order());
    }

    [Fact]
    public void Revision_history_limit_zero_protects_only_the_current_image()
    {
        var plan = ImageGcPlanner.Plan(Input([Image(1, "a:1"), Image(2, "a:2")], 99,
            deployments: [new DeploymentImages("ns", "a", Id(1), [Id(2)], 0)]));

        Assert.Equal([Id(2)], Ids(plan.Delete));
    }

    [Theory]
    [InlineData(0.5, true)]     // first seen 30 min ago, minimumAge 1h
    [InlineData(double.NaN, true)] // never seen before: counts as first seen now
    [InlineData(2, false)]
    public void Images_first_seen_within_minimum_age_are_protected(double firstSeenHoursAgo, bool isProtected)
    {
        var plan = ImageGcPlanner.Plan(Input([Image(1, "a:1", firstSeenHoursAgo: firstSeenHoursAgo)], 99));

        Assert.Equal(isProtected, plan.Protected.Any(d => d.Reason == GcReason.YoungerThanMinimumAge));
        Assert.Equal(!isProtected, plan.Delete.Count == 1);
    }

    [Fact]
    public void Never_seen_image_is_unprotected_when_minimum_age_is_zero()
    {
        var plan = ImageGcPlanner.Plan(Input([Image(1, "a:1", firstSeenHoursAgo: double.NaN)], 99,
            policy: GcPolicy.BuiltIn with { MinimumAge = TimeSpan.Zero }));

        Assert.Single(plan.Delete);
    }

    [Fact]
    public void Keep_patterns_protect_matching_tags_only()
    {
        ImageInfo[] images = [Image(1, "postgres:16"), Image(2, "postgresql:16"), Image(3, "skiff-test/app:1"), Image(4, "redis:7")];
        var plan = ImageGcPlanner.Plan(Input(images, 99, policy: GcPolicy.BuiltIn with { Keep = ["postgres:*", "skiff-test/*"] }));

        Assert.Equal([Id(1), Id(3)], Ids(plan.Protected));
        Assert.All(plan.Protected, d => Assert.Equal(GcReason.KeepPattern, d.Reason));
        Assert.Contains("\"postgres:*\"", Decision(plan, 1).Detail, StringComparison.Ordinal);
        Assert.Equal([Id(2), Id(4)], Ids(plan.Delete).Order());
    }

    [Theory]
    [InlineData("sha256:0000000100000000000000000000000000000000000000000000000000000000")]
    [InlineData("0000000100000000000000000000000000000000000000000000000000000000")]
    [InlineData("acme/api:1")]
    [InlineData("docker.io/acme/api:1")]
    [InlineData("acme/api@sha256:abc")]
    public void Images_being_pulled_or_started_are_protected(string inUse)
    {
        var plan = ImageGcPlanner.Plan(Input([Image(1, "acme/api:1", digests: ["acme/api@sha256:abc"]), Image(2, "acme/api:2")], 99,
            inUseNow: new HashSet<string> { inUse }));

        Assert.Equal(GcReason.BeingPulledOrStarted, Decision(plan, 1).Reason);
        Assert.Equal([Id(2)], Ids(plan.Delete));
    }

    [Fact]
    public void Reference_without_tag_in_use_means_latest()
    {
        var plan = ImageGcPlanner.Plan(Input([Image(1, "redis:latest"), Image(2, "redis:7")], 99,
            inUseNow: new HashSet<string> { "redis" }));

        Assert.Equal([Id(1)], Ids(plan.Protected));
    }

    [Fact]
    public void Under_pressure_dangling_go_first_then_least_recently_used_until_below_low()
    {
        // 1000 MiB disk, 90 % used, low 80 %: 100 MiB must go, each image is 40 MiB, so three go.
        ImageInfo[] images =
        [
            Image(1, "a:1", sizeMiB: 40, lastUsedHoursAgo: 10),
            Image(2, "a:2", sizeMiB: 40, lastUsedHoursAgo: 500),
            Image(3, null, sizeMiB: 40, lastUsedHoursAgo: 1),  // dangling, recently used: still first
            Image(4, "b:1", sizeMiB: 40, lastUsedHoursAgo: 100),
            Image(5, "b:2", sizeMiB: 40),                     // never used: first seen 1000 h ago
        ];
        var plan = ImageGcPlanner.Plan(Input(images, 90));

        Assert.True(plan.UnderPressure);
        Assert.Equal([Id(3), Id(5), Id(2)], Ids(plan.Delete));
        Assert.Equal([GcReason.Dangling, GcReason.LeastRecentlyUsed, GcReason.LeastRecentlyUsed], plan.Delete.Select(d => d.Reason));
        Assert.Equal([860 * MiB, 820 * MiB, 780 * MiB], plan.Delete.Select(d => d.ProjectedUsedBytes!.Value));
        Assert.Equal(780 * MiB, plan.ProjectedUsedBytes);
        Assert.True(plan.CanReachLowThreshold);
        // The reserve, in the order the executor would continue with it.
        Assert.Equal([Id(4), Id(1)], Ids(plan.Kept));
        Assert.All(plan.Kept, d => Assert.Equal(GcReason.BelowLowThreshold, d.Reason));
    }

    [Fact]
    public void Under_pressure_equal_last_use_is_broken_by_id()
    {
        var plan = ImageGcPlanner.Plan(Input([Image(9, "a:9", lastUsedHoursAgo: 5), Image(3, "a:3", lastUsedHoursAgo: 5)], 99));

        Assert.Equal([Id(3), Id(9)], Ids(plan.Delete));
    }

    [Fact]
    public void Under_pressure_with_too_little_to_delete_says_low_threshold_is_out_of_reach()
    {
        var plan = ImageGcPlanner.Plan(Input([Image(1, "a:1", sizeMiB: 10), Image(2, "db:1", sizeMiB: 10)], 95,
            containers: [new ContainerInfo("db", Id(2), true)]));

        Assert.True(plan.UnderPressure);
        Assert.Equal([Id(1)], Ids(plan.Delete));
        Assert.False(plan.CanReachLowThreshold);
        Assert.Equal(940 * MiB, plan.ProjectedUsedBytes);
    }

    [Theory]
    [InlineData(850, true)]   // exactly 85 % is pressure, as in kubelet
    [InlineData(849, false)]
    public void Pressure_starts_at_the_high_threshold(long usedMiB, bool pressure)
    {
        var input = Input([Image(1, "a:1")], 0) with { Disk = new DiskUsage(1000 * MiB, usedMiB * MiB) };

        Assert.Equal(pressure, ImageGcPlanner.Plan(input).UnderPressure);
    }

    [Fact]
    public void Unknown_disk_size_is_never_pressure()
    {
        var input = Input([Image(1, "a:1")], 0) with { Disk = new DiskUsage(0, 0) };

        var plan = ImageGcPlanner.Plan(input);

        Assert.False(plan.UnderPressure);
        Assert.Empty(plan.Delete);
    }

    [Fact]
    public void Without_pressure_images_beyond_retain_per_repository_go_counting_protected_ones()
    {
        // acme/api: 1 (current, protected) and 2 are the newest; retain 3 keeps 1, 2, 3; 4 and 5 go.
        // other: a single image stays.
        ImageInfo[] images =
        [
            Image(1, "acme/api:5", lastUsedHoursAgo: 1),
            Image(2, "acme/api:4", lastUsedHoursAgo: 2),
            Image(3, "acme/api:3", lastUsedHoursAgo: 3),
            Image(4, "acme/api:2", lastUsedHoursAgo: 4),
            Image(5, "acme/api:1", lastUsedHoursAgo: 5),
            Image(6, "other:1", lastUsedHoursAgo: 6),
        ];
        var plan = ImageGcPlanner.Plan(Input(images, 50,
            deployments: [new DeploymentImages("prod", "api", Id(1), [], 0)]));

        Assert.False(plan.UnderPressure);
        Assert.Equal([Id(5), Id(4)], Ids(plan.Delete));
        Assert.All(plan.Delete, d => Assert.Equal(GcReason.BeyondRetainPerRepository, d.Reason));
        Assert.Contains("acme/api", plan.Delete[0].Detail, StringComparison.Ordinal);
        Assert.Equal([Id(6), Id(3), Id(2)], Ids(plan.Kept));
        Assert.All(plan.Kept, d => Assert.Equal(GcReason.WithinRetention, d.Reason));
    }

    [Fact]
    public void Image_within_retention_in_one_of_its_repositories_stays()
    {
        // 3 is the oldest of acme/api (retain 1) but the only image of mirror/api.
        ImageInfo[] images = [Image(1, "acme/api:2", lastUsedHoursAgo: 1), Image(3, tags: ["acme/api:1", "mirror/api:1"], lastUsedHoursAgo: 9)];
        var plan = ImageGcPlanner.Plan(Input(images, 10, policy: GcPolicy.BuiltIn with { RetainPerRepository = 1 }));

        Assert.Empty(plan.Delete);
    }

    [Fact]
    public void Digest_only_images_belong_to_their_repository_and_are_not_dangling()
    {
        ImageInfo[] images =
        [
            Image(1, "acme/api:2", lastUsedHoursAgo: 1),
            Image(2, null, digests: ["registry.example.com/acme/api@sha256:aa"], lastUsedHoursAgo: 2),
            Image(3, null, digests: ["registry.example.com/acme/api@sha256:bb"], lastUsedHoursAgo: 3),
        ];
        var plan = ImageGcPlanner.Plan(Input(images, 10, policy: GcPolicy.BuiltIn with { RetainPerRepository = 1 }));

        Assert.Equal([Id(3)], Ids(plan.Delete));
        Assert.Equal(GcReason.BeyondRetainPerRepository, plan.Delete[0].Reason);
    }

    [Fact]
    public void Without_pressure_unused_images_older_than_maximum_age_go()
    {
        ImageInfo[] images =
        [
            Image(1, "a:1", lastUsedHoursAgo: 800),
            Image(2, "a:2", lastUsedHoursAgo: 700),
            Image(3, null, lastUsedHoursAgo: 800),   // dangling and old: goes too
            Image(4, "b:1", lastUsedHoursAgo: 800),  // old but used by a container
            Image(5, null, lastUsedHoursAgo: 10),    // dangling and young: waits for pressure
        ];
        var plan = ImageGcPlanner.Plan(Input(images, 10,
            policy: GcPolicy.BuiltIn with { MaximumAge = TimeSpan.FromHours(720) },
            containers: [new ContainerInfo("c", Id(4), false)]));

        Assert.Equal([Id(3), Id(1)], Ids(plan.Delete));
        Assert.All(plan.Delete, d => Assert.Equal(GcReason.OlderThanMaximumAge, d.Reason));
        Assert.Equal(GcReason.WithinRetention, Decision(plan, 5).Reason);
    }

    [Fact]
    public void Without_pressure_and_without_candidates_nothing_is_deleted()
    {
        var plan = ImageGcPlanner.Plan(Input([Image(1, "a:1"), Image(2, null)], 84));

        Assert.Empty(plan.Delete);
        Assert.True(plan.CanReachLowThreshold);
        Assert.Equal(2, plan.Kept.Count);
    }

    [Fact]
    public void Strongest_protection_reason_is_reported()
    {
        var plan = ImageGcPlanner.Plan(Input([Image(1, "postgres:16", firstSeenHoursAgo: 0.1)], 99,
            policy: GcPolicy.BuiltIn with { Keep = ["postgres:*"] },
            containers: [new ContainerInfo("db", Id(1), true)],
            deployments: [new DeploymentImages("prod", "api", Id(1), [], 3)]));

        Assert.Equal(GcReason.InUseByRunningContainer, Decision(plan, 1).Reason);
    }

    [Fact]
    public void Duplicate_image_ids_are_rejected()
    {
        Assert.Throws<ArgumentException>(() => ImageGcPlanner.Plan(Input([Image(1, "a:1"), Image(1, "a:2")], 99)));
    }

    [Fact]
    public void Explain_lists_every_image_with_its_decision_and_reason()
    {
        ImageInfo[] images = [Image(1, null, sizeMiB: 200), Image(2, "acme/api:1"), Image(3, "postgres:16")];
        var plan = ImageGcPlanner.Plan(Input(images, 90,
            policy: GcPolicy.BuiltIn with { Name = "default", DryRun = true, MaximumAge = TimeSpan.FromHours(720) },
            containers: [new ContainerInfo("0123456789abcdef", Id(3), true)]));

        var lines = plan.Explain().Split('\n', StringSplitOptions.RemoveEmptyEntries);

        Assert.Equal(
        [
            "Image GC plan (dry run): policy default, high 85%, low 80%, minimumAge 1h, maximumAge 30d, retainPerRepository 3, keep []",
            "Disk: 90.0% used (900.0MiB of 1000.0MiB); under pressure; 1 to delete (200.0MiB), projected 70.0%; low threshold reachable",
            "ACTION   IMAGE         SIZE       REFERENCE                                 REASON",
            "delete   000000010000  200.0MiB   <none>                                    Dangling: untagged; never used, first seen 41d16h ago (then 70.0%)",
            "protect  000000030000  100.0MiB   postgres:16                               InUseByRunningContainer: used by running container 0123456789ab",
            "keep     000000020000  100.0MiB   acme/api:1                                BelowLowThreshold: projected usage already below 80%; never used, first seen 41d16h ago",
        ], lines);
    }

    [Fact]
    public void Images_first_seen_together_are_retained_and_collected_by_build_time()
    {
        // Skiff's first pass on a node full of old builds sees them all at once: the newest builds stay.
        ImageInfo[] images = [.. Enumerable.Range(1, 5).Select(n => Image(n, $"acme/api:{n}", firstSeenHoursAgo: 2) with { Created = Now.AddDays(-10 + n) })];
        var retention = ImageGcPlanner.Plan(Input(images.Reverse().ToArray(), 50, GcPolicy.BuiltIn with { RetainPerRepository = 2, MinimumAge = TimeSpan.Zero }));
        Assert.Equal([Id(1), Id(2), Id(3)], retention.Delete.Select(d => d.Image.Id).Order());

        var pressure = ImageGcPlanner.Plan(Input(images.Reverse().ToArray(), 99, GcPolicy.BuiltIn with { MinimumAge = TimeSpan.Zero }));
        Assert.Equal([Id(1), Id(2), Id(3), Id(4), Id(5)], pressure.Delete.Concat(pressure.Kept.Where(k => k.Reason == GcReason.BelowLowThreshold)).Select(d => d.Image.Id).Take(5));
    }
}
