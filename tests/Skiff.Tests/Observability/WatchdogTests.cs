using Microsoft.Extensions.Time.Testing;
using Skiff.Observability;

namespace Skiff.Tests.Observability;

public class WatchdogTests
{
    private readonly FakeTimeProvider time = new();
    private readonly Watchdog watchdog;

    public WatchdogTests()
    {
        watchdog = new Watchdog(time);
        watchdog.Register("workers", TimeSpan.FromMinutes(10));
        watchdog.Register("watch", TimeSpan.FromMinutes(15));
    }

    [Fact]
    public void IdleComponent_IsHealthyForever()
    {
        time.Advance(TimeSpan.FromDays(3));

        Assert.True(watchdog.Healthy);
    }

    [Fact]
    public void BusyPastItsAllowedSilence_IsStuck_UntilTheClaimEnds()
    {
        var claim = watchdog.Busy("workers");
        time.Advance(TimeSpan.FromMinutes(10));
        Assert.True(watchdog.Healthy);

        time.Advance(TimeSpan.FromSeconds(1));
        Assert.False(watchdog.Healthy);
        Assert.Equal(["workers"], watchdog.Stuck());

        claim.Dispose();
        Assert.True(watchdog.Healthy);
    }

    [Fact]
    public void Beats_KeepALongRunningClaimHealthy()
    {
        using var watch = watchdog.Busy("watch");
        for (var i = 0; i < 10; i++)
        {
            time.Advance(TimeSpan.FromMinutes(14));
            watchdog.Beat("watch");
        }

        Assert.True(watchdog.Healthy);
        time.Advance(TimeSpan.FromMinutes(16));
        Assert.Equal(["watch"], watchdog.Stuck());
    }

    [Fact]
    public void ConcurrentWorkers_DoNotCoverForEachOther()
    {
        using var wedged = watchdog.Busy("workers");
        for (var i = 0; i < 6; i++)
        {
            time.Advance(TimeSpan.FromMinutes(2));
            using var quick = watchdog.Busy("workers");
            quick.Beat();
        }

        Assert.Equal(["workers"], watchdog.Stuck());
    }

    [Fact]
    public void Busy_OnAnUnregisteredComponent_Throws() =>
        Assert.Throws<InvalidOperationException>(() => watchdog.Busy("nobody"));
}
