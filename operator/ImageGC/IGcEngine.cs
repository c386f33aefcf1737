namespace Skiff.ImageGC;

/// <summary>
/// The engine as a whole GC pass sees it: the images (<see cref="IImageStore"/>), every container
/// that pins one, and the build cache.
/// </summary>
public interface IGcEngine : IImageStore
{
    /// <summary>Every container, running or not, whoever created it.</summary>
    Task<IReadOnlyList<ContainerInfo>> ListContainersAsync(CancellationToken ct);

    /// <summary>Prunes the build cache; returns the bytes the engine reclaimed.</summary>
    Task<long> PruneBuildCacheAsync(CancellationToken ct);
}
