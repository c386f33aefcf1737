using System.Text.Json.Serialization;

namespace Skiff.Api;

/// <summary>Thresholds and keep rules for image garbage collection on the nodes it selects.</summary>
public sealed class ImageGCPolicy : CustomResource<ImageGCPolicySpec, ImageGCPolicyStatus>
{
    public const string KindName = "ImageGCPolicy";
    public const string Plural = "imagegcpolicies";
    public const string Singular = "imagegcpolicy";

    public ImageGCPolicy()
    {
        Kind = KindName;
    }
}

/// <summary>Image garbage collection settings.</summary>
// Absent thresholds take their defaults (80 and 85), so setting only one of them is checked too.
[CelRule("(has(self.lowThresholdPercent) ? self.lowThresholdPercent : 80) < (has(self.highThresholdPercent) ? self.highThresholdPercent : 85)",
    "lowThresholdPercent must be below highThresholdPercent",
    FieldPath = ".lowThresholdPercent", Reason = "FieldValueInvalid", Twin = CelTwins.LowBelowHigh)]
public sealed class ImageGCPolicySpec
{
    /// <summary>Node names this policy applies to; empty means every node.</summary>
    [JsonPropertyName("nodes")]
    [SchemaMaxItems(256)]
    [ListSet]
    [SchemaItemsMaxLength(253)]
    public List<string>? Nodes { get; set; }

    /// <summary>Disk usage (percent of the filesystem holding Docker's data root) at which GC starts freeing space.</summary>
    [JsonPropertyName("highThresholdPercent")]
    [SchemaRange(1, 100)]
    [SchemaDefault(Defaults.HighThresholdPercent)]
    public int? HighThresholdPercent { get; set; }

    /// <summary>Disk usage GC frees down to.</summary>
    [JsonPropertyName("lowThresholdPercent")]
    [SchemaRange(0, 99)]
    [SchemaDefault(Defaults.LowThresholdPercent)]
    public int? LowThresholdPercent { get; set; }

    /// <summary>Images first seen by Skiff less than this long ago are never removed (Go duration).</summary>
    [JsonPropertyName("minimumAge")]
    [Duration]
    [SchemaDefault(Defaults.MinimumAge)]
    public string? MinimumAge { get; set; }

    /// <summary>Unused images older than this go even without disk pressure (Go duration).</summary>
    [JsonPropertyName("maximumAge")]
    [Duration]
    public string? MaximumAge { get; set; }

    /// <summary>Images kept per repository beyond which unused ones go even without disk pressure.</summary>
    [JsonPropertyName("retainPerRepository")]
    [SchemaRange(0, 1000)]
    [SchemaDefault(Defaults.RetainPerRepository)]
    public int? RetainPerRepository { get; set; }

    /// <summary>Image reference patterns (with * wildcards) that are never removed.</summary>
    [JsonPropertyName("keep")]
    [SchemaMaxItems(64)]
    [SchemaItemsMaxLength(512)]
    public List<string>? Keep { get; set; }

    /// <summary>Also prune the engine's build cache.</summary>
    [JsonPropertyName("pruneBuildCache")]
    [SchemaDefault(Defaults.PruneBuildCache)]
    public bool? PruneBuildCache { get; set; }

    /// <summary>How often GC runs (Go duration).</summary>
    [JsonPropertyName("interval")]
    [Duration]
    [SchemaDefault(Defaults.Interval)]
    public string? Interval { get; set; }

    /// <summary>List what would be removed and why, without removing anything.</summary>
    [JsonPropertyName("dryRun")]
    [SchemaDefault(Defaults.DryRun)]
    public bool? DryRun { get; set; }
}

/// <summary>Per-node GC results.</summary>
public sealed class ImageGCPolicyStatus
{
    /// <summary>One entry per node, each written only by that node's instance.</summary>
    [JsonPropertyName("nodes")]
    [ListMap("node")]
    [SchemaMaxItems(256)]
    public List<NodeGCStatus>? Nodes { get; set; }
}

/// <summary>The last GC run on one node.</summary>
public sealed class NodeGCStatus
{
    /// <summary>The node's name.</summary>
    [JsonPropertyName("node")]
    [SchemaRequired]
    public string Node { get; set; } = "";

    /// <summary>Disk usage after the run, in percent.</summary>
    [JsonPropertyName("diskUsagePercent")]
    public double? DiskUsagePercent { get; set; }

    /// <summary>When the last run finished.</summary>
    [JsonPropertyName("lastRun")]
    public DateTimeOffset? LastRun { get; set; }

    /// <summary>Images removed by the last run.</summary>
    [JsonPropertyName("imagesRemoved")]
    public int? ImagesRemoved { get; set; }

    /// <summary>Bytes reclaimed by the last run.</summary>
    [JsonPropertyName("bytesReclaimed")]
    public long? BytesReclaimed { get; set; }

    /// <summary>When the next run is due.</summary>
    [JsonPropertyName("nextRun")]
    public DateTimeOffset? NextRun { get; set; }

    /// <summary>A summary of the last run.</summary>
    [JsonPropertyName("message")]
    public string? Message { get; set; }
}
