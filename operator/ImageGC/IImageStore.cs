namespace Skiff.ImageGC;

/// <summary>
/// The few engine operations image GC needs, behind an interface so the executor can be tested
/// against an in-memory store and never against a shared Docker engine.
/// </summary>
/// <remarks>
/// <b>Caveats for implementations.</b> Never remove with <c>force</c>: the engine's own 409 for an
/// image that a container uses is the last line of defence when a container was created after the
/// plan was made. An image tagged in several repositories cannot be removed by id without force;
/// untag each tag, then remove the id.
/// </remarks>
public interface IImageStore
{
    /// <summary>Every image on the engine, with <see cref="ImageInfo.FirstSeen"/> and <see cref="ImageInfo.LastUsed"/> unset.</summary>
    Task<IReadOnlyList<ImageInfo>> ListImagesAsync(CancellationToken ct);

    /// <summary>
    /// Removes one image by id. A 404 (already gone) and a 409 (in use, or otherwise refused) are
    /// outcomes, not errors: GC skips the image and goes on. Anything else throws.
    /// </summary>
    Task<RemoveResult> RemoveImageAsync(string id, CancellationToken ct);

    /// <summary>Measures the filesystem holding the engine's data root.</summary>
    Task<DiskUsage> MeasureAsync(CancellationToken ct);
}

/// <summary>What became of one removal.</summary>
public enum RemoveOutcome
{
    /// <summary>The image is gone.</summary>
    Removed,
    /// <summary>The engine did not know the image (404): someone else removed it first.</summary>
    NotFound,
    /// <summary>The engine refused (409), typically because a container uses the image.</summary>
    InUse,
}

/// <summary>The outcome of one removal, with the engine's message when it refused.</summary>
public sealed record RemoveResult(RemoveOutcome Outcome, string? Message = null)
{
    public static RemoveResult Removed { get; } = new(RemoveOutcome.Removed);
}
