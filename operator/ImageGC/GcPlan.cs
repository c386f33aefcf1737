using System.Globalization;
using System.Text;

namespace Skiff.ImageGC;

/// <summary>Why the planner decided what it did about one image; printed by dry runs and logs.</summary>
public enum GcReason
{
    // Deleted
    /// <summary>Untagged and unreferenced: nothing can ask for it by name again. Goes first under pressure.</summary>
    Dangling,
    /// <summary>Under pressure, the least recently used of the remaining images.</summary>
    LeastRecentlyUsed,
    /// <summary>Without pressure, older than the newest <c>retainPerRepository</c> images of each of its repositories.</summary>
    BeyondRetainPerRepository,
    /// <summary>Without pressure, unused for longer than <c>maximumAge</c>.</summary>
    OlderThanMaximumAge,

    // Protected
    /// <summary>A running container uses it.</summary>
    InUseByRunningContainer,
    /// <summary>A stopped container uses it (Docker would refuse anyway; it may be started again).</summary>
    InUseByStoppedContainer,
    /// <summary>The image an AppDeployment runs now.</summary>
    DeploymentCurrent,
    /// <summary>One of the last <c>revisionHistoryLimit</c> images of an AppDeployment: a rollback target.</summary>
    DeploymentHistory,
    /// <summary>First seen by Skiff less than <c>minimumAge</c> ago (or never seen before).</summary>
    YoungerThanMinimumAge,
    /// <summary>Matches a <c>keep</c> pattern.</summary>
    KeepPattern,
    /// <summary>Being pulled or started right now.</summary>
    BeingPulledOrStarted,

    // Kept although removable
    /// <summary>Under pressure, the projected usage is already below the low threshold; these stay in
    /// deletion order as the executor's reserve, for when the real disk freed less than projected.</summary>
    BelowLowThreshold,
    /// <summary>Without pressure, within retention and not too old.</summary>
    WithinRetention,
}

/// <summary>The planner's decision about one image.</summary>
/// <param name="Image">The image.</param>
/// <param name="Reason">Why.</param>
/// <param name="Detail">The reason in words, with the facts behind it (container, deployment, pattern, ages).</param>
/// <param name="ProjectedUsedBytes">For deletions: the estimated disk usage after this deletion and all before it.</param>
public sealed record GcDecision(ImageInfo Image, GcReason Reason, string Detail, long? ProjectedUsedBytes = null);

/// <summary>
/// What one GC pass should do. Every input image is in exactly one of <see cref="Delete"/>,
/// <see cref="Protected"/> and <see cref="Kept"/>. Projections subtract each image's size, which
/// overestimates what is reclaimed when layers are shared, so the executor re-measures the disk
/// after each deletion rather than trusting them.
/// </summary>
public sealed record GcPlan(
    IReadOnlyList<GcDecision> Delete,
    IReadOnlyList<GcDecision> Protected,
    IReadOnlyList<GcDecision> Kept,
    bool UnderPressure,
    long ProjectedUsedBytes,
    bool CanReachLowThreshold,
    GcPolicy Policy,
    DiskUsage Disk,
    DateTimeOffset Now)
{
    /// <summary>The sum of the sizes of the images to delete (an upper bound of what is reclaimed).</summary>
    public long PlannedBytes => Delete.Sum(d => d.Image.Size);

    /// <summary>The projected usage in percent of the disk.</summary>
    public double ProjectedPercent => (Disk with { UsedBytes = ProjectedUsedBytes }).Percent;

    /// <summary>
    /// The dry-run listing: a header with the policy and disk, then every image with its decision
    /// and reason, deletions in plan order, then protected images, then kept ones. Deterministic
    /// for a given input (ages are relative to the plan's clock), so it is fit for golden tests.
    /// </summary>
    public string Explain()
    {
        var sb = new StringBuilder();
        var p = Policy;
        sb.Append(CultureInfo.InvariantCulture,
            $"Image GC plan{(p.DryRun ? " (dry run)" : "")}: policy {p.Name}, high {p.HighThresholdPercent}%, low {p.LowThresholdPercent}%, minimumAge {Durations.Format(p.MinimumAge)}, maximumAge {(p.MaximumAge is { } max ? Durations.Format(max) : "none")}, retainPerRepository {p.RetainPerRepository}, keep [{string.Join(", ", p.Keep)}]\n");
        sb.Append(CultureInfo.InvariantCulture,
            $"Disk: {Disk.Percent:0.0}% used ({FormatBytes(Disk.UsedBytes)} of {FormatBytes(Disk.TotalBytes)}); {(UnderPressure ? "under pressure" : "no pressure")}; ");
        sb.Append(CultureInfo.InvariantCulture,
            $"{Delete.Count} to delete ({FormatBytes(PlannedBytes)}), projected {ProjectedPercent:0.0}%");
        if (UnderPressure)
        {
            sb.Append(CanReachLowThreshold ? "; low threshold reachable" : "; low threshold NOT reachable");
        }

        sb.Append('\n');
        sb.Append("ACTION   IMAGE         SIZE       REFERENCE                                 REASON\n");
        foreach (var d in Delete)
        {
            var projected = d.ProjectedUsedBytes is { } u
                ? string.Create(CultureInfo.InvariantCulture, $" (then {(Disk with { UsedBytes = u }).Percent:0.0}%)")
                : "";
            Line(sb, "delete", d, projected);
        }

        foreach (var d in Protected)
        {
            Line(sb, "protect", d, "");
        }

        foreach (var d in Kept)
        {
            Line(sb, "keep", d, "");
        }

        return sb.ToString();
    }

    private static void Line(StringBuilder sb, string action, GcDecision d, string suffix)
    {
        var id = d.Image.Id.StartsWith("sha256:", StringComparison.Ordinal) ? d.Image.Id[7..] : d.Image.Id;
        var shortId = id.Length > 12 ? id[..12] : id;
        var reference = ImageRefs.Display(d.Image);
        sb.Append(CultureInfo.InvariantCulture,
            $"{action,-8} {shortId,-13} {FormatBytes(d.Image.Size),-10} {reference,-41} {d.Reason}: {d.Detail}{suffix}\n");
    }

    internal static string FormatBytes(long bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
        double value = bytes;
        var unit = 0;
        while (Math.Abs(value) >= 1024 && unit < units.Length - 1)
        {
            value /= 1024;
            unit++;
        }

        return unit == 0
            ? string.Create(CultureInfo.InvariantCulture, $"{bytes}B")
            : string.Create(CultureInfo.InvariantCulture, $"{value:0.0}{units[unit]}");
    }
}
