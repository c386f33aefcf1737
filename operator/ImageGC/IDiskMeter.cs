namespace Skiff.ImageGC;

/// <summary>
/// Measures the filesystem holding Docker's data root. Behind an interface so tests can set the
/// usage (pressure, or none) without filling a real disk.
/// </summary>
public interface IDiskMeter
{
    Task<DiskUsage> MeasureAsync(CancellationToken ct);
}

/// <summary>A meter that answers what it is told: tests and benchmarks force pressure (or none) with it.</summary>
public sealed class FixedDiskMeter(double usedPercent, long totalBytes = 100L * 1024 * 1024 * 1024) : IDiskMeter
{
    /// <summary>The usage it reports, in percent; tests change it to raise or clear pressure.</summary>
    public double UsedPercent { get; set; } = usedPercent;

    public Task<DiskUsage> MeasureAsync(CancellationToken ct) =>
        Task.FromResult(new DiskUsage(totalBytes, (long)(totalBytes * UsedPercent / 100)));
}
