using Skiff.Docker;

namespace Skiff.ImageGC;

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
    public async Task<IReadOnlyList<ImageInfo>> ListImagesAsync(CancellationToken ct) =>
        [.. (await engine.ListImagesAsync(ct)).Select(i => new ImageInfo(i.Id, i.RepoTags, i.RepoDigests, i.Size, i.Created))];

    public async Task<IReadOnlyList<ContainerInfo>> ListContainersAsync(CancellationToken ct) =>
        [.. (await engine.ListAllContainerImagesAsync(ct)).Select(c => new ContainerInfo(c.Id, c.ImageId, c.Running))];

    public Task<DiskUsage> MeasureAsync(CancellationToken ct) => meter.MeasureAsync(ct);

    public Task<long> PruneBuildCacheAsync(CancellationToken ct) => engine.PruneBuildCacheAsync(ct);

    public async Task<RemoveResult> RemoveImageAsync(string id, CancellationToken ct)
    {
        var image = await engine.InspectImageAsync(id, ct);
        if (image is null)
        {
            return new RemoveResult(RemoveOutcome.NotFound, "no such image");
        }

        var references = image.RepoTags.Concat(image.RepoDigests).Where(r => !ImageRefs.IsPlaceholder(r)).ToList();
        var repositories = references.Select(ImageRefs.Repository).Distinct(StringComparer.Ordinal).ToList();
        if (repositories.Count > 1)
        {
            var user = (await engine.ListAllContainerImagesAsync(ct)).FirstOrDefault(c => c.ImageId == image.Id);
            if (user.Id is not null)
            {
                return new RemoveResult(RemoveOutcome.InUse, $"image is being used by container {user.Id[..Math.Min(12, user.Id.Length)]}");
            }

            // Leave the last repository's references: removing the id then takes them in one call.
            foreach (var reference in references.Where(r => ImageRefs.Repository(r) != repositories[^1]))
            {
                var (outcome, message) = await engine.RemoveImageAsync(reference, ct);
                if (outcome == ImageRemoval.Conflict)
                {
                    return new RemoveResult(RemoveOutcome.InUse, message);
                }
            }
        }

        var (result, text) = await engine.RemoveImageAsync(image.Id, ct);
        return result switch
        {
            ImageRemoval.Removed => RemoveResult.Removed,
            // Untagging the last reference already removed it.
            ImageRemoval.NotFound when repositories.Count > 1 => RemoveResult.Removed,
            ImageRemoval.NotFound => new RemoveResult(RemoveOutcome.NotFound, text),
            _ => new RemoveResult(RemoveOutcome.InUse, text),
        };
    }
}
