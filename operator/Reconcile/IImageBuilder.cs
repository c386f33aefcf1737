namespace Skiff.Reconcile;

/// <summary>One image build: the tag it gets, the Dockerfile in the context, the ARGs and the labels it carries.</summary>
/// <param name="Tag">The reference the image is tagged with (<c>skiff.local/NAMESPACE/NAME:COMMIT12</c>).</param>
/// <param name="Dockerfile">The Dockerfile's path inside the context.</param>
/// <param name="Args">Build arguments (<c>--build-arg</c>).</param>
/// <param name="Labels">Labels set on the image (what it was built from).</param>
public sealed record ImageBuildRequest(
    string Tag,
    string Dockerfile,
    IReadOnlyDictionary<string, string> Args,
    IReadOnlyDictionary<string, string> Labels);

/// <summary>A build the engine refused or that failed at a step; <see cref="Log"/> is its output up to the failure.</summary>
public sealed class ImageBuildException(string message, string log) : Exception(message)
{
    public string Log { get; } = log;
}

/// <summary>
/// The engine's image build, for the Git source's <c>spec.app.build</c>; <c>Docker/</c> implements it with the engine's
/// build API (the classic builder). Like <see cref="IContainerEngine"/>, transport failures throw
/// <see cref="EngineUnreachableException"/>, a failed build <see cref="ImageBuildException"/>.
/// </summary>
public interface IImageBuilder
{
    /// <summary>The references (<c>repo:tag</c>) of the images under <paramref name="repository"/> carrying the label <paramref name="key"/>=<paramref name="value"/>, newest first.</summary>
    Task<IReadOnlyList<string>> FindTaggedAsync(string repository, string key, string value, CancellationToken ct);

    /// <summary>
    /// Builds the image from <paramref name="context"/> (a tar of the build context) and tags it; each line of the
    /// build's output goes to <paramref name="progress"/> as it comes.
    /// </summary>
    Task BuildAsync(ImageBuildRequest request, Stream context, Action<string> progress, CancellationToken ct);
}
