using Skiff.ImageGC;
using static Skiff.Tests.ImageGC.GcTestData;

namespace Skiff.Tests.ImageGC;

/// <summary>Engine events keep first-seen and last-used times; they survive a restart through the file.</summary>
public sealed class ImageActivityTrackerTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("skiff-events-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private static EngineEvent Event(string type, string action, string actor, DateTimeOffset time, string? image = null) =>
        new(type, action, actor, image is null ? new Dictionary<string, string>() : new Dictionary<string, string> { ["image"] = image }, time);

    [Fact]
    public async Task Pull_marks_first_seen_and_container_start_marks_last_used_and_both_survive_a_restart()
    {
        var path = Path.Combine(dir, "images.json");
        var store = await FirstSeenStore.LoadAsync(path, CancellationToken.None);
        var refs = new Dictionary<string, string> { ["acme/api:2"] = Id(2), ["c-1"] = Id(2), ["c-9"] = Id(9) };
        var tracker = new ImageActivityTracker(store, (e, _) => Task.FromResult(refs.GetValueOrDefault(e.ActorId)));

        Assert.Equal(Id(2), await tracker.HandleAsync(Event("image", "pull", "acme/api:2", Now.AddHours(-5)), CancellationToken.None));
        // A second pull of a known image does not make it younger.
        await tracker.HandleAsync(Event("image", "pull", "acme/api:2", Now.AddHours(-1)), CancellationToken.None);
        await tracker.HandleAsync(Event("container", "start", "c-1", Now.AddHours(-2), "acme/api:2"), CancellationToken.None);
        await tracker.HandleAsync(Event("container", "create", "c-9", Now.AddHours(-3)), CancellationToken.None);
        Assert.Null(await tracker.HandleAsync(Event("container", "die", "c-1", Now), CancellationToken.None));
        Assert.Null(await tracker.HandleAsync(Event("image", "pull", "unknown:1", Now), CancellationToken.None));
        await store.SaveAsync(CancellationToken.None);

        var reloaded = await FirstSeenStore.LoadAsync(path, CancellationToken.None);
        Assert.Equal((Now.AddHours(-5), Now.AddHours(-2)), reloaded.Get(Id(2)));
        Assert.Equal((Now.AddHours(-3), Now.AddHours(-3)), reloaded.Get(Id(9)));
        var planned = reloaded.Observe([new ImageInfo(Id(2), ["acme/api:2"], [], MiB, Now.AddDays(-9))], Now);
        Assert.Equal(Now.AddHours(-5), planned.Single().FirstSeen);
        Assert.Equal(Now.AddHours(-2), planned.Single().LastUsed);
    }

    [Fact]
    public async Task Tag_event_with_an_id_actor_needs_no_lookup()
    {
        var store = await FirstSeenStore.LoadAsync(Path.Combine(dir, "images.json"), CancellationToken.None);
        var tracker = new ImageActivityTracker(store, (e, _) => Task.FromResult<string?>(e.ActorId));
        await tracker.HandleAsync(Event("image", "tag", Id(4), Now), CancellationToken.None);
        Assert.Equal((Now, (DateTimeOffset?)null), store.Get(Id(4)));
        Assert.Equal(["image", "container"], ImageActivityTracker.Filters["type"]);
    }
}
