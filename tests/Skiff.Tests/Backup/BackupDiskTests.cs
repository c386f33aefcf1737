using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Skiff.Backup;
using Skiff.Reconcile;
using Skiff.IntegrationTests.Infrastructure;
using Skiff.Tests.Reconcile;

namespace Skiff.Tests.Backup;

/// <summary>
/// A backup that would take the backup folder's disk over the node's image GC high threshold is refused before
/// pg_dump runs (issue 19): the threshold is the policy's, read at each backup, not a fixed number.
/// </summary>
public sealed class BackupDiskTests : IDisposable
{
    private static readonly StackNames Names = new("prod", "api");
    private readonly string folder = Directory.CreateTempSubdirectory("skiff-backup-disk-").FullName;
    private readonly FakeTimeProvider clock = new(new DateTimeOffset(2026, 1, 1, 3, 0, 0, TimeSpan.Zero));

    public void Dispose() => Directory.Delete(folder, recursive: true);

    [Theory]
    [InlineData(85, true)]
    [InlineData(95, false)]
    public async Task The_last_dump_s_size_is_weighed_against_the_policy_s_high_threshold(int highThreshold, bool refused)
    {
        var engine = new InMemoryEngine(clock);
        engine.Images.Add("postgres:16");
        var database = await engine.CreateContainerAsync(new ContainerSpec { Name = Names.DatabaseContainer, Image = "postgres:16", Network = Names.Network }, CancellationToken.None);
        await engine.StartContainerAsync(database, CancellationToken.None);
        var job = new BackupJob(Names, folder, 3, "0 3 * * *", "postgres:16", new DatabaseCredentials("app", "secret", "app"), new Dictionary<string, string>());
        // The last dump was 10 bytes; the disk is 80 % full: another would make it 90 %.
        File.WriteAllBytes(Path.Combine(folder, job.FileName(clock.GetUtcNow().AddDays(-1), BackupFiles.DumpExtension)), new byte[10]);
        var runner = new BackupRunner(engine, NullLogger.Instance, clock)
        {
            MeasureDisk = _ => (80, 100),
            HighThresholdPercent = () => highThreshold,
        };

        using var stop = new CancellationTokenSource();
        var backup = runner.BackupAsync(job, stop.Token);
        if (refused)
        {
            var result = await backup.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.False(result.Ok);
            Assert.Contains($"would take it over the {highThreshold} % high threshold", result.Message, StringComparison.Ordinal);
            Assert.DoesNotContain(engine.Calls, c => c.StartsWith("container_create " + job.DumpContainer, StringComparison.Ordinal));
            return;
        }

        // Under the threshold: pg_dump's container is created (the in-memory engine never ends it: the test stops there).
        await Eventually.TrueAsync("pg_dump starts", () => engine.Calls.Any(c => c.StartsWith("container_create " + job.DumpContainer, StringComparison.Ordinal)), TimeSpan.FromSeconds(30));
        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => backup);
    }

    [Theory]
    [InlineData("healthy", null)]
    [InlineData("unhealthy", "is unhealthy (its health check, pg_isready, fails)")]
    public async Task A_backup_waits_for_a_database_still_starting_and_refuses_an_unhealthy_one(string becomes, string? refusal)
    {
        var engine = new InMemoryEngine(clock);
        engine.Images.Add("postgres:16");
        var database = await engine.CreateContainerAsync(new ContainerSpec
        {
            Name = Names.DatabaseContainer,
            Image = "postgres:16",
            Network = Names.Network,
            Healthcheck = new HealthProbe(["CMD", "pg_isready"], TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(5), 3, TimeSpan.Zero),
        }, CancellationToken.None);
        await engine.StartContainerAsync(database, CancellationToken.None);
        var job = new BackupJob(Names, folder, 3, "0 3 * * *", "postgres:16", new DatabaseCredentials("app", "secret", "app"), new Dictionary<string, string>());
        var runner = new BackupRunner(engine, NullLogger.Instance, clock) { MeasureDisk = _ => (10, 100) };

        using var stop = new CancellationTokenSource();
        var backup = runner.BackupAsync(job, stop.Token);
        // Still "starting": no pg_dump yet, however long the runner polls.
        for (var i = 0; i < 20; i++)
        {
            clock.Advance(TimeSpan.FromMilliseconds(200));
            await Task.Delay(5);
        }

        Assert.DoesNotContain(engine.Calls, c => c.StartsWith("container_create " + job.DumpContainer, StringComparison.Ordinal));
        engine.SetHealth(Names.DatabaseContainer, becomes);
        if (refusal is not null)
        {
            await Eventually.TrueAsync("the backup ends", () => { clock.Advance(TimeSpan.FromMilliseconds(200)); return backup.IsCompleted; }, TimeSpan.FromSeconds(30));
            var result = await backup;
            Assert.False(result.Ok);
            Assert.Contains(refusal, result.Message, StringComparison.Ordinal);
            Assert.DoesNotContain(engine.Calls, c => c.StartsWith("container_create " + job.DumpContainer, StringComparison.Ordinal));
            return;
        }

        await Eventually.TrueAsync("pg_dump starts once the database is healthy", () =>
        {
            clock.Advance(TimeSpan.FromMilliseconds(200));
            return engine.Calls.Any(c => c.StartsWith("container_create " + job.DumpContainer, StringComparison.Ordinal));
        }, TimeSpan.FromSeconds(30));
        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => backup);
    }
}
