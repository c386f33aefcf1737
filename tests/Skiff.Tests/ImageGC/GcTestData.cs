using Skiff.ImageGC;

namespace Skiff.Tests.ImageGC;

/// <summary>Small builders so each table test reads as the situation it describes.</summary>
internal static class GcTestData
{
    public const long MiB = 1024 * 1024;
    public static readonly DateTimeOffset Now = new(2025, 6, 1, 12, 0, 0, TimeSpan.Zero);

    /// <summary>A full image id whose short (12-character) form still tells images apart.</summary>
    public static string Id(int n) => $"sha256:{n:x8}{new string('0', 56)}";

    /// <summary>An image first seen long ago (past any minimumAge), built earlier still.</summary>
    public static ImageInfo Image(int n, string? tag = null, long sizeMiB = 100, double lastUsedHoursAgo = double.NaN,
        double firstSeenHoursAgo = 1000, string[]? digests = null, string[]? tags = null) =>
        new(Id(n),
            tags ?? (tag is null ? [] : [tag]),
            digests ?? [],
            sizeMiB * MiB,
            Now.AddHours(-firstSeenHoursAgo - 24),
            double.IsNaN(firstSeenHoursAgo) ? null : Now.AddHours(-firstSeenHoursAgo),
            double.IsNaN(lastUsedHoursAgo) ? null : Now.AddHours(-lastUsedHoursAgo));

    public static GcInput Input(
        IReadOnlyList<ImageInfo> images,
        double usedPercent,
        GcPolicy? policy = null,
        IReadOnlyList<ContainerInfo>? containers = null,
        IReadOnlyList<DeploymentImages>? deployments = null,
        IReadOnlySet<string>? inUseNow = null,
        long totalBytes = 1000 * MiB) =>
        new(images,
            containers ?? [],
            deployments ?? [],
            inUseNow ?? new HashSet<string>(),
            policy ?? GcPolicy.BuiltIn,
            new DiskUsage(totalBytes, (long)(totalBytes * usedPercent / 100)),
            Now);

    public static IEnumerable<string> Ids(IEnumerable<GcDecision> decisions) => decisions.Select(d => d.Image.Id);

    public static GcDecision Decision(GcPlan plan, int n) =>
        plan.Delete.Concat(plan.Protected).Concat(plan.Kept).Single(d => d.Image.Id == Id(n));
}
