using Docker.DotNet;
using Docker.DotNet.Models;
using Skiff.IntegrationTests.Infrastructure;

namespace Skiff.IntegrationTests.ImageGC;

/// <summary>
/// Images for GC tests on the shared engine, all under <c>skiffgc-&lt;runid&gt;/</c>: every GC pass in
/// these tests is scoped to that prefix, because the engine also holds the skiff-test/* images other
/// tests need. Removes whatever is left under the prefix at the end.
/// </summary>
public sealed class GcImages(DockerFixture docker) : IAsyncDisposable
{
    private readonly HashSet<string> committed = [];

    public string Prefix { get; } = $"skiffgc-{Guid.NewGuid().ToString("N")[..8]}/";

    public DockerClient Client => docker.Client;

    /// <summary>Only images of this test: the scope of every pass.</summary>
    public bool Mine(Skiff.ImageGC.ImageInfo image) => image.RepoTags.Any(t => t.StartsWith(Prefix, StringComparison.Ordinal));

    /// <summary>
    /// A new image with its own id: a committed, never-started container of <paramref name="from"/>
    /// with a distinct label and the image's own command (shares every layer, so 30 of them cost nothing). Returns the image id.
    /// </summary>
    public async Task<string> CommitAsync(string from, string repositoryAndTag)
    {
        var (repo, tag) = Skiff.Validation.ImageReference.SplitForPull(Prefix + repositoryAndTag);
        var created = await docker.Client.Containers.CreateContainerAsync(new CreateContainerParameters
        {
            Image = from,
            Labels = docker.Labels,
        });
        try
        {
            var commit = await docker.Client.Images.CommitContainerChangesAsync(new CommitContainerChangesParameters
            {
                ContainerID = created.ID,
                RepositoryName = repo,
                Tag = tag,
                Changes = [$"LABEL dev.skiff.test.gc={repo}:{tag}"],
            });
            lock (committed)
            {
                committed.Add(commit.ID);
            }

            return commit.ID;
        }
        finally
        {
            await docker.RemoveContainerAsync(created.ID, CancellationToken.None);
        }
    }

    public async Task TagAsync(string id, string repositoryAndTag)
    {
        var (repo, tag) = Skiff.Validation.ImageReference.SplitForPull(Prefix + repositoryAndTag);
        await docker.Client.Images.TagImageAsync(id, new ImageTagParameters { RepositoryName = repo, Tag = tag });
    }

    public async Task<bool> ExistsAsync(string id)
    {
        try
        {
            await docker.Client.Images.InspectImageAsync(id);
            return true;
        }
        catch (DockerImageNotFoundException)
        {
            return false;
        }
    }

    /// <summary>Removes this test's containers of these images, then the images it committed (by id: they are all ours).</summary>
    public async ValueTask DisposeAsync()
    {
        var filter = new Dictionary<string, IDictionary<string, bool>> { ["label"] = new Dictionary<string, bool> { [$"{DockerFixture.RunLabel}={docker.RunId}"] = true } };
        foreach (var c in await docker.Client.Containers.ListContainersAsync(new ContainersListParameters { All = true, Filters = filter }))
        {
            if (committed.Contains(c.ImageID))
            {
                await docker.RemoveContainerAsync(c.ID, CancellationToken.None);
            }
        }

        foreach (var id in committed)
        {
            try
            {
                await docker.Client.Images.DeleteImageAsync(id, new ImageDeleteParameters { Force = true });
            }
            catch (DockerApiException)
            {
                // Removed by the test's GC pass already, or still used by a stack container of another fixture.
            }
        }
    }
}
