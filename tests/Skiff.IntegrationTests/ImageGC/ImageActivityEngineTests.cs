using Docker.DotNet.Models;
using Microsoft.Extensions.Logging.Abstractions;
using Skiff.Docker;
using Skiff.ImageGC;
using Skiff.IntegrationTests.Infrastructure;

namespace Skiff.IntegrationTests.ImageGC;

/// <summary>
/// The engine-event tracker on the real engine: <see cref="DockerEngine"/> as its <see cref="IImageEventSource"/>
/// (the /events stream turned into <see cref="EngineEvent"/>s, and each event resolved to an image id).
/// </summary>
[Collection(DockerCollection.Name)]
public sealed class ImageActivityEngineTests(DockerFixture docker) : IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    private readonly string stateDir = Directory.CreateTempSubdirectory("skiff-events-it-").FullName;

    public void Dispose() => Directory.Delete(stateDir, recursive: true);

    [Fact]
    public async Task A_tag_marks_the_image_seen_and_a_container_created_from_it_marks_it_used()
    {
        await using var images = new GcImages(docker);
        using var engine = new DockerEngine(docker.DockerHost.ToString());
        var id = await images.CommitAsync(TestImages.Busybox, "events:1");
        var store = await FirstSeenStore.LoadAsync(Path.Combine(stateDir, "images.json"), CancellationToken.None);
        var tracker = new ImageActivityTracker(store, ImageActivityTracker.EngineResolver(engine));
        using var stop = new CancellationTokenSource();
        var following = tracker.FollowAsync(engine, NullLogger.Instance, stop.Token);

        // Events from before the stream connected are not replayed: tag again until one is seen.
        var tags = 0;
        await Eventually.ValueAsync("the tag event recorded", async ct =>
        {
            if (store.Get(id) is not null)
            {
                return ((object?)"seen", "");
            }

            await images.TagAsync(id, $"events:tag{++tags}");
            return (null, $"{tags} tags, the image not seen yet");
        }, Patience);
        Assert.Null(store.Get(id)!.Value.LastUsed);

        var container = await docker.Client.Containers.CreateContainerAsync(new CreateContainerParameters
        {
            Image = id, Cmd = ["true"], Labels = docker.Labels, Name = docker.Name("events"),
        });
        await Eventually.ValueAsync("the create event recorded", _ =>
            Task.FromResult<(object?, string)>(store.Get(id)?.LastUsed is not null ? ("used", "") : (null, $"container {container.ID[..12]} created, the image not marked used yet")),
            Patience);

        await stop.CancelAsync();
        await following; // ends quietly when stopped
    }
}
