using System.Runtime.CompilerServices;
using k8s;
using k8s.Models;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using Skiff.Runtime;
using Skiff.IntegrationTests.Infrastructure;

namespace Skiff.Tests.Runtime;

public sealed class InformerTests : IAsyncDisposable
{
    private readonly FakeTimeProvider time = new();
    private readonly FakeListWatch server = new();
    private readonly RecordingLogger<Informer<V1ConfigMap>> logger = new();
    private readonly Informer<V1ConfigMap> informer;
    private readonly List<string> events = [];
    private readonly CancellationTokenSource stop = new();
    private Task? run;

    public InformerTests()
    {
        // Jitter 1.0: the backoff is exactly initial·2ⁿ⁻¹, so tests know how far to advance time.
        informer = new Informer<V1ConfigMap>(server, logger, new InformerOptions { Jitter = () => 1.0 }, time);
        informer.OnAdd += o => Record("add " + o.Metadata.Name + "@" + o.Metadata.ResourceVersion);
        informer.OnUpdate += (old, o) => Record("update " + o.Metadata.Name + "@" + old.Metadata.ResourceVersion + "->" + o.Metadata.ResourceVersion);
        informer.OnDelete += o => Record("delete " + o.Metadata.Name);
    }

    public async ValueTask DisposeAsync()
    {
        await stop.CancelAsync();
        if (run is not null)
        {
            await run.WaitAsync(TimeSpan.FromSeconds(5));
        }

        stop.Dispose();
    }

    [Fact]
    public async Task InitialList_FillsTheCacheAndSyncs()
    {
        server.Items = [FakeListWatch.Object("a", "5"), FakeListWatch.Object("b", "6")];
        server.ListResourceVersion = "10";
        Assert.False(informer.HasSynced);

        await StartAsync();

        Assert.True(informer.HasSynced);
        Assert.Equal(["a", "b"], informer.List().Select(o => o.Metadata.Name).Order());
        Assert.Equal("5", informer.Get(new ObjectKey("prod", "a"))!.Metadata.ResourceVersion);
        Assert.Null(informer.Get(new ObjectKey("prod", "zz")));
        Assert.Equal(["add a@5", "add b@6"], Events().Order());
        await EventuallyAsync(() => server.WatchCount == 1);
        Assert.Equal("10", server.WatchCalls[0]);
        Assert.Equal(time.GetUtcNow(), informer.LastActivity);
    }

    [Fact]
    public async Task WatchEvents_UpdateTheCacheAndCallHandlers()
    {
        server.Items = [FakeListWatch.Object("a", "5")];
        await StartAsync();
        await EventuallyAsync(() => server.WatchCount == 1);

        server.Send(WatchEventType.Added, FakeListWatch.Object("b", "11"));
        server.Send(WatchEventType.Modified, FakeListWatch.Object("a", "12"));
        server.Send(WatchEventType.Deleted, FakeListWatch.Object("b", "13"));
        await EventuallyAsync(() => informer.ResourceVersion == "13");

        Assert.Equal(["add a@5", "add b@11", "update a@5->12", "delete b"], Events());
        Assert.Equal(["a"], informer.List().Select(o => o.Metadata.Name));
        Assert.Equal("12", informer.Get(new ObjectKey("prod", "a"))!.Metadata.ResourceVersion);
    }

    [Fact]
    public async Task EnqueueTo_QueuesTheKeyOfEveryChange()
    {
        using var queue = new WorkQueue<ObjectKey>("test", time: time);
        informer.EnqueueTo(queue);
        server.Items = [FakeListWatch.Object("a", "5")];
        await StartAsync();
        await EventuallyAsync(() => server.WatchCount == 1);

        server.Send(WatchEventType.Added, FakeListWatch.Object("b", "6", ns: "dev"));
        await EventuallyAsync(() => queue.Len == 2);

        Assert.Equal(new ObjectKey("prod", "a"), (await queue.GetAsync(CancellationToken.None)).Key);
        Assert.Equal(new ObjectKey("dev", "b"), (await queue.GetAsync(CancellationToken.None)).Key);
    }

    [Fact]
    public async Task ExpiredWatch_RelistsAndDiffsAgainstTheCache()
    {
        server.Items = [FakeListWatch.Object("keep", "1"), FakeListWatch.Object("change", "2"), FakeListWatch.Object("gone", "3")];
        await StartAsync();
        await EventuallyAsync(() => server.WatchCount == 1);
        events.Clear();

        // While the watch was away: "gone" was deleted, "change" changed, "new" appeared.
        server.Items = [FakeListWatch.Object("keep", "1"), FakeListWatch.Object("change", "20"), FakeListWatch.Object("new", "21")];
        server.ListResourceVersion = "30";
        server.Expire();
        await EventuallyAsync(() => informer.IsBackingOff);
        time.Advance(TimeSpan.FromMilliseconds(800));
        await EventuallyAsync(() => server.ListCalls == 2);

        await EventuallyAsync(() => server.WatchCount == 2);
        Assert.Equal(["add new@21", "delete gone", "update change@2->20"], Events().Order());
        Assert.Equal(["change", "keep", "new"], informer.List().Select(o => o.Metadata.Name).Order());
        Assert.Equal("30", server.WatchCalls[1]);
    }

    [Fact]
    public async Task BrokenStream_ReconnectsFromTheLastResourceVersionWithoutRelisting()
    {
        server.Items = [FakeListWatch.Object("a", "5")];
        server.ListResourceVersion = "10";
        await StartAsync();
        await EventuallyAsync(() => server.WatchCount == 1);

        server.Send(WatchEventType.Modified, FakeListWatch.Object("a", "15"));
        server.Send(WatchEventType.Bookmark, FakeListWatch.Bookmark("42"));
        await EventuallyAsync(() => informer.ResourceVersion == "42");
        server.Break();

        // The events reset the backoff, so the retry waits the initial 800 ms.
        await EventuallyAsync(() => informer.IsBackingOff);
        time.Advance(TimeSpan.FromMilliseconds(799));
        Assert.True(informer.IsBackingOff);
        time.Advance(TimeSpan.FromMilliseconds(1));
        await EventuallyAsync(() => server.WatchCount == 2);

        Assert.Equal("42", server.WatchCalls[1]);
        Assert.Equal(1, server.ListCalls);
        var warning = Assert.Single(logger.At(LogLevel.Warning));
        // A transport error is one line with its message, not a stack trace per informer.
        Assert.Equal(("Watch of V1ConfigMap failed: connection reset; retrying with backoff", null), (warning.Message, warning.Exception));
        Assert.DoesNotContain(Events(), e => e.Contains("42", StringComparison.Ordinal)); // bookmarks are not events
    }

    [Fact]
    public async Task ClosedWatch_IsReopenedAtOnceFromTheLastResourceVersion()
    {
        await StartAsync();
        await EventuallyAsync(() => server.WatchCount == 1);
        server.Send(WatchEventType.Added, FakeListWatch.Object("a", "7"));
        await EventuallyAsync(() => informer.ResourceVersion == "7");

        server.Close();

        await EventuallyAsync(() => server.WatchCount == 2);
        Assert.Equal("7", server.WatchCalls[1]);
    }

    [Fact]
    public async Task FailingList_IsRetriedWithGrowingBackoff()
    {
        server.ListError = new HttpRequestException("connection refused");
        run = informer.RunAsync(stop.Token);
        await EventuallyAsync(() => server.ListCalls == 1 && informer.IsBackingOff);

        time.Advance(TimeSpan.FromMilliseconds(800));
        await EventuallyAsync(() => server.ListCalls == 2 && informer.IsBackingOff);
        time.Advance(TimeSpan.FromMilliseconds(1599));
        Assert.True(informer.IsBackingOff);
        Assert.Equal(2, server.ListCalls);
        time.Advance(TimeSpan.FromMilliseconds(1));
        await EventuallyAsync(() => server.ListCalls == 3 && informer.IsBackingOff);
        Assert.False(informer.HasSynced);

        server.ListError = null;
        time.Advance(TimeSpan.FromMilliseconds(3200));
        await informer.WaitForSyncAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Single(logger.At(LogLevel.Warning)); // once per streak; repeats at debug
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_transport_error_is_logged_with_its_causes_and_a_bug_with_its_stack(bool transport)
    {
        server.ListError = transport
            ? new HttpRequestException("Error while copying content to a stream.", new EndOfStreamException("Attempted to read past the end of the stream."))
            : new InvalidOperationException("a bug");
        run = informer.RunAsync(stop.Token);
        await EventuallyAsync(() => server.ListCalls == 1 && informer.IsBackingOff);

        var warning = Assert.Single(logger.At(LogLevel.Warning));
        if (transport)
        {
            Assert.Equal(("List of V1ConfigMap failed: Error while copying content to a stream. (Attempted to read past the end of the stream.); retrying with backoff", null),
                (warning.Message, warning.Exception));
        }
        else
        {
            Assert.Equal("List of V1ConfigMap failed; retrying with backoff", warning.Message);
            Assert.Same(server.ListError, warning.Exception);
        }
    }

    [Fact]
    public void Backoff_IsJitteredExponentialAndCapped()
    {
        var jitter = 0.0;
        var i = new Informer<V1ConfigMap>(server, logger, new InformerOptions { Jitter = () => jitter }, time);

        Assert.Equal(TimeSpan.FromMilliseconds(400), i.Backoff(1)); // half of 800 ms at the lowest jitter
        jitter = 1.0;
        Assert.Equal(TimeSpan.FromMilliseconds(800), i.Backoff(1));
        Assert.Equal(TimeSpan.FromMilliseconds(1600), i.Backoff(2));
        Assert.Equal(TimeSpan.FromSeconds(30), i.Backoff(7));
        Assert.Equal(TimeSpan.FromSeconds(30), i.Backoff(1000));
    }

    [Fact]
    public async Task ThrowingHandler_DoesNotStopTheInformerOrOtherHandlers()
    {
        var seen = 0;
        informer.OnAdd += _ => throw new InvalidOperationException("handler bug");
        informer.OnAdd += _ => Interlocked.Increment(ref seen);
        await StartAsync();
        await EventuallyAsync(() => server.WatchCount == 1);

        server.Send(WatchEventType.Added, FakeListWatch.Object("a", "3"));
        server.Send(WatchEventType.Added, FakeListWatch.Object("b", "4"));

        await EventuallyAsync(() => Volatile.Read(ref seen) == 2);
        Assert.Equal(2, logger.At(LogLevel.Error).Count);
    }

    private async Task StartAsync()
    {
        run = informer.RunAsync(stop.Token);
        await informer.WaitForSyncAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(5));
    }

    private void Record(string e)
    {
        lock (events)
        {
            events.Add(e);
        }
    }

    private List<string> Events()
    {
        lock (events)
        {
            return [.. events];
        }
    }

    // The informer runs on its own task: poll (briefly, in real time) until it has caught up.
    // Only the test moves fake time, and only once the informer waits (IsBackingOff), so the
    // timings asserted are exact.
    private static Task EventuallyAsync(Func<bool> condition, [CallerArgumentExpression(nameof(condition))] string what = "") =>
        Eventually.TrueAsync(what, condition, TimeSpan.FromSeconds(5), interval: TimeSpan.FromMilliseconds(1));
}
