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

    /// <summary>How long each removal takes (the executor removes several at once without pressure).</summary>
    public TimeSpan RemoveDelay { get; set; }

    /// <summary>The most removals that were in flight at the same time.</summary>
    public int MaxInFlight { get; private set; }

    private readonly Lock gate = new();
    private int inFlight;

    public async Task<RemoveResult> RemoveImageAsync(string id, CancellationToken ct)
    {
        lock (gate)
        {
            Calls.Add("remove " + id);
            MaxInFlight = Math.Max(MaxInFlight, ++inFlight);
        }

        try
        {
            OnRemove?.Invoke(id);
            if (RemoveDelay > TimeSpan.Zero)
            {
                await Task.Delay(RemoveDelay, ct);
            }

            lock (gate)
            {
                if (Failing.Contains(id))
                {
                    throw new InvalidOperationException($"engine error removing {id}");
                }

                if (InUse.Contains(id))
                {
                    return new RemoveResult(RemoveOutcome.InUse, "image is being used by a container");
                }

                if (!images.Remove(id, out var image))
                {
                    return new RemoveResult(RemoveOutcome.NotFound, "no such image");
                }

                UsedBytes = Math.Max(0, UsedBytes - (long)(image.Size * ReclaimFraction));
                return RemoveResult.Removed;
            }
        }
        finally
        {
            lock (gate)
            {
                inFlight--;
            }
        }
    }

    public Task<DiskUsage> MeasureAsync(CancellationToken ct)
    {
        lock (gate)
        {
            Calls.Add("measure");
            return Task.FromResult(new DiskUsage(totalBytes, UsedBytes));
        }
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
