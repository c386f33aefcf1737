using System.Collections.Concurrent;
using Microsoft.Extensions.Logging.Abstractions;
using Skiff.Reconcile;
using Xunit;

namespace Skiff.Tests.Reconcile;

public sealed class CachedContainerEngineTests : IAsyncLifetime
{
    private static readonly Dictionary<string, string> Managed = new() { [SkiffLabels.ManagedBy] = SkiffLabels.ManagedByValue };

    private readonly InMemoryEngine engine = new(TimeProvider.System);
    private readonly FakeChanges changes = new();
    private readonly CachedContainerEngine cache;
    private readonly CancellationTokenSource stop = new();
    private readonly ConcurrentQueue<string> woken = new();
    private Task? running;

    public CachedContainerEngineTests()
    {
        engine.Images.Add("app:1");
        cache = new CachedContainerEngine(engine, changes, NullLogger.Instance) { StackChanged = woken.Enqueue };
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        await stop.CancelAsync();
        if (running is not null)
        {
            await running;
        }

        stop.Dispose();
    }

    [Fact]
    public async Task Once_live_a_stack_read_asks_the_engine_nothing()
    {
        await engine.CreateContainerAsync(Spec("default/a", "a_app_1"), default);
        await engine.CreateContainerAsync(Spec("default/b", "b_app_1"), default);
        await StartAsync();
        var before = Count("container_list") + Count("container_inspect");

        for (var i = 0; i < 50; i++)
        {
            var a = await cache.ListContainersAsync(Stack("default/a"), default);
            Assert.Equal("a_app_1", Assert.Single(a).Name);
        }

        var labels = await cache.ListContainerLabelsAsync(Managed, default);
        Assert.Equal(2, labels.Count);
        Assert.Equal(before, Count("container_list") + Count("container_inspect"));
        Assert.Equal(1, cache.Syncs);
    }

    [Fact]
    public async Task Before_the_first_list_and_for_other_labels_reads_go_to_the_engine()
    {
        await engine.CreateContainerAsync(Spec("default/a", "a_app_1"), default);
        Assert.False(cache.Live);
        Assert.Single(await cache.ListContainersAsync(Stack("default/a"), default));
        Assert.Equal(1, Count("container_list"));

        await StartAsync();
        // Not Skiff's label: the copy holds only Skiff's containers, so the engine answers.
        await cache.ListContainersAsync(new Dictionary<string, string> { ["other"] = "x" }, default);
        Assert.Equal(3, Count("container_list")); // the one above, the sync, this one
    }

    [Fact]
    public async Task Writes_through_the_copy_are_read_back_at_once()
    {
        await StartAsync();
        var id = await cache.CreateContainerAsync(Spec("default/a", "a_app_1"), default);
        Assert.Equal("created", Assert.Single(await cache.ListContainersAsync(Stack("default/a"), default)).State);

        await cache.StartContainerAsync(id, default);
        Assert.Equal("running", Assert.Single(await cache.ListContainersAsync(Stack("default/a"), default)).State);

        await cache.StopContainerAsync(id, TimeSpan.FromSeconds(1), default);
        Assert.Equal("exited", Assert.Single(await cache.ListContainersAsync(Stack("default/a"), default)).State);

        await cache.RenameContainerAsync(id, "a_app_old", default);
        Assert.Equal("a_app_old", Assert.Single(await cache.ListContainersAsync(Stack("default/a"), default)).Name);

        await cache.RemoveContainerAsync(id, default);
        Assert.Empty(await cache.ListContainersAsync(Stack("default/a"), default));
        Assert.True(cache.Live);
    }

    [Fact]
    public async Task An_event_refreshes_the_container_and_a_death_wakes_its_stack()
    {
        var id = await engine.CreateContainerAsync(Spec("default/a", "a_app_1"), default);
        await engine.StartContainerAsync(id, default);
        await StartAsync();

        // Outside Skiff: the app crashes. Until its event, the copy still says running (the documented lag).
        engine.Exit("a_app_1", 1);
        Assert.Equal("running", Assert.Single(await cache.ListContainersAsync(Stack("default/a"), default)).State);

        changes.Send(new EngineChange(EngineChange.Container, id, "die", "default/a"));
        await Until(() => woken.Contains("default/a"));
        Assert.Equal("exited", Assert.Single(await cache.ListContainersAsync(Stack("default/a"), default)).State);

        // A container created by someone else (a CI script using Skiff's labels) appears with its event; a start wakes nobody.
        var other = await engine.CreateContainerAsync(Spec("default/b", "b_app_1"), default);
        changes.Send(new EngineChange(EngineChange.Container, other, "create", "default/b"));
        await Until(async () => (await cache.ListContainersAsync(Stack("default/b"), default)).Count == 1);
        Assert.DoesNotContain("default/b", woken);

        // Exec events (health checks run every few seconds) cost no inspect.
        var inspects = Count("container_inspect");
        // (Docker says destroy once the container is gone.)
        await engine.RemoveContainerAsync(other, default);
        changes.Send(new EngineChange(EngineChange.Container, other, "exec_start: pg_isready", "default/b"));
        changes.Send(new EngineChange(EngineChange.Container, other, "destroy", "default/b"));
        await Until(async () => (await cache.ListContainersAsync(Stack("default/b"), default)).Count == 0);
        Assert.Equal(inspects + 1, Count("container_inspect"));
    }

    [Fact]
    public async Task Networks_and_volumes_are_listed_once_and_kept_current_by_events_and_writes()
    {
        await engine.CreateNetworkAsync("skiff_default_a", Managed, default);
        await engine.CreateVolumeAsync("skiff_default_a_db", Managed, default);
        await StartAsync();
        Assert.Equal(1, Count("network_list"));
        Assert.Equal(1, Count("volume_list"));

        // A resync: every stack asks for its network and volumes; the copy answers.
        for (var i = 0; i < 20; i++)
        {
            Assert.True(await cache.NetworkExistsAsync("skiff_default_a", default));
            Assert.NotNull(await cache.InspectVolumeAsync("skiff_default_a_db", default));
        }

        Assert.Equal(0, Count("network_inspect"));
        Assert.Equal(0, Count("volume_inspect"));

        // A name the list did not hold (not Skiff's label, or not there) is asked once, then known.
        Assert.False(await cache.NetworkExistsAsync("skiff_default_b", default));
        Assert.False(await cache.NetworkExistsAsync("skiff_default_b", default));
        Assert.Null(await cache.InspectVolumeAsync("skiff_default_b_db", default));
        Assert.Null(await cache.InspectVolumeAsync("skiff_default_b_db", default));
        Assert.Equal(1, Count("network_inspect"));
        Assert.Equal(1, Count("volume_inspect"));

        // Writes through the copy are read back at once.
        await cache.CreateNetworkAsync("skiff_default_b", Managed, default);
        await cache.CreateVolumeAsync("skiff_default_b_db", Managed, default);
        Assert.True(await cache.NetworkExistsAsync("skiff_default_b", default));
        Assert.NotNull(await cache.InspectVolumeAsync("skiff_default_b_db", default));
        await cache.RemoveVolumeAsync("skiff_default_b_db", default);
        Assert.Null(await cache.InspectVolumeAsync("skiff_default_b_db", default));

        // Outside Skiff (docker network rm, docker volume rm): the copy learns it from the event.
        await engine.RemoveNetworkAsync("skiff_default_a", default);
        await engine.RemoveVolumeAsync("skiff_default_a_db", default);
        Assert.True(await cache.NetworkExistsAsync("skiff_default_a", default)); // the documented lag until the event
        changes.Send(new EngineChange(EngineChange.Network, "skiff_default_a", "destroy", null));
        changes.Send(new EngineChange(EngineChange.Volume, "skiff_default_a_db", "destroy", null));
        await Until(async () => !await cache.NetworkExistsAsync("skiff_default_a", default));
        await Until(async () => await cache.InspectVolumeAsync("skiff_default_a_db", default) is null);

        // And one made outside Skiff, without Skiff's labels, appears with its event.
        await engine.CreateVolumeAsync("skiff_default_a_db", new Dictionary<string, string>(), default);
        changes.Send(new EngineChange(EngineChange.Volume, "skiff_default_a_db", "create", null));
        await Until(async () => await cache.InspectVolumeAsync("skiff_default_a_db", default) is not null);
        Assert.Equal(1, cache.Syncs);
    }

    [Fact]
    public async Task A_list_of_Skiffs_networks_by_labels_is_answered_from_the_copy_and_follows_events()
    {
        // The source's scan of its stacks (a Kubernetes source asks it at every reconcile) lists networks by labels.
        var ours = new Dictionary<string, string>(Managed) { [SkiffLabels.Source] = "kubernetes-1", [SkiffLabels.App] = "default/a" };
        await engine.CreateNetworkAsync("skiff_default_a", ours, default);
        await engine.CreateNetworkAsync("skiff_default_b", new Dictionary<string, string>(Managed) { [SkiffLabels.Source] = "folder-2" }, default);
        await StartAsync();
        var lists = Count("network_list");
        var bySource = new Dictionary<string, string>(Managed) { [SkiffLabels.Source] = "kubernetes-1" };

        for (var i = 0; i < 20; i++)
        {
            var listed = await cache.ListNetworksAsync(bySource, default);
            Assert.Equal("skiff_default_a", Assert.Single(listed).Name);
            Assert.Equal("default/a", listed[0].Labels[SkiffLabels.App]);
        }

        Assert.Equal(lists, Count("network_list"));

        // Made through the copy, and made or removed outside it (with its event): the next list has it.
        await cache.CreateNetworkAsync("skiff_default_c", new Dictionary<string, string>(bySource), default);
        await engine.RemoveNetworkAsync("skiff_default_a", default);
        changes.Send(new EngineChange(EngineChange.Network, "skiff_default_a", "destroy", null));
        await engine.CreateNetworkAsync("skiff_default_d", new Dictionary<string, string>(bySource), default);
        changes.Send(new EngineChange(EngineChange.Network, "skiff_default_d", "create", null));
        await Until(async () => (await cache.ListNetworksAsync(bySource, default)).Select(n => n.Name).SequenceEqual(["skiff_default_c", "skiff_default_d"]));
        Assert.Equal(lists, Count("network_list"));

        // Without Skiff's label the engine answers (the copy holds only Skiff's networks).
        await cache.ListNetworksAsync(new Dictionary<string, string> { [SkiffLabels.Source] = "kubernetes-1" }, default);
        Assert.Equal(lists + 1, Count("network_list"));
    }

    [Fact]
    public async Task A_network_or_volume_gone_while_the_stream_was_down_is_not_remembered()
    {
        await engine.CreateNetworkAsync("skiff_default_a", Managed, default);
        await engine.CreateVolumeAsync("skiff_default_a_db", Managed, default);
        await StartAsync();
        Assert.True(await cache.NetworkExistsAsync("skiff_default_a", default));

        changes.Drop();
        await Until(() => !cache.Live || cache.Syncs > 1);
        await engine.RemoveNetworkAsync("skiff_default_a", default);
        await engine.RemoveVolumeAsync("skiff_default_a_db", default);
        await Until(() => cache.Syncs >= 2 && cache.Live);
        Assert.False(await cache.NetworkExistsAsync("skiff_default_a", default));
        Assert.Null(await cache.InspectVolumeAsync("skiff_default_a_db", default));
    }

    [Fact]
    public async Task A_dropped_stream_reads_the_engine_until_a_new_list_lands()
    {
        var id = await engine.CreateContainerAsync(Spec("default/a", "a_app_1"), default);
        await StartAsync();

        changes.Drop();
        await Until(() => !cache.Live || cache.Syncs > 1);
        // Meanwhile (stream down, no event will come), the engine changes: the next list sees it.
        await engine.RemoveContainerAsync(id, default);
        await Until(() => cache.Syncs >= 2 && cache.Live);
        Assert.Empty(await cache.ListContainersAsync(Stack("default/a"), default));
        Assert.True(changes.LastSince <= DateTimeOffset.UtcNow - TimeSpan.FromSeconds(1), "events are replayed from before the list");
    }

    [Fact]
    public async Task An_engine_that_fails_an_inspect_after_a_write_sends_reads_to_the_engine_again()
    {
        var id = await engine.CreateContainerAsync(Spec("default/a", "a_app_1"), default);
        await StartAsync();
        engine.Down = true;
        await Assert.ThrowsAsync<EngineUnreachableException>(() => cache.StartContainerAsync(id, default));
        Assert.False(cache.Live);
        engine.Down = false;
        await Until(() => cache.Live && cache.Syncs >= 2);
        Assert.Single(await cache.ListContainersAsync(Stack("default/a"), default));
    }

    [Fact]
    public async Task The_first_sync_is_awaited_whether_it_lands_or_fails()
    {
        engine.Down = true;
        running = cache.RunAsync(stop.Token);
        // The engine down: the wait ends with the failed list, and reads go to the engine (which says it is down).
        await cache.WaitFirstSyncAsync(default).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.False(cache.Live);
        await Assert.ThrowsAsync<EngineUnreachableException>(() => cache.ListContainersAsync(Managed, default));

        engine.Down = false;
        await Until(() => cache.Live);
    }

    private async Task StartAsync()
    {
        running = cache.RunAsync(stop.Token);
        await Until(() => cache.Live);
    }

    private int Count(string operation) => engine.Calls.Count(c => c == operation || c.StartsWith(operation + " ", StringComparison.Ordinal));

    private static Dictionary<string, string> Stack(string key) => new(Managed) { [SkiffLabels.App] = key };

    private static ContainerSpec Spec(string stack, string name) => new()
    {
        Name = name,
        Image = "app:1",
        Network = "net",
        Labels = new Dictionary<string, string>(Managed) { [SkiffLabels.App] = stack, [SkiffLabels.Component] = StackNames.AppComponent },
    };

    private static Task Until(Func<bool> condition) => Until(() => Task.FromResult(condition()));

    private static async Task Until(Func<Task<bool>> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "the condition did not come true within 10 s");
            await Task.Delay(10);
        }
    }

    /// <summary>An event stream the test drives: it sends events and drops the connection.</summary>
    private sealed class FakeChanges : IEngineChanges
    {
        private readonly object gate = new();
        private Action<EngineChange>? listener;
        private TaskCompletionSource? connection;

        public DateTimeOffset LastSince { get; private set; }

        public Task<DateTimeOffset> EngineTimeAsync(CancellationToken ct) => Task.FromResult(DateTimeOffset.UtcNow);

        public async Task WatchChangesAsync(DateTimeOffset since, Action<EngineChange> onChange, CancellationToken ct)
        {
            var open = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            lock (gate)
            {
                LastSince = since;
                listener = onChange;
                connection = open;
            }

            await using (ct.Register(() => open.TrySetCanceled(ct)))
            {
                await open.Task;
            }
        }

        public void Send(EngineChange change)
        {
            lock (gate)
            {
                listener!(change);
            }
        }

        public void Drop()
        {
            lock (gate)
            {
                connection!.TrySetException(new IOException("the engine closed the event stream"));
            }
        }
    }
}
