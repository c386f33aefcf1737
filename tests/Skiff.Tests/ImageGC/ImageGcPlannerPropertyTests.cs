using CsCheck;
using Skiff.ImageGC;
using static Skiff.Tests.ImageGC.GcTestData;

namespace Skiff.Tests.ImageGC;

/// <summary>
/// Properties of the planner over random nodes: images in a handful of repositories (so tags,
/// retention groups and recency ties collide often), containers and deployments that point at
/// existing and foreign image ids, keep patterns, policies and disk readings on both sides of
/// the thresholds. Protection is checked against an independent, deliberately naive oracle.
/// </summary>
public class ImageGcPlannerPropertyTests
{
    private const int Iterations = 400;

    private static readonly string[] Repos = ["acme/api", "acme/bot", "postgres", "redis", "skiff-test/app", "registry.example.com:5000/team/web"];
    private static readonly string[] Tags = ["1", "2", "3", "latest"];
    private static readonly string[] Patterns = ["postgres:*", "redis:*", "skiff-test/*", "acme/api:1", "postgres", "*:2"];
    private static readonly TimeSpan[] MinimumAges = [TimeSpan.Zero, TimeSpan.FromMinutes(30), TimeSpan.FromHours(1), TimeSpan.FromHours(24)];

    /// <summary>The generated input, plus a seed for shuffling it.</summary>
    public sealed record Scenario(GcInput Input, int ShuffleSeed)
    {
        public override string ToString() =>
            $"{Input.Images.Count} images, {Input.Containers.Count} containers, {Input.Deployments.Count} deployments, " +
            $"policy {Input.Policy with { Keep = [] }} keep [{string.Join(",", Input.Policy.Keep)}], disk {Input.Disk}, seed {ShuffleSeed}";
    }

    private static readonly Gen<Func<int, ImageInfo>> GenImage = Gen.Select(
        Gen.Int[-1, Repos.Length - 1], Gen.Int[0, Tags.Length - 1], Gen.Int[0, 9], Gen.Long[0, 500],
        Gen.Int[0, 400], Gen.Int[-1, 200], Gen.Int[-1, 200], Gen.Int[-1, 1],
        (repo, tag, digestDice, sizeMiB, createdH, firstSeenH, lastUsedH, jitterMinutes) => new Func<int, ImageInfo>(n =>
        {
            // Whole hours make recency ties common (ids must break them); the jitter straddles minimumAge exactly.
            string[] tags = repo < 0 || digestDice == 0 ? [] : [$"{Repos[repo]}:{Tags[tag]}"];
            string[] digests = repo >= 0 && digestDice <= 1 ? [$"{Repos[repo]}@sha256:{n:x8}"] : [];
            var firstSeen = firstSeenH < 0 ? (DateTimeOffset?)null : Now.AddHours(-firstSeenH).AddMinutes(jitterMinutes);
            var lastUsed = lastUsedH < 0 || firstSeen is null ? null : (DateTimeOffset?)Now.AddHours(-Math.Min(lastUsedH, firstSeenH)).AddMinutes(jitterMinutes);
            return new ImageInfo(Id(n), tags, digests, sizeMiB * MiB, Now.AddHours(-createdH), firstSeen, lastUsed);
        }));

    private static readonly Gen<GcPolicy> GenPolicy = Gen.Select(
        Gen.Int[1, 100], Gen.Int[0, 99], Gen.Int[0, MinimumAges.Length - 1], Gen.Int[-1, 300], Gen.Int[0, 5], Gen.Int[0, (1 << Patterns.Length) - 1],
        (high, low, minAge, maxAgeH, retain, keepMask) => new GcPolicy
        {
            Name = "generated",
            HighThresholdPercent = high,
            LowThresholdPercent = low % high,
            MinimumAge = MinimumAges[minAge],
            MaximumAge = maxAgeH < 0 ? null : TimeSpan.FromHours(maxAgeH),
            RetainPerRepository = retain,
            Keep = [.. Patterns.Where((_, i) => (keepMask & (1 << i)) != 0)],
        });

    /// <summary>An image index: below the image count an existing image, above it a foreign id.</summary>
    private static string Ref(int k, int count) => Id(k < count ? k : 1000 + k);

    private static readonly Gen<Scenario> GenScenario = Gen.Select(
        GenImage.Array[0, 40],
        Gen.Select(Gen.Int[0, 50], Gen.Bool).Array[0, 15],
        Gen.Select(Gen.Int[-1, 50], Gen.Int[0, 50].Array[0, 6], Gen.Int[0, 4]).Array[0, 5],
        Gen.Int[0, 50].Array[0, 3],
        GenPolicy,
        Gen.Select(Gen.Long[0, 20_000], Gen.Int[0, 1000]),
        Gen.Int,
        (images, containers, deployments, inUse, policy, disk, seed) =>
        {
            var n = images.Length;
            var imageList = images.Select((f, i) => f(i)).ToArray();
            var inUseNow = new HashSet<string>(inUse.Select(k =>
                k % 2 == 0 || k >= n || imageList[k].RepoTags.Count == 0 ? Ref(k, n) : imageList[k].RepoTags[0]));
            var total = disk.Item1 * MiB;
            return new Scenario(
                new GcInput(
                    imageList,
                    [.. containers.Select((c, i) => new ContainerInfo($"c{i:d3}", Ref(c.Item1, n), c.Item2))],
                    [.. deployments.Select((d, i) => new DeploymentImages("ns", $"app{i}", d.Item1 < 0 ? null : Ref(d.Item1, n), [.. d.Item2.Select(h => Ref(h, n))], d.Item3))],
                    inUseNow,
                    policy,
                    new DiskUsage(total, total / 1000 * disk.Item2),
                    Now),
                seed);
        });

    /// <summary>What must be protected, computed the obvious way, independently of the planner.</summary>
    private static HashSet<string> ExpectedProtected(GcInput input)
    {
        var set = new HashSet<string>(input.Containers.Select(c => c.ImageId));
        foreach (var d in input.Deployments)
        {
            if (d.CurrentImageId is not null)
            {
                set.Add(d.CurrentImageId);
            }

            set.UnionWith(d.HistoryImageIds.Where(h => h != d.CurrentImageId).Distinct().Take(d.RevisionHistoryLimit));
        }

        foreach (var image in input.Images)
        {
            var references = image.RepoTags.Concat(image.RepoDigests).ToList();
            if (input.InUseNow.Contains(image.Id) || references.Any(input.InUseNow.Contains) ||
                input.Policy.Keep.Any(p => references.Append(image.Id).Any(r => ImageGcPlanner.Matches(p, r))) ||
                (image.FirstSeen is { } seen ? input.Now - seen < input.Policy.MinimumAge : input.Policy.MinimumAge > TimeSpan.Zero))
            {
                set.Add(image.Id);
            }
        }

        set.IntersectWith(input.Images.Select(i => i.Id));
        return set;
    }

    private static long Recency(ImageInfo i) => (i.LastUsed ?? i.FirstSeen ?? i.Created).UtcTicks;

    private static bool Pressure(DiskUsage disk, long used, int percent) =>
        disk.TotalBytes > 0 && (decimal)used * 100 >= (decimal)percent * disk.TotalBytes;

    [Fact]
    public void Every_image_gets_exactly_one_decision()
    {
        GenScenario.Sample(s =>
        {
            var plan = ImageGcPlanner.Plan(s.Input);
            var decided = Ids(plan.Delete).Concat(Ids(plan.Protected)).Concat(Ids(plan.Kept)).Order();
            Assert.Equal(s.Input.Images.Select(i => i.Id).Order(), decided);
        }, iter: Iterations);
    }

    [Fact]
    public void Nothing_protected_is_ever_planned_for_deletion()
    {
        GenScenario.Sample(s =>
        {
            var plan = ImageGcPlanner.Plan(s.Input);
            var expected = ExpectedProtected(s.Input);
            Assert.DoesNotContain(plan.Delete, d => expected.Contains(d.Image.Id));
            Assert.Equal(expected.Order(), Ids(plan.Protected).Order());
        }, iter: Iterations);
    }

    [Fact]
    public void Under_pressure_dangling_images_go_first_then_least_recently_used()
    {
        GenScenario.Where(s => Pressure(s.Input.Disk, s.Input.Disk.UsedBytes, s.Input.Policy.HighThresholdPercent)).Sample(s =>
        {
            var plan = ImageGcPlanner.Plan(s.Input);
            Assert.True(plan.UnderPressure);
            var reasons = plan.Delete.Select(d => d.Reason).ToList();
            var dangling = reasons.TakeWhile(r => r == GcReason.Dangling).Count();
            Assert.All(reasons.Skip(dangling), r => Assert.Equal(GcReason.LeastRecentlyUsed, r));
            Assert.All(plan.Delete.Take(dangling), d => Assert.Empty(d.Image.RepoTags.Concat(d.Image.RepoDigests)));
            Assert.All(plan.Delete.Skip(dangling), d => Assert.NotEmpty(d.Image.RepoTags.Concat(d.Image.RepoDigests)));
            var lru = plan.Delete.Skip(dangling).Select(d => Recency(d.Image)).ToList();
            Assert.Equal(lru.Order(), lru);
        }, iter: Iterations);
    }

    [Fact]
    public void Under_pressure_the_plan_stops_once_projected_usage_is_below_low()
    {
        GenScenario.Where(s => Pressure(s.Input.Disk, s.Input.Disk.UsedBytes, s.Input.Policy.HighThresholdPercent)).Sample(s =>
        {
            var plan = ImageGcPlanner.Plan(s.Input);
            var disk = s.Input.Disk;
            var low = s.Input.Policy.LowThresholdPercent;
            var projected = disk.UsedBytes;
            foreach (var d in plan.Delete)
            {
                Assert.True(Pressure(disk, projected, low), "a deletion was planned after the projection fell below low");
                projected = Math.Max(0, projected - d.Image.Size);
                Assert.Equal(projected, d.ProjectedUsedBytes);
            }

            Assert.Equal(projected, plan.ProjectedUsedBytes);
            Assert.Equal(!Pressure(disk, projected, low), plan.CanReachLowThreshold);
            Assert.All(plan.Kept, k => Assert.Equal(GcReason.BelowLowThreshold, k.Reason));
            if (!plan.CanReachLowThreshold)
            {
                Assert.Empty(plan.Kept); // every unprotected image went, and it still was not enough
            }
        }, iter: Iterations);
    }

    [Fact]
    public void Without_pressure_only_retention_and_maximum_age_candidates_are_deleted()
    {
        GenScenario.Where(s => !Pressure(s.Input.Disk, s.Input.Disk.UsedBytes, s.Input.Policy.HighThresholdPercent)).Sample(s =>
        {
            var input = s.Input;
            var plan = ImageGcPlanner.Plan(input);
            Assert.False(plan.UnderPressure);
            Assert.True(plan.CanReachLowThreshold);
            foreach (var d in plan.Delete)
            {
                Assert.True(d.Reason switch
                {
                    GcReason.OlderThanMaximumAge => OlderThanMaximumAge(input, d.Image),
                    GcReason.BeyondRetainPerRepository => BeyondRetention(input, d.Image),
                    _ => false,
                }, $"{d.Reason} for {d.Image}");
            }

            // And the converse: nothing that qualifies was left behind.
            foreach (var k in plan.Kept)
            {
                Assert.Equal(GcReason.WithinRetention, k.Reason);
                Assert.False(OlderThanMaximumAge(input, k.Image) || BeyondRetention(input, k.Image), $"kept {k.Image}");
            }
        }, iter: Iterations);
    }

    private static bool OlderThanMaximumAge(GcInput input, ImageInfo image) =>
        input.Policy.MaximumAge is { } max && input.Now.UtcTicks - Recency(image) > max.Ticks;

    /// <summary>In every repository it belongs to, at least retainPerRepository images rank newer (ties: smaller id).</summary>
    private static bool BeyondRetention(GcInput input, ImageInfo image)
    {
        static IEnumerable<string> RepositoriesOf(ImageInfo i) => i.RepoTags.Concat(i.RepoDigests)
            .Select(r => r.Contains('@') ? r[..r.IndexOf('@')] : r[..r.LastIndexOf(':')]).Distinct();

        var repos = RepositoriesOf(image).ToList();
        return repos.Count > 0 && repos.All(repo => input.Images.Count(other =>
            other.Id != image.Id && RepositoriesOf(other).Contains(repo) &&
            (Recency(other) > Recency(image)
                || (Recency(other) == Recency(image) && other.Created > image.Created)
                || (Recency(other) == Recency(image) && other.Created == image.Created && string.CompareOrdinal(other.Id, image.Id) < 0)))
            >= input.Policy.RetainPerRepository);
    }

    [Fact]
    public void Plan_is_deterministic_and_independent_of_input_order()
    {
        GenScenario.Sample(s =>
        {
            var input = s.Input;
            var random = new Random(s.ShuffleSeed);
            var shuffled = input with
            {
                Images = [.. input.Images.OrderBy(_ => random.Next())],
                Containers = [.. input.Containers.OrderBy(_ => random.Next())],
                Deployments = [.. input.Deployments.OrderBy(_ => random.Next())],
                InUseNow = new HashSet<string>(input.InUseNow.OrderBy(_ => random.Next())),
            };

            var expected = Fingerprint(ImageGcPlanner.Plan(input));
            Assert.Equal(expected, Fingerprint(ImageGcPlanner.Plan(input)));
            Assert.Equal(expected, Fingerprint(ImageGcPlanner.Plan(shuffled)));
        }, iter: Iterations);
    }

    private static string Fingerprint(GcPlan plan) =>
        plan.Explain() + string.Join("\n", plan.Delete.Concat(plan.Protected).Concat(plan.Kept)
            .Select(d => $"{d.Image.Id} {d.Reason} {d.Detail} {d.ProjectedUsedBytes}"));
}
