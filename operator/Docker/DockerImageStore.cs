using Skiff.ImageGC;
using Skiff.Validation;

namespace Skiff.Docker;

/// <summary>
/// <see cref="IGcEngine"/> on the node's Docker engine. Removes WITHOUT force, so the engine's
/// own 409 protects an image that a container started using after the plan was made.
/// </summary>
/// <remarks>
/// <b>Several repositories.</b> <c>DELETE /images/&lt;id&gt;</c> refuses (409, "must be forced") an
/// image referenced in more than one repository. Such an image is checked for containers first
/// (untagging is allowed even while one uses it, and would leave a running app's image nameless),
/// then untagged reference by reference, then removed by id.
/// </remarks>
public sealed class DockerImageStore(DockerEngine engine, IDiskMeter meter) : IGcEngine
{
    /// <summary>Each image's references as last listed: most removals then need no inspect first.</summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, IReadOnlyList<string>> listed = new(StringComparer.Ordinal);

    public async Task<IReadOnlyList<ImageInfo>> ListImagesAsync(CancellationToken ct)
    {
        var images = await engine.ListImagesAsync(ct);
        listed.Clear();
        foreach (var i in images)
        {
            listed[i.Id] = [.. i.RepoTags.Concat(i.RepoDigests)];
        }

        return [.. images.Select(i => new ImageInfo(i.Id, i.RepoTags, i.RepoDigests, i.Size, i.Created))];
    }

    public async Task<IReadOnlyList<ContainerInfo>> ListContainersAsync(CancellationToken ct) =>
        [.. (await engine.ListAllContainerImagesAsync(ct)).Select(c => new ContainerInfo(c.Id, c.ImageId, c.Running))];

    public Task<DiskUsage> MeasureAsync(CancellationToken ct) => meter.MeasureAsync(ct);

    public Task<long> PruneBuildCacheAsync(CancellationToken ct) => engine.PruneBuildCacheAsync(ct);

    public async Task<RemoveResult> RemoveImageAsync(string id, CancellationToken ct)
    {
        // The common case, one repository (or none): one DELETE by id, as `docker rmi` does.
        if (listed.TryGetValue(id, out var references) && Repositories(references).Count <= 1)
        {
            var (outcome, message) = await engine.RemoveImageAsync(id, ct);
            var multiple = outcome == ImageRemoval.Conflict && message?.Contains("multiple repositories", StringComparison.Ordinal) == true;
            if (!multiple)
            {
                return ToResult(outcome, message, untagged: false);
            }

            // Tagged elsewhere since the listing: take the careful path below.
        }

        var image = await engine.InspectImageAsync(id, ct);
        if (image is null)
        {
            return new RemoveResult(RemoveOutcome.NotFound, "no such image");
        }

        var all = image.RepoTags.Concat(image.RepoDigests).Where(r => !ImageReference.IsPlaceholder(r)).ToList();
        var repositories = Repositories(all);
        if (repositories.Count > 1)
        {
            var user = (await engine.ListAllContainerImagesAsync(ct)).FirstOrDefault(c => c.ImageId == image.Id);
            if (user.Id is not null)
            {
                return new RemoveResult(RemoveOutcome.InUse, $"image is being used by container {user.Id[..Math.Min(12, user.Id.Length)]}");
            }

            // Leave the last repository's references: removing the id then takes them in one call.
            foreach (var reference in all.Where(r => ImageReference.Repository(r) != repositories[^1]))
            {
                var (outcome, message) = await engine.RemoveImageAsync(reference, ct);
                if (outcome == ImageRemoval.Conflict)
                {
                    return new RemoveResult(RemoveOutcome.InUse, message);
                }
            }
        }

        var (result, text) = await engine.RemoveImageAsync(image.Id, ct);
        return ToResult(result, text, untagged: repositories.Count > 1);
    }

    private static List<string> Repositories(IEnumerable<string> references) =>
        [.. references.Where(r => !ImageReference.IsPlaceholder(r)).Select(ImageReference.Repository).Distinct(StringComparer.Ordinal)];

    private static RemoveResult ToResult(ImageRemoval outcome, string? message, bool untagged) => outcome switch
    {
        ImageRemoval.Removed => RemoveResult.Removed,
        // Untagging the last reference already removed it.
        ImageRemoval.NotFound when untagged => RemoveResult.Removed,
        ImageRemoval.NotFound => new RemoveResult(RemoveOutcome.NotFound, message),
        _ => new RemoveResult(RemoveOutcome.InUse, message),
    };
}
