using Skiff.ImageGC;
using static Skiff.Tests.ImageGC.GcTestData;

namespace Skiff.Tests.ImageGC;

public sealed class FirstSeenStoreTests : IDisposable
{
    private readonly string dir = Path.Combine(Path.GetTempPath(), "skiff-firstseen-" + Guid.NewGuid().ToString("N"));

    private string FilePath => Path.Combine(dir, "state", "images.json");

    public void Dispose()
    {
        if (Directory.Exists(dir))
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static ImageInfo Raw(int n) => new(Id(n), [$"a:{n}"], [], MiB, Now.AddDays(-30));

    [Fact]
    public async Task New_images_are_first_seen_now_and_keep_that_time_later()
    {
        var store = await FirstSeenStore.LoadAsync(FilePath, default);

        var first = store.Observe([Raw(1)], Now);
        var later = store.Observe([Raw(1), Raw(2)], Now.AddHours(2));

        Assert.Equal(Now, first[0].FirstSeen);
        Assert.Equal(Now, later[0].FirstSeen);
        Assert.Equal(Now.AddHours(2), later[1].FirstSeen);
        Assert.Null(later[1].LastUsed);
    }

    [Fact]
    public async Task MarkUsed_fills_last_used_and_only_moves_forward()
    {
        var store = await FirstSeenStore.LoadAsync(FilePath, default);
        store.Observe([Raw(1)], Now);

        store.MarkUsed(Id(1), Now.AddHours(3));
        store.MarkUsed(Id(1), Now.AddHours(1));
        store.MarkUsed(Id(2), Now.AddHours(4)); // started before GC ever listed it

        var images = store.Observe([Raw(1), Raw(2)], Now.AddHours(5));
        Assert.Equal(Now.AddHours(3), images[0].LastUsed);
        Assert.Equal((Now.AddHours(4), (DateTimeOffset?)Now.AddHours(4)), store.Get(Id(2)));
    }

    [Fact]
    public async Task Images_gone_from_the_engine_are_forgotten()
    {
        var store = await FirstSeenStore.LoadAsync(FilePath, default);
        store.Observe([Raw(1), Raw(2)], Now);

        store.Observe([Raw(2)], Now.AddHours(1));

        Assert.Equal(1, store.Count);
        Assert.Null(store.Get(Id(1)));
    }

    [Fact]
    public async Task Save_and_load_round_trip_atomically()
    {
        var store = await FirstSeenStore.LoadAsync(FilePath, default);
        store.Observe([Raw(2), Raw(1)], Now);
        store.MarkUsed(Id(2), Now.AddMinutes(5));
        await store.SaveAsync(default);
        store.Observe([Raw(1)], Now.AddHours(1));
        await store.SaveAsync(default); // overwrites

        var reloaded = await FirstSeenStore.LoadAsync(FilePath, default);

        Assert.Null(reloaded.LoadWarning);
        Assert.Equal(1, reloaded.Count);
        Assert.Equal((Now, (DateTimeOffset?)null), reloaded.Get(Id(1)));
        Assert.Equal([FilePath], Directory.GetFiles(Path.GetDirectoryName(FilePath)!));
        var json = await File.ReadAllTextAsync(FilePath);
        Assert.Contains("\"version\": 1", json, StringComparison.Ordinal);
        Assert.Contains(Id(1), json, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Ids_are_written_in_ordinal_order()
    {
        var store = await FirstSeenStore.LoadAsync(FilePath, default);
        store.Observe([Raw(3), Raw(1), Raw(2)], Now);
        await store.SaveAsync(default);

        var json = await File.ReadAllTextAsync(FilePath);

        Assert.True(json.IndexOf(Id(1), StringComparison.Ordinal) < json.IndexOf(Id(2), StringComparison.Ordinal));
        Assert.True(json.IndexOf(Id(2), StringComparison.Ordinal) < json.IndexOf(Id(3), StringComparison.Ordinal));
    }

    [Fact]
    public async Task Missing_file_starts_empty_without_a_warning()
    {
        var store = await FirstSeenStore.LoadAsync(FilePath, default);

        Assert.Equal(0, store.Count);
        Assert.Null(store.LoadWarning);
    }

    [Fact]
    public async Task Corrupt_file_starts_empty_with_a_warning_so_every_image_is_protected_for_minimum_age()
    {
        Directory.CreateDirectory(Path.GetDirectoryName(FilePath)!);
        await File.WriteAllTextAsync(FilePath, "{\"version\": 1, \"images\": {\"sha256:");

        var store = await FirstSeenStore.LoadAsync(FilePath, default);
        var images = store.Observe([Raw(1)], Now);
        var plan = ImageGcPlanner.Plan(Input(images, 99));

        Assert.NotNull(store.LoadWarning);
        Assert.Equal(GcReason.YoungerThanMinimumAge, Assert.Single(plan.Protected).Reason);
    }
}
