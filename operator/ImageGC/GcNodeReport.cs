using System.Globalization;
using System.Text.Json.Serialization;
using Skiff.Observability;

namespace Skiff.ImageGC;

/// <summary>An image a run removed (or would remove), for the report.</summary>
public sealed record GcReportedImage(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("reference")] string Reference,
    [property: JsonPropertyName("reason")] string Reason,
    [property: JsonPropertyName("detail")] string Detail);

/// <summary>What the last GC run on a node did: the folder source's <c>gc/&lt;node&gt;.json</c>, an ImageGCPolicy's status entry.</summary>
public sealed record GcNodeReport
{
    [JsonPropertyName("node")] public required string Node { get; init; }
    [JsonPropertyName("policy")] public required string Policy { get; init; }
    [JsonPropertyName("trigger")] public required string Trigger { get; init; }
    /// <summary>success, incomplete, dry_run or error (the metric's label).</summary>
    [JsonPropertyName("result")] public required string Result { get; init; }
    [JsonPropertyName("lastRun")] public required DateTimeOffset LastRun { get; init; }
    [JsonPropertyName("nextRun")] public DateTimeOffset? NextRun { get; init; }
    [JsonPropertyName("diskUsagePercent")] public double DiskUsagePercent { get; init; }
    [JsonPropertyName("imagesRemoved")] public int ImagesRemoved { get; init; }
    [JsonPropertyName("bytesReclaimed")] public long BytesReclaimed { get; init; }
    [JsonPropertyName("protectedImages")] public int ProtectedImages { get; init; }
    [JsonPropertyName("diskPressure")] public bool DiskPressure { get; init; }
    [JsonPropertyName("message")] public required string Message { get; init; }
    [JsonPropertyName("removed")] public IReadOnlyList<GcReportedImage> Removed { get; init; } = [];

    /// <summary>
    /// Why another policy was not chosen (two policies tie for this node, a field was not understood), when that
    /// changed since the last pass: reported once as a Warning, not at every pass.
    /// </summary>
    [JsonPropertyName("policyWarning")] public string? PolicyWarning { get; init; }

    /// <summary>success, incomplete or dry_run: how a finished pass ended (the metric's label).</summary>
    public static ImageGcResult Outcome(GcRunResult run) =>
        run.DryRun ? ImageGcResult.DryRun : run.AboveHighThreshold ? ImageGcResult.Incomplete : ImageGcResult.Success;

    /// <summary>The one-line summary of a finished pass: what it removed (or would), what it reclaimed, the disk before and after.</summary>
    public static string Summary(GcPassResult result)
    {
        var (plan, run) = (result.Plan, result.Run);
        var listed = Listed(run);
        var message = string.Create(CultureInfo.InvariantCulture,
            $"{(run.DryRun ? "dry run: would remove" : "removed")} {listed.Count} images, reclaimed {GcPlan.FormatBytes(run.BytesReclaimed)}; disk {run.Before.Percent:0.0}% -> {run.After.Percent:0.0}%; {plan.Protected.Count} protected");
        if (run.Failed.Count + run.Skipped.Count > 0)
        {
            message += string.Create(CultureInfo.InvariantCulture, $", {run.Skipped.Count} skipped, {run.Failed.Count} failed");
        }

        return message;
    }

    /// <summary>
    /// The report of a finished pass, for the loop of <c>skiff run</c> and for <c>skiff gc</c> alike: what it removed (or, in
    /// a dry run, would remove), the disk after it, and the caller's <paramref name="message"/> (<see cref="Summary"/> and more).
    /// </summary>
    /// <param name="result">The pass.</param>
    /// <param name="node">The node it ran on.</param>
    /// <param name="trigger">What started it (startup, interval, pressure, a rollout, skiff gc, ...).</param>
    /// <param name="lastRun">When it finished.</param>
    /// <param name="diskPressure">Whether the node is under disk pressure after it.</param>
    /// <param name="message">What to tell.</param>
    public static GcNodeReport Of(GcPassResult result, string node, string trigger, DateTimeOffset lastRun, bool diskPressure, string message) => new()
    {
        Node = node,
        Policy = result.Plan.Policy.Name,
        Trigger = trigger,
        Result = Outcome(result.Run) switch { ImageGcResult.DryRun => "dry_run", ImageGcResult.Incomplete => "incomplete", _ => "success" },
        LastRun = lastRun,
        DiskUsagePercent = result.Run.After.Percent,
        ImagesRemoved = result.Run.Removed.Count,
        BytesReclaimed = result.Run.BytesReclaimed,
        ProtectedImages = result.Plan.Protected.Count,
        DiskPressure = diskPressure,
        Message = message,
        Removed = [.. Listed(result.Run).Select(d => new GcReportedImage(d.Image.Id, ImageRefs.Display(d.Image), d.Reason.ToString(), d.Detail))],
    };

    private static IReadOnlyList<GcDecision> Listed(GcRunResult run) => run.DryRun ? run.WouldRemove : run.Removed;

    public Skiff.Api.NodeGCStatus ToNodeStatus() => new()
    {
        Node = Node,
        DiskUsagePercent = Math.Round(DiskUsagePercent, 1),
        LastRun = LastRun,
        ImagesRemoved = ImagesRemoved,
        BytesReclaimed = BytesReclaimed,
        NextRun = NextRun,
        Message = Message,
    };
}

/// <summary>A node's GC report as the folder source writes it (<c>gc/&lt;node&gt;.json</c>), generated at compile time.</summary>
[JsonSourceGenerationOptions(WriteIndented = true)]
[JsonSerializable(typeof(GcNodeReport))]
internal sealed partial class GcJsonContext : JsonSerializerContext
{
}
