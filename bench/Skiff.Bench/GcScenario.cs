using Skiff.ImageGC;

namespace Skiff.Bench;

/// <summary>
/// A busy node for the GC benchmarks, generated from a fixed seed: 10,000 images in 500
/// repositories (a tenth of them dangling), 2,000 containers, 50 deployments with ten revisions
/// of history each, and the DESIGN example's keep patterns.
/// </summary>
public static class GcScenario
{
    public static readonly DateTimeOffset Now = new(2025, 6, 1, 12, 0, 0, TimeSpan.Zero);

    public static GcInput Create(int images, int containers, int deployments, bool pressure)
    {
        var random = new Random(42);
        var list = new List<ImageInfo>(images);
        long totalSize = 0;
        for (var i = 0; i < images; i++)
        {
            var repo = random.Next(500) switch
            {
                0 => "postgres",
                1 => "redis",
                var r => $"registry.example.com/team{r % 17}/app{r}",
            };
            var dangling = random.Next(10) == 0;
            var size = (long)random.Next(20, 600) * 1024 * 1024;
            totalSize += size;
            var firstSeen = Now.AddMinutes(-random.Next(0, 90 * 24 * 60));
            DateTimeOffset? lastUsed = random.Next(3) == 0 ? null : firstSeen.AddMinutes(random.Next(0, (int)(Now - firstSeen).TotalMinutes + 1));
            list.Add(new ImageInfo(
                $"sha256:{random.NextInt64():x16}{i:x48}",
                dangling ? [] : [$"{repo}:{i}"],
                dangling || random.Next(4) != 0 ? [] : [$"{repo}@sha256:{i:x64}"],
                size,
                firstSeen.AddDays(-random.Next(0, 30)),
                random.Next(50) == 0 ? null : firstSeen,
                lastUsed));
        }

        var containerList = Enumerable.Range(0, containers)
            .Select(c => new ContainerInfo($"{c:x12}", list[random.Next(images)].Id, random.Next(3) != 0))
            .ToList();
        var deploymentList = Enumerable.Range(0, deployments)
            .Select(d => new DeploymentImages("prod", $"app{d}", list[random.Next(images)].Id,
                [.. Enumerable.Range(0, 10).Select(_ => list[random.Next(images)].Id)], 3))
            .ToList();
        var policy = GcPolicy.BuiltIn with { Name = "bench", Keep = ["postgres:*", "redis:*"], MaximumAge = TimeSpan.FromHours(720) };

        // Pressure: 90 % used with low 80 %, so about a ninth of the images' bytes must go.
        var total = totalSize * 10 / 9;
        var used = pressure ? total * 9 / 10 : total / 2;
        return new GcInput(list, containerList, deploymentList, new HashSet<string> { list[0].Id, "redis:7" }, policy, new DiskUsage(total, used), Now);
    }
}
