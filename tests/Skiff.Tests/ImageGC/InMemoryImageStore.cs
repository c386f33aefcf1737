using Skiff.ImageGC;

namespace Skiff.Tests.ImageGC;

/// <summary>
/// An engine in memory: removing an image frees <c>Size × ReclaimFraction</c> bytes (below 1 to
/// mimic shared layers), ids in <see cref="InUse"/> answer 409, unknown ids 404, ids in
/// <see cref="Failing"/> throw. Every call is recorded so tests can check the order.
/// </summary>
internal sealed class InMemoryImageStore(IEnumerable<ImageInfo> images, long totalBytes, long usedBytes) : IGcEngine, IDiskMeter
{
    private readonly Dictionary<string, ImageInfo> images = images.ToDictionary(i => i.Id);

    public long UsedBytes { get; set; } = usedBytes;

    public double ReclaimFraction { get; set; } = 1.0;

    public HashSet<string> InUse { get; } = [];

    public HashSet<string> Failing { get; } = [];

    public List<string> Calls { get; } = [];

    /// <summary>Runs before each removal; tests use it to cancel midway.</summary>
    public Action<string>? OnRemove { get; set; }

    public Task<IReadOnlyList<ImageInfo>> ListImagesAsync(CancellationToken ct) =>
        Task.FromResult<IReadOnlyList<ImageInfo>>([.. images.Values.OrderBy(i => i.Id, StringComparer.Ordinal)]);

    public Task<RemoveResult> RemoveImageAsync(string id, CancellationToken ct)
    {
        Calls.Add("remove " + id);
        OnRemove?.Invoke(id);
        if (Failing.Contains(id))
        {
            throw new InvalidOperationException($"engine error removing {id}");
        }

        if (InUse.Contains(id))
        {
            return Task.FromResult(new RemoveResult(RemoveOutcome.InUse, "image is being used by a container"));
        }

        if (!images.Remove(id, out var image))
        {
            return Task.FromResult(new RemoveResult(RemoveOutcome.NotFound, "no such image"));
        }

        UsedBytes = Math.Max(0, UsedBytes - (long)(image.Size * ReclaimFraction));
        return Task.FromResult(RemoveResult.Removed);
    }

    public Task<DiskUsage> MeasureAsync(CancellationToken ct)
    {
        Calls.Add("measure");
        return Task.FromResult(new DiskUsage(totalBytes, UsedBytes));
    }

    public bool Contains(string id) => images.ContainsKey(id);

    public List<ContainerInfo> Containers { get; } = [];

    public long BuildCache { get; set; }

    public Task<IReadOnlyList<ContainerInfo>> ListContainersAsync(CancellationToken ct) => Task.FromResult<IReadOnlyList<ContainerInfo>>([.. Containers]);

    public Task<long> PruneBuildCacheAsync(CancellationToken ct)
    {
        var freed = BuildCache;
        UsedBytes -= freed;
        BuildCache = 0;
        return Task.FromResult(freed);
    }
}
