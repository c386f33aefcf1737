using Microsoft.Extensions.Time.Testing;
using Skiff.Observability;

namespace Skiff.Tests.Observability;

public class HealthChecksTests
{
    private readonly FakeTimeProvider time = new();

    [Fact]
    public async Task CachedCheck_RunsOncePerPeriod()
    {
        var runs = 0;
        var health = new HealthChecks(time);
        health.AddReadiness("docker", _ => Task.FromResult(Interlocked.Increment(ref runs) > 0), TimeSpan.FromSeconds(2));

        for (var i = 0; i < 5; i++)
        {
            Assert.True((await health.CheckReadinessAsync(CancellationToken.None)).Healthy);
        }

        Assert.Equal(1, runs);
        time.Advance(TimeSpan.FromSeconds(2));
        await health.CheckReadinessAsync(CancellationToken.None);
        Assert.Equal(2, runs);
    }

    [Fact]
    public async Task ThrowingCheck_Fails_AndOthersStillRun()
    {
        var health = new HealthChecks(time);
        health.AddLiveness("broken", () => throw new InvalidOperationException("boom"));
        health.AddLiveness("fine", () => true);

        var report = await health.CheckLivenessAsync(CancellationToken.None);

        Assert.Equal(["broken"], report.Failed);
        Assert.Equal(["fine"], report.Passed);
    }

    [Fact]
    public async Task HangingCheck_FailsAfterTheTimeout()
    {
        var health = new HealthChecks(checkTimeout: TimeSpan.FromMilliseconds(100));
        health.AddReadiness("hangs", async ct => { await Task.Delay(Timeout.Infinite, ct); return true; }, TimeSpan.Zero);

        var report = await health.CheckReadinessAsync(CancellationToken.None);

        Assert.Equal(["hangs"], report.Failed);
    }

    [Fact]
    public void DuplicateName_Throws()
    {
        var health = new HealthChecks(time);
        health.AddReadiness("docker", () => true);

        Assert.Throws<ArgumentException>(() => health.AddReadiness("docker", () => true));
    }
}
