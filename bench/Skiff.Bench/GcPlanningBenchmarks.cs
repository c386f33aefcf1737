using BenchmarkDotNet.Attributes;
using Skiff.ImageGC;

namespace Skiff.Bench;

/// <summary>
/// Image GC planning for a node with 10,000 images, 2,000 containers and 50 deployments, with and
/// without disk pressure, against the naive implementation as the baseline (see docs/PERFORMANCE.md).
/// </summary>
[ShortRunJob]
[MemoryDiagnoser]
public class GcPlanningBenchmarks
{
    private GcInput input = null!;

    [Params(true, false)]
    public bool Pressure { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        input = GcScenario.Create(images: 10_000, containers: 2_000, deployments: 50, Pressure);
        var fast = ImageGcPlanner.Plan(input).Delete.Select(d => d.Image.Id).ToList();
        var naive = NaiveGcPlanner.PlanDeletions(input).Select(i => i.Id).ToList();
        if (!fast.SequenceEqual(naive))
        {
            throw new InvalidOperationException($"The planner and the naive baseline disagree: {fast.Count} vs {naive.Count} deletions.");
        }

        Console.WriteLine($"// pressure={Pressure}: {fast.Count} deletions planned");
    }

    [Benchmark(Baseline = true)]
    public int Naive() => NaiveGcPlanner.PlanDeletions(input).Count;

    [Benchmark]
    public int Planner() => ImageGcPlanner.Plan(input).Delete.Count;
}
