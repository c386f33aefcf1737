using k8s.LeaderElection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Skiff.Sources.Kubernetes;

namespace Skiff.Tests.Sources;

/// <summary>
/// The lease elector against an in-memory lease that can be made unreachable, on a fake clock: client-go's renew loop
/// (retry every retry period until the renew deadline), and what it reports when it gives the lease up.
/// </summary>
public sealed class LeaseElectorTests
{
    private static readonly LeaseTimings Timings = LeaseTimings.Default;
    private static readonly TimeSpan Step = TimeSpan.FromMilliseconds(100);

    private readonly FakeTimeProvider time = new(new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero));
    private readonly FakeLeaseServer server = new();

    [Fact]
    public async Task Renewal_goes_on_through_an_outage_shorter_than_the_renew_deadline()
    {
        var elector = await LeaderAsync("me");
        using var stop = new CancellationTokenSource();
        var holding = elector.HoldAsync(stop.Token);

        var before = server.Requests;
        server.Down = true;
        await RunForAsync(TimeSpan.FromSeconds(7));
        var failedWhileDown = server.Requests - before;
        server.Down = false;
        var renewedBefore = server.Record!.RenewTime;
        await RunForAsync(TimeSpan.FromSeconds(5));

        Assert.False(holding.IsCompleted);
        Assert.True(elector.IsLeader);
        Assert.True(failedWhileDown >= 2, $"{failedWhileDown} attempts while the API was away");
        Assert.True(server.Record!.RenewTime > renewedBefore);
        Assert.Equal("me", server.Record.HolderIdentity);
        await stop.CancelAsync();
        Assert.Null(await holding);
    }

    [Fact]
    public async Task Renewal_gives_up_at_the_renew_deadline_saying_why_and_never_renews_afterwards()
    {
        var elector = await LeaderAsync("me");
        var holding = elector.HoldAsync(CancellationToken.None);

        server.Down = true;
        await RunForAsync(TimeSpan.FromSeconds(60), until: () => holding.IsCompleted);

        Assert.True(holding.IsCompleted);
        Assert.Equal("could not renew it for 10 s: Connection refused (127.0.0.1:6443)", await holding);
        Assert.False(elector.IsLeader);
        // Retried every retry period within the deadline (client-go's PollImmediateUntil), not given up at the first error.
        Assert.True(server.Requests >= 5, $"{server.Requests} attempts before giving up");
        server.Down = false;
        var writes = server.Writes;
        await RunForAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(writes, server.Writes);
    }

    [Fact]
    public async Task An_attempt_cut_off_by_the_renew_deadline_keeps_the_error_before_it_as_the_reason()
    {
        var elector = await LeaderAsync("me");
        var holding = elector.HoldAsync(CancellationToken.None);

        server.Down = true;
        await RunForAsync(TimeSpan.FromSeconds(5));
        Assert.False(holding.IsCompleted);
        server.Hangs = true; // the next attempt is still waiting when the deadline passes
        await RunForAsync(TimeSpan.FromSeconds(60), until: () => holding.IsCompleted);

        Assert.True(holding.IsCompleted);
        Assert.Equal("could not renew it for 10 s: Connection refused (127.0.0.1:6443); the last attempt had no answer by the renew deadline", await holding);
        Assert.False(elector.IsLeader);
    }

    [Fact]
    public async Task When_no_attempt_is_answered_the_reason_says_so()
    {
        var elector = await LeaderAsync("me");
        var holding = elector.HoldAsync(CancellationToken.None);

        server.Hangs = true;
        await RunForAsync(TimeSpan.FromSeconds(60), until: () => holding.IsCompleted);

        Assert.Equal("could not renew it for 10 s: the API server did not answer within the renew deadline", await holding);
    }

    [Fact]
    public async Task A_lease_that_names_another_holder_is_given_up_at_the_next_renewal()
    {
        var elector = await LeaderAsync("me");
        var holding = elector.HoldAsync(CancellationToken.None);

        server.Take("other", time.GetUtcNow());
        await RunForAsync(TimeSpan.FromSeconds(30), until: () => holding.IsCompleted);

        Assert.Equal("it is now held by other", await holding);
        Assert.Equal("other", server.Record!.HolderIdentity);
        Assert.False(elector.IsLeader);
    }

    [Fact]
    public async Task Acquiring_takes_a_lease_nobody_renews_once_it_expires()
    {
        server.Take("crashed", time.GetUtcNow());
        var elector = Elector("me");

        var acquiring = elector.AcquireAsync(yieldToLiveHolder: true, CancellationToken.None);
        await RunForAsync(TimeSpan.FromSeconds(10));
        Assert.False(acquiring.IsCompleted);
        await RunForAsync(TimeSpan.FromSeconds(30), until: () => acquiring.IsCompleted);

        Assert.Equal(new LeaseAcquisition(true, null), await acquiring);
        Assert.Equal(("me", 1), (server.Record!.HolderIdentity, server.Record.LeaderTransitions));
    }

    [Fact]
    public async Task Acquiring_for_once_yields_to_a_holder_that_renews_and_otherwise_waits()
    {
        server.Take("running", time.GetUtcNow());
        var once = Elector("once").AcquireAsync(yieldToLiveHolder: true, CancellationToken.None);
        using var stop = new CancellationTokenSource();
        var standby = Elector("standby").AcquireAsync(yieldToLiveHolder: false, stop.Token);

        await RunForAsync(TimeSpan.FromSeconds(30), until: () => once.IsCompleted, everyTwoSeconds: () => server.Take("running", time.GetUtcNow()));

        Assert.Equal(new LeaseAcquisition(false, "running"), await once);
        Assert.False(standby.IsCompleted);
        Assert.Equal("running", server.Record!.HolderIdentity);
        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => standby);
    }

    [Fact]
    public async Task A_released_lease_is_taken_by_the_next_instance_at_its_first_attempt()
    {
        var first = await LeaderAsync("first");

        await first.ReleaseAsync(CancellationToken.None);
        var requests = server.Requests;
        var next = await Elector("next").AcquireAsync(yieldToLiveHolder: true, CancellationToken.None);

        Assert.Equal(new LeaseAcquisition(true, null), next);
        Assert.Equal(2, server.Requests - requests); // one read, one write: no waiting for an expiry
        Assert.False(first.IsLeader);
    }

    [Fact]
    public async Task A_renewal_written_after_its_caller_gave_up_does_not_keep_the_release_from_giving_the_lease_back()
    {
        var first = await LeaderAsync("first");
        // The stop cut off a renewal the server had already applied: the lease moved on past the version the lock saw.
        server.Take("first", time.GetUtcNow());
        var version = server.Version;

        await first.ReleaseAsync(CancellationToken.None);

        Assert.Equal("", server.Record!.HolderIdentity);
        Assert.Equal(1, server.Record.LeaseDurationSeconds);
        Assert.True(server.Version > version);
        Assert.False(first.IsLeader);
    }

    [Fact]
    public async Task A_lease_another_instance_took_meanwhile_is_not_released()
    {
        var first = await LeaderAsync("first");
        server.Take("second", time.GetUtcNow());

        await first.ReleaseAsync(CancellationToken.None);

        Assert.Equal("second", server.Record!.HolderIdentity);
        Assert.Equal(15, server.Record.LeaseDurationSeconds);
    }

    private LeaseElector Elector(string identity) => new(new FakeLock(server, identity), Timings, NullLogger.Instance, time);

    private async Task<LeaseElector> LeaderAsync(string identity)
    {
        var elector = Elector(identity);
        Assert.True((await elector.AcquireAsync(yieldToLiveHolder: false, CancellationToken.None)).Acquired);
        return elector;
    }

    /// <summary>Moves the fake clock on in small steps, letting the elector's continuations run between them.</summary>
    private async Task RunForAsync(TimeSpan span, Func<bool>? until = null, Action? everyTwoSeconds = null)
    {
        for (var elapsed = TimeSpan.Zero; elapsed < span && until?.Invoke() != true; elapsed += Step)
        {
            time.Advance(Step);
            if (everyTwoSeconds is not null && elapsed.Ticks % TimeSpan.FromSeconds(2).Ticks == 0)
            {
                everyTwoSeconds();
            }

            await Task.Delay(2);
        }
    }

    /// <summary>The Lease as the API server stores it, shared by the instances' locks; Down refuses every request.</summary>
    private sealed class FakeLeaseServer
    {
        private readonly Lock gate = new();
        private LeaderElectionRecord? record;
        private int requests;
        private int writes;
        private long version;

        /// <summary>The Lease's resourceVersion: every write moves it on.</summary>
        public long Version
        {
            get
            {
                lock (gate)
                {
                    return version;
                }
            }
        }

        public bool Down { get; set; }

        /// <summary>Reads hang until the caller gives up (a server that accepted the connection and never answers).</summary>
        public bool Hangs { get; set; }

        public LeaderElectionRecord? Record
        {
            get
            {
                lock (gate)
                {
                    return record is null ? null : Copy(record);
                }
            }
        }

        public int Requests => Volatile.Read(ref requests);

        public int Writes => Volatile.Read(ref writes);

        /// <summary>Another instance writes the lease (it took it, or renews it).</summary>
        public void Take(string holder, DateTimeOffset now)
        {
            lock (gate)
            {
                var transitions = record is null ? 0 : record.HolderIdentity == holder ? record.LeaderTransitions : record.LeaderTransitions + 1;
                record = new LeaderElectionRecord
                {
                    HolderIdentity = holder,
                    LeaseDurationSeconds = 15,
                    AcquireTime = now.UtcDateTime,
                    RenewTime = now.UtcDateTime,
                    LeaderTransitions = transitions,
                };
                version++;
            }
        }

        /// <summary>The record and its version.</summary>
        public (LeaderElectionRecord Record, long Version) Get()
        {
            Enter();
            lock (gate)
            {
                return record is null
                    ? throw new k8s.Autorest.HttpOperationException("not found")
                    {
                        Response = new k8s.Autorest.HttpResponseMessageWrapper(new HttpResponseMessage(System.Net.HttpStatusCode.NotFound), ""),
                    }
                    : (Copy(record), version);
            }
        }

        /// <summary>A conditional write, as a replace carrying the resourceVersion the writer read: refused (409) when the
        /// Lease was written since. Returns the new version, or null.</summary>
        public long? Write(LeaderElectionRecord value, bool create, long readVersion)
        {
            Enter();
            lock (gate)
            {
                if (create == record is not null || (!create && readVersion != version))
                {
                    return null;
                }

                record = Copy(value);
                writes++;
                return ++version;
            }
        }

        private void Enter()
        {
            Interlocked.Increment(ref requests);
            if (Down)
            {
                throw new HttpRequestException("Connection refused (127.0.0.1:6443)");
            }
        }

        private static LeaderElectionRecord Copy(LeaderElectionRecord r) => new()
        {
            HolderIdentity = r.HolderIdentity,
            LeaseDurationSeconds = r.LeaseDurationSeconds,
            AcquireTime = r.AcquireTime,
            RenewTime = r.RenewTime,
            LeaderTransitions = r.LeaderTransitions,
        };
    }

    /// <summary>As KubernetesClient's LeaseLock: an update replaces the Lease with the version its last read or write saw.</summary>
    private sealed class FakeLock(FakeLeaseServer server, string identity) : ILock
    {
        private long seen = -1;

        public string Identity => identity;

        public async Task<LeaderElectionRecord> GetAsync(CancellationToken cancellationToken = default)
        {
            if (server.Hangs)
            {
                await Task.Delay(Timeout.Infinite, cancellationToken);
            }

            var (record, version) = server.Get();
            seen = version;
            return record;
        }

        public Task<bool> CreateAsync(LeaderElectionRecord record, CancellationToken cancellationToken = default) => Task.FromResult(Saw(server.Write(record, create: true, seen)));

        public Task<bool> UpdateAsync(LeaderElectionRecord record, CancellationToken cancellationToken = default) => Task.FromResult(Saw(server.Write(record, create: false, seen)));

        private bool Saw(long? version)
        {
            if (version is { } v)
            {
                seen = v;
            }

            return version is not null;
        }

        public string Describe() => "default/skiff-vps-1";
    }
}
