namespace Skiff.ImageGC;

/// <summary>
/// One image on the node's Docker engine, as the planner sees it. <see cref="FirstSeen"/> and
/// <see cref="LastUsed"/> come from Skiff's own state folder, because the engine only knows when
/// an image was built (<see cref="Created"/>), not when it arrived or was last run.
/// </summary>
/// <param name="Id">The full image id, <c>sha256:&lt;64 hex&gt;</c>.</param>
/// <param name="RepoTags">Tags such as <c>postgres:16</c>; empty (or only <c>&lt;none&gt;:&lt;none&gt;</c>) when untagged.</param>
/// <param name="RepoDigests">Digest references such as <c>postgres@sha256:…</c>.</param>
/// <param name="Size">Bytes the image accounts for; layers shared with other images are counted in each.</param>
/// <param name="Created">When the image was built.</param>
/// <param name="FirstSeen">When Skiff first saw the image on this node; null = never seen before, treated as now.</param>
/// <param name="LastUsed">When Skiff last started a container from it; null = never.</param>
public sealed record ImageInfo(
    string Id,
    IReadOnlyList<string> RepoTags,
    IReadOnlyList<string> RepoDigests,
    long Size,
    DateTimeOffset Created,
    DateTimeOffset? FirstSeen = null,
    DateTimeOffset? LastUsed = null);

/// <summary>
/// A container on the node, running or not. Any container pins its image: Docker refuses to
/// remove the image of a stopped container anyway, and a stopped database container is still
/// someone's data path.
/// </summary>
/// <param name="Id">The container id.</param>
/// <param name="ImageId">The full id (<c>sha256:…</c>) of the image it was created from.</param>
/// <param name="Running">Whether it runs now; only changes the reason reported.</param>
public sealed record ContainerInfo(string Id, string ImageId, bool Running);

/// <summary>
/// The images one AppDeployment may need again: the current one and its rollback targets, by image
/// id rather than tag because a tag can be moved to another image by a later pull or build.
/// </summary>
/// <param name="Namespace">The resource's namespace.</param>
/// <param name="Name">The resource's name.</param>
/// <param name="CurrentImageId">The image id that runs now (after a rollback: the last good one); null when none yet.</param>
/// <param name="HistoryImageIds">Image ids of earlier revisions worth rolling back to, newest first.</param>
/// <param name="RevisionHistoryLimit">How many of <paramref name="HistoryImageIds"/> (besides the current one) to keep.</param>
public sealed record DeploymentImages(
    string Namespace,
    string Name,
    string? CurrentImageId,
    IReadOnlyList<string> HistoryImageIds,
    int RevisionHistoryLimit);

/// <summary>
/// Disk usage of the filesystem holding Docker's data root. Thresholds are percentages of it,
/// as in kubelet, because that is the filesystem PostgreSQL's volumes fill too.
/// </summary>
public sealed record DiskUsage(long TotalBytes, long UsedBytes)
{
    /// <summary>Used space in percent of the total; 0 when the total is unknown (0).</summary>
    public double Percent => TotalBytes <= 0 ? 0 : UsedBytes * 100.0 / TotalBytes;

    /// <summary>Whether <paramref name="usedBytes"/> is at or above <paramref name="percent"/> of the total, computed exactly.</summary>
    internal bool AtOrAbove(long usedBytes, int percent) =>
        TotalBytes > 0 && (Int128)usedBytes * 100 >= (Int128)percent * TotalBytes;
}

/// <summary>
/// An <see cref="Skiff.Api.ImageGCPolicySpec"/> with defaults applied and durations parsed, so the
/// planner never deals with strings or missing values. The property defaults are the built-in
/// policy that applies when no ImageGCPolicy selects the node.
/// </summary>
public sealed record GcPolicy
{
    /// <summary>The name reported for the built-in policy.</summary>
    public const string BuiltInName = "(built-in)";

    /// <summary>
    /// The policy used when no ImageGCPolicy selects a node: kubelet's thresholds, a one-hour grace
    /// period and Kamal-style retention. It has no keep patterns: a database image is protected by
    /// its container (running or stopped) and by being pulled or started, so a pattern would only
    /// keep images of stacks that are gone, which is exactly what fills disks.
    /// </summary>
    public static GcPolicy BuiltIn { get; } = new();

    /// <summary>The ImageGCPolicy this came from, or <see cref="BuiltInName"/>.</summary>
    public string Name { get; init; } = BuiltInName;

    /// <summary>Disk usage percent at or above which GC frees space (pressure).</summary>
    public int HighThresholdPercent { get; init; } = Skiff.Api.Defaults.HighThresholdPercent;

    /// <summary>Disk usage percent GC frees down to (strictly below) under pressure.</summary>
    public int LowThresholdPercent { get; init; } = Skiff.Api.Defaults.LowThresholdPercent;

    /// <summary>Images first seen less than this long ago are never removed.</summary>
    public TimeSpan MinimumAge { get; init; } = Duration(Skiff.Api.Defaults.MinimumAge);

    /// <summary>Unused images whose last use is longer ago than this go even without pressure; null = never.</summary>
    public TimeSpan? MaximumAge { get; init; }

    /// <summary>Images kept per repository (protected ones count) before older ones go without pressure.</summary>
    public int RetainPerRepository { get; init; } = Skiff.Api.Defaults.RetainPerRepository;

    /// <summary>Reference patterns (<c>*</c> wildcards) whose images are never removed; see <see cref="ImageGcPlanner.Matches"/>.</summary>
    public IReadOnlyList<string> Keep { get; init; } = [];

    /// <summary>Also prune the engine's build cache after removing images.</summary>
    public bool PruneBuildCache { get; init; } = Skiff.Api.Defaults.PruneBuildCache;

    /// <summary>How often the GC loop runs.</summary>
    public TimeSpan Interval { get; init; } = Duration(Skiff.Api.Defaults.Interval);

    /// <summary>Plan and report only; the executor removes nothing.</summary>
    public bool DryRun { get; init; } = Skiff.Api.Defaults.DryRun;

    private static TimeSpan Duration(string text) =>
        Skiff.Validation.GoDuration.TryParse(text, out var value) ? value : throw new InvalidOperationException($"the default duration {text} does not parse");
}

/// <summary>Everything the planner decides from: a snapshot, so planning is a pure function.</summary>
/// <param name="Images">Every image on the node; ids must be unique.</param>
/// <param name="Containers">Every container on the node, running or not (Skiff's and everyone else's).</param>
/// <param name="Deployments">Every AppDeployment on the node.</param>
/// <param name="InUseNow">Image ids or references being pulled or started right now.</param>
/// <param name="Policy">The resolved policy.</param>
/// <param name="Disk">The measured disk usage.</param>
/// <param name="Now">The clock reading all ages are measured from.</param>
public sealed record GcInput(
    IReadOnlyList<ImageInfo> Images,
    IReadOnlyList<ContainerInfo> Containers,
    IReadOnlyList<DeploymentImages> Deployments,
    IReadOnlySet<string> InUseNow,
    GcPolicy Policy,
    DiskUsage Disk,
    DateTimeOffset Now);

/// <summary>Turning an AppDeployment's status into the images GC must keep for it.</summary>
public static class DeploymentImagesFrom
{
    /// <summary>
    /// The current image id (<c>status.imageId</c>, else the newest succeeded revision's) and the
    /// history's image ids newest first, with the spec's <c>revisionHistoryLimit</c> (default 3).
    /// </summary>
    public static DeploymentImages Status(string ns, string name, Skiff.Api.AppDeploymentSpec? spec, Skiff.Api.AppDeploymentStatus? status)
    {
        var history = (status?.History ?? []).OrderByDescending(h => h.Revision).ToList();
        var current = status?.ImageId
            ?? history.FirstOrDefault(h => h.Outcome == Skiff.Api.Outcomes.Succeeded && !string.IsNullOrEmpty(h.ImageId))?.ImageId;
        var ids = history.Select(h => h.ImageId).OfType<string>().Where(id => id.Length > 0).ToList();
        return new DeploymentImages(ns, name, current, ids, spec?.Rollout?.RevisionHistoryLimit ?? Skiff.Api.Defaults.RevisionHistoryLimit);
    }
}
