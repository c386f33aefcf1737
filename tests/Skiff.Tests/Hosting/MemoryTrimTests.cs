using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Skiff.Hosting;

namespace Skiff.Tests.Hosting;

public class MemoryTrimTests
{
    private const long MiB = 1L << 20;

    /// <summary>A heap whose figures the test sets; counts the collections asked of it.</summary>
    private sealed class FakeHeap
    {
        private MemoryTrim.Reading now = new(10 * MiB, 14 * MiB);

        public MemoryTrim.Reading Now
        {
            get
            {
                Interlocked.Increment(ref reads);
                return now;
            }
            set => now = value;
        }

        private int reads;

        /// <summary>How often the heap was read.</summary>
        public int Reads => Volatile.Read(ref reads);

        public int Collections { get; private set; }

        /// <summary>What the heap looks like after a collection.</summary>
        public MemoryTrim.Reading AfterCollect { get; set; } = new(10 * MiB, 14 * MiB);

        public void Collect()
        {
            Collections++;
            Now = AfterCollect;
        }

        /// <summary>Readings (1 = the first) at which the file pages were given back.</summary>
        public List<int> Releases { get; } = [];

        public FilePages.Result? Release()
        {
            Releases.Add(Reads);
            return new FilePages.Result(3, 20 * MiB, 70 * MiB, 50 * MiB);
        }
    }

    /// <summary>A trim over a fake heap and clock; <paramref name="release"/> replaces the heap's fake release.</summary>
    private static (MemoryTrim Trim, FakeHeap Heap, FakeTimeProvider Time) Create(Func<FilePages.Result?>? release = null)
    {
        var heap = new FakeHeap();
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 5, 12, 0, 0, TimeSpan.Zero));
        return (new MemoryTrim(NullLogger.Instance, time, () => heap.Now, heap.Collect, release ?? heap.Release), heap, time);
    }

    [Fact]
    public void File_pages_are_given_back_once_the_start_has_settled_and_after_each_trim()
    {
        var (trim, heap, time) = Create();
        heap.Now = new(10 * MiB, 14 * MiB); // no slack: no trim
        for (var i = 0; i < 5; i++)
        {
            Assert.False(trim.Check());
            time.Advance(MemoryTrim.Period);
        }

        Assert.Equal([MemoryTrim.SettleReadings], heap.Releases);

        heap.Now = new(12 * MiB, 60 * MiB);
        Assert.False(trim.Check()); // reading 6
        time.Advance(MemoryTrim.Period);
        Assert.True(trim.Check()); // reading 7 trims; the release reads the heap after the collection
        Assert.Equal(2, heap.Releases.Count);
        Assert.Equal(1, heap.Collections);
    }

    [Fact]
    public void A_release_that_fails_leaves_the_trim_running()
    {
        var (trim, heap, time) = Create(() => throw new IOException("/proc/self/pagemap: no such file"));
        heap.Now = new(12 * MiB, 60 * MiB);

        Assert.False(trim.Check());
        time.Advance(MemoryTrim.Period);
        Assert.True(trim.Check()); // reading 2: both the settle release and the trim's, each failing quietly
        Assert.Equal(1, heap.Collections);
    }

    [Fact]
    public void Slack_left_by_a_burst_is_collected_once_it_has_stayed_a_period()
    {
        var (trim, heap, time) = Create();
        heap.Now = new(12 * MiB, 60 * MiB);

        Assert.False(trim.Check());
        Assert.Equal(0, heap.Collections);

        time.Advance(MemoryTrim.Period);
        Assert.True(trim.Check());
        Assert.Equal(1, heap.Collections);
    }

    [Fact]
    public void A_heap_whose_slack_is_small_or_smaller_than_its_objects_is_left_alone()
    {
        var (trim, heap, time) = Create();
        foreach (var reading in new MemoryTrim.Reading[]
                 {
                     new(4 * MiB, 4 * MiB + MemoryTrim.MinSlackBytes - 1), // under the floor
                     new(40 * MiB, 70 * MiB), // 30 MiB of slack, but the objects hold more
                     new(4 * MiB, 2 * MiB), // committed below live (a reading between collections)
                 })
        {
            heap.Now = reading;
            for (var i = 0; i < 3; i++)
            {
                Assert.False(trim.Check());
                time.Advance(MemoryTrim.Period);
            }
        }

        Assert.Equal(0, heap.Collections);
    }

    [Fact]
    public void A_heap_that_used_its_slack_between_two_readings_is_not_collected()
    {
        var (trim, heap, time) = Create();
        heap.Now = new(12 * MiB, 60 * MiB);
        Assert.False(trim.Check());

        // Still busy: the burst grew into the slack.
        time.Advance(MemoryTrim.Period);
        heap.Now = new(50 * MiB, 60 * MiB);
        Assert.False(trim.Check());

        // Over: one reading with slack again is not yet enough, the second is.
        time.Advance(MemoryTrim.Period);
        heap.Now = new(12 * MiB, 60 * MiB);
        Assert.False(trim.Check());
        time.Advance(MemoryTrim.Period);
        Assert.True(trim.Check());
        Assert.Equal(1, heap.Collections);
    }

    [Fact]
    public void Trims_are_at_least_the_minimum_interval_apart()
    {
        var (trim, heap, time) = Create();
        heap.AfterCollect = new(12 * MiB, 60 * MiB); // the slack comes back at once: a heap that keeps bursting
        heap.Now = heap.AfterCollect;
        Assert.False(trim.Check());
        time.Advance(MemoryTrim.Period);
        Assert.True(trim.Check());

        var trimmedAt = time.GetUtcNow();
        while (time.GetUtcNow() - trimmedAt < MemoryTrim.MinInterval)
        {
            Assert.False(trim.Check());
            time.Advance(MemoryTrim.Period);
        }

        Assert.Equal(1, heap.Collections);
        Assert.True(trim.Check());
        Assert.Equal(2, heap.Collections);
    }

    [Fact]
    public async Task The_loop_reads_the_heap_every_period_until_cancelled()
    {
        var (trim, heap, time) = Create();
        heap.Now = new(12 * MiB, 60 * MiB);
        using var cts = new CancellationTokenSource();
        var running = trim.RunAsync(cts.Token);

        time.Advance(MemoryTrim.Period);
        await WaitUntil(() => heap.Reads == 1); // (a timer's ticks not yet awaited are one tick)
        Assert.Equal(0, heap.Collections);
        time.Advance(MemoryTrim.Period);
        await WaitUntil(() => heap.Collections == 1);

        await cts.CancelAsync();
        await running; // ends quietly
    }

    [Fact]
    public void The_real_collection_decommits_a_burst_of_garbage()
    {
        var burst = new List<byte[]>();
        for (var i = 0; i < 64; i++)
        {
            burst.Add(new byte[1 << 20]);
        }

        GC.Collect(); // the figures are those of the last collection: one with the burst alive
        var peak = MemoryTrim.ReadGc();
        GC.KeepAlive(burst);
        burst = null;
        var gen2 = GC.CollectionCount(2);
        MemoryTrim.CollectAggressively();

        Assert.True(GC.CollectionCount(2) > gen2);
        var after = MemoryTrim.ReadGc();
        Assert.True(peak.LiveBytes >= 64 * MiB, $"{peak.LiveBytes / MiB} MiB live with the burst");
        Assert.True(after.CommittedBytes < peak.CommittedBytes - 32 * MiB,
            $"committed {after.CommittedBytes / MiB} MiB after the collection, {peak.CommittedBytes / MiB} MiB with the 64 MiB burst alive");
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "timed out");
            await Task.Delay(10);
        }
    }
}
