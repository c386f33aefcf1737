using System.Collections.Concurrent;
using Microsoft.Extensions.Time.Testing;
using Skiff.Runtime;
using Skiff.IntegrationTests.Infrastructure;

namespace Skiff.Tests.Runtime;

public class WorkQueueTests
{
    private static readonly CancellationToken Ct = CancellationToken.None;

    private readonly FakeTimeProvider time = new();

    private WorkQueue<string> NewQueue() => new("test", time: time);

    private static async Task<string> TakeAsync(WorkQueue<string> queue)
    {
        var (key, shutDown) = await queue.GetAsync(Ct).WaitAsync(TimeSpan.FromSeconds(5), Ct);
        Assert.False(shutDown);
        return key;
    }

    [Fact]
    public async Task Add_SameKeyTwice_QueuesItOnce()
    {
        using var queue = NewQueue();
        queue.Add("a");
        queue.Add("b");
        queue.Add("a");

        Assert.Equal(2, queue.Len);
        Assert.Equal("a", await TakeAsync(queue));
        Assert.Equal("b", await TakeAsync(queue));
        Assert.Equal(0, queue.Len);
    }

    [Fact]
    public async Task Add_WhileProcessing_RequeuesExactlyOnceAfterDone()
    {
        using var queue = NewQueue();
        queue.Add("a");
        var key = await TakeAsync(queue);

        queue.Add("a");
        queue.Add("a");
        queue.Add("a");
        Assert.Equal(0, queue.Len); // not handed out while it is being processed

        queue.Done(key);
        Assert.Equal(1, queue.Len);
        Assert.Equal("a", await TakeAsync(queue));
        queue.Done("a");
        Assert.Equal(0, queue.Len);
    }

    [Fact]
    public async Task GetAsync_WaitsUntilAKeyIsAdded()
    {
        using var queue = NewQueue();
        var get = queue.GetAsync(Ct);
        Assert.False(get.IsCompleted);

        queue.Add("a");
        var (key, shutDown) = await get.WaitAsync(TimeSpan.FromSeconds(5), Ct);
        Assert.Equal("a", key);
        Assert.False(shutDown);
    }

    [Fact]
    public async Task SeveralWorkers_NeverProcessOneKeyConcurrently()
    {
        using var queue = new WorkQueue<string>("test");
        var inFlight = new ConcurrentDictionary<string, int>();
        var overlaps = 0;
        var processed = 0;
        string[] keys = ["a", "b", "c"];

        async Task WorkerAsync()
        {
            while (true)
            {
                var (key, shutDown) = await queue.GetAsync(Ct);
                if (shutDown)
                {
                    return;
                }

                if (inFlight.AddOrUpdate(key, 1, (_, n) => n + 1) > 1)
                {
                    Interlocked.Increment(ref overlaps);
                }

                await Task.Yield();
                Thread.SpinWait(200);
                inFlight.AddOrUpdate(key, 0, (_, n) => n - 1);
                Interlocked.Increment(ref processed);
                queue.Done(key);
            }
        }

        var workers = Enumerable.Range(0, 4).Select(_ => Task.Run(WorkerAsync, Ct)).ToArray();
        for (var i = 0; i < 600; i++)
        {
            queue.Add(keys[i % keys.Length]);
            if (i % 20 == 0)
            {
                await Task.Yield();
            }
        }

        // Let the workers take everything before shutting down: a shut-down queue hands out nothing more,
        // and on a loaded machine the workers may not have started yet.
        await Eventually.TrueAsync("the workers took every item", () => queue.Len == 0 && Volatile.Read(ref processed) > 0, TimeSpan.FromSeconds(10),
            () => $"{queue.Len} queued, {Volatile.Read(ref processed)} processed", TimeSpan.FromMilliseconds(5));

        await queue.ShutDownWithDrainAsync(Ct).WaitAsync(TimeSpan.FromSeconds(5), Ct);
        await Task.WhenAll(workers).WaitAsync(TimeSpan.FromSeconds(5), Ct);

        Assert.Equal(0, overlaps);
        Assert.True(processed > 0);
    }

    [Fact]
    public void ExponentialBackoff_DoublesFrom5msAndCapsAt1000s()
    {
        var limiter = new ExponentialFailureRateLimiter<string>(TimeSpan.FromMilliseconds(5), TimeSpan.FromSeconds(1000));

        var delays = Enumerable.Range(0, 20).Select(_ => limiter.When("a")).ToArray();

        Assert.Equal(TimeSpan.FromMilliseconds(5), delays[0]);
        Assert.Equal(TimeSpan.FromMilliseconds(10), delays[1]);
        Assert.Equal(TimeSpan.FromMilliseconds(20), delays[2]);
        Assert.Equal(TimeSpan.FromMilliseconds(5 * 65536), delays[16]); // 327.68 s
        Assert.Equal(TimeSpan.FromSeconds(1000), delays[18]);           // 5 ms * 2^18 = 1310 s, capped
        Assert.Equal(TimeSpan.FromSeconds(1000), limiter.When("a"));
        Assert.Equal(TimeSpan.FromMilliseconds(5), limiter.When("b"));  // per key
        Assert.Equal(21, limiter.NumRequeues("a"));

        // Far past any exponent a double can hold: still the cap, no overflow.
        for (var i = 0; i < 600; i++)
        {
            limiter.When("c");
        }

        Assert.Equal(TimeSpan.FromSeconds(1000), limiter.When("c"));
    }

    [Fact]
    public void BucketLimiter_LetsTheBurstThroughThenSpacesAt10Qps()
    {
        var limiter = new BucketRateLimiter<string>(qps: 10, burst: 100, time);

        for (var i = 0; i < 100; i++)
        {
            Assert.Equal(TimeSpan.Zero, limiter.When("k" + i));
        }

        Assert.Equal(TimeSpan.FromMilliseconds(100), limiter.When("x"));
        Assert.Equal(TimeSpan.FromMilliseconds(200), limiter.When("y"));
        time.Advance(TimeSpan.FromSeconds(1)); // refills 10 tokens, which pay the debt of 2
        Assert.Equal(TimeSpan.Zero, limiter.When("z"));
    }

    [Fact]
    public async Task AddRateLimited_WaitsTheBackoffThenQueues()
    {
        using var queue = NewQueue();

        queue.AddRateLimited("a");
        Assert.Equal(0, queue.Len);
        time.Advance(TimeSpan.FromMilliseconds(4));
        Assert.Equal(0, queue.Len);
        time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal(1, queue.Len);
        queue.Done(await TakeAsync(queue));

        queue.AddRateLimited("a");
        time.Advance(TimeSpan.FromMilliseconds(9));
        Assert.Equal(0, queue.Len);
        time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal(1, queue.Len);
        Assert.Equal(2, queue.NumRequeues("a"));
    }

    [Fact]
    public void Forget_ResetsTheBackoff()
    {
        using var queue = NewQueue();
        queue.AddRateLimited("a");
        queue.AddRateLimited("a");
        queue.AddRateLimited("a");
        Assert.Equal(3, queue.NumRequeues("a"));

        queue.Forget("a");
        Assert.Equal(0, queue.NumRequeues("a"));

        time.Advance(TimeSpan.FromMilliseconds(5)); // the first (5 ms) retry fires
        Assert.Equal(1, queue.Len);
    }

    [Fact]
    public async Task AddAfter_HandsKeysOutInDueOrder()
    {
        using var queue = NewQueue();
        queue.AddAfter("c", TimeSpan.FromMilliseconds(30));
        queue.AddAfter("a", TimeSpan.FromMilliseconds(10));
        queue.AddAfter("b", TimeSpan.FromMilliseconds(20));
        queue.AddAfter("d", TimeSpan.FromMilliseconds(20));

        time.Advance(TimeSpan.FromMilliseconds(9));
        Assert.Equal(0, queue.Len);
        time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal(1, queue.Len);
        time.Advance(TimeSpan.FromMilliseconds(20));

        Assert.Equal(["a", "b", "d", "c"], [await TakeAsync(queue), await TakeAsync(queue), await TakeAsync(queue), await TakeAsync(queue)]);
    }

    [Fact]
    public async Task A_change_is_handed_out_before_keys_that_fell_due_and_a_due_key_changed_moves_up_once()
    {
        using var queue = NewQueue();
        // A burst of routine looks (health periods) falls due together.
        foreach (var key in new[] { "r1", "r2", "r3" })
        {
            queue.AddAfter(key, TimeSpan.FromSeconds(10));
        }

        time.Advance(TimeSpan.FromSeconds(10));
        Assert.Equal(3, queue.Len);

        // Then changes arrive: a new key, and one of the due keys.
        queue.Add("change");
        queue.Add("r3");
        Assert.Equal(4, queue.Len);

        Assert.Equal("change", await TakeAsync(queue));
        Assert.Equal("r3", await TakeAsync(queue));
        Assert.Equal("r1", await TakeAsync(queue));
        Assert.Equal("r2", await TakeAsync(queue));
        Assert.Equal(0, queue.Len);
        // r3's routine entry went stale when it moved up: it is not handed out twice.
        var next = queue.GetAsync(Ct);
        Assert.NotSame(next, await Task.WhenAny(next, Task.Delay(50, Ct)));
    }

    [Fact]
    public async Task A_change_to_a_key_in_progress_is_queued_as_a_change_after_Done()
    {
        using var queue = NewQueue();
        queue.Add("a");
        Assert.Equal("a", await TakeAsync(queue));
        queue.AddAfter("a", TimeSpan.Zero); // a requeue while processing: routine
        queue.Add("a");                     // and a change to it meanwhile
        queue.AddAfter("b", TimeSpan.Zero);
        queue.Done("a");
        Assert.Equal("a", await TakeAsync(queue));
        Assert.Equal("b", await TakeAsync(queue));
    }

    [Fact]
    public void AddAfter_SameKeyTwice_KeepsTheEarlierDueTime()
    {
        using var queue = NewQueue();
        queue.AddAfter("a", TimeSpan.FromSeconds(10));
        queue.AddAfter("a", TimeSpan.FromSeconds(1));
        queue.AddAfter("a", TimeSpan.FromSeconds(5));

        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(1, queue.Len);
        time.Advance(TimeSpan.FromSeconds(10));
        Assert.Equal(1, queue.Len); // the superseded timers add nothing
    }

    [Fact]
    public void AddAfter_ZeroDelay_QueuesNow()
    {
        using var queue = NewQueue();
        queue.AddAfter("a", TimeSpan.Zero);
        Assert.Equal(1, queue.Len);
    }

    [Fact]
    public async Task ShutDownWithDrain_WaitsForInFlightWorkAndStopsHandingOut()
    {
        using var queue = NewQueue();
        queue.Add("a");
        queue.Add("b");
        var key = await TakeAsync(queue);

        var drain = queue.ShutDownWithDrainAsync(Ct);
        Assert.False(drain.IsCompleted);

        var (_, shutDown) = await queue.GetAsync(Ct);
        Assert.True(shutDown); // "b" is not handed out any more
        queue.Add("c");
        Assert.Equal(1, queue.Len); // adds are ignored

        queue.Done(key);
        await drain.WaitAsync(TimeSpan.FromSeconds(5), Ct);
    }

    [Fact]
    public async Task ShutDown_ReleasesWaitingGetters()
    {
        using var queue = NewQueue();
        var get = queue.GetAsync(Ct);

        queue.ShutDown();

        var (_, shutDown) = await get.WaitAsync(TimeSpan.FromSeconds(5), Ct);
        Assert.True(shutDown);
    }

    [Fact]
    public async Task Metrics_AreReported()
    {
        var metrics = new RecordingQueueMetrics();
        using var queue = new WorkQueue<string>("test", time: time, metrics: metrics);

        queue.Add("a");
        queue.Add("a");
        time.Advance(TimeSpan.FromMilliseconds(7));
        var key = await TakeAsync(queue);
        time.Advance(TimeSpan.FromMilliseconds(500)); // the periodic unfinished-work update
        Assert.Equal(TimeSpan.FromMilliseconds(500), metrics.Longest);
        time.Advance(TimeSpan.FromMilliseconds(3));
        queue.Done(key);
        queue.AddRateLimited("a");

        Assert.Equal(1, metrics.Adds);
        Assert.Equal(1, metrics.Retries);
        Assert.Equal(0, metrics.Depth);
        Assert.Equal([TimeSpan.FromMilliseconds(7)], metrics.QueueDurations);
        Assert.Equal([TimeSpan.FromMilliseconds(503)], metrics.WorkDurations);
    }

    private sealed class RecordingQueueMetrics : IWorkQueueMetrics
    {
        public int Adds { get; private set; }

        public int Retries { get; private set; }

        public int Depth { get; private set; }

        public TimeSpan Longest { get; private set; }

        public List<TimeSpan> QueueDurations { get; } = [];

        public List<TimeSpan> WorkDurations { get; } = [];

        public void Added() => Adds++;

        public void SetDepth(int depth) => Depth = depth;

        public void ObserveQueueDuration(TimeSpan duration) => QueueDurations.Add(duration);

        public void ObserveWorkDuration(TimeSpan duration) => WorkDurations.Add(duration);

        public void SetUnfinishedWork(TimeSpan unfinished, TimeSpan longestRunning) => Longest = longestRunning;

        public void Retried() => Retries++;
    }
}
