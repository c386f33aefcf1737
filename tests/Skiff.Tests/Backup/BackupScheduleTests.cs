using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Skiff.Api;
using Skiff.Backup;
using Skiff.Reconcile;
using Skiff.Tests.Reconcile;
using Skiff.Validation;
using Skiff.IntegrationTests.Infrastructure;

namespace Skiff.Tests.Backup;

/// <summary>The backup schedule, driven by a fake clock: when backups are due, and the scheduler that runs them.</summary>
public sealed class BackupScheduleTests
{
    private static readonly DateTimeOffset Start = new(2026, 1, 1, 2, 0, 0, TimeSpan.Zero);

    [Fact]
    public void A_daily_schedule_is_due_once_at_its_time_and_then_the_next_day()
    {
        var schedule = new BackupSchedule();
        var stacks = new[] { ("prod/api", "0 3 * * *") };

        Assert.Empty(schedule.Due(stacks, Start));
        Assert.Equal(Start.AddHours(1), schedule.NextFor("prod/api"));
        Assert.Empty(schedule.Due(stacks, Start.AddMinutes(59)));
        Assert.Equal(["prod/api"], schedule.Due(stacks, Start.AddHours(1)));

        schedule.Ran("prod/api", Start.AddHours(1).AddSeconds(20));
        Assert.Empty(schedule.Due(stacks, Start.AddHours(2)));
        Assert.Equal(Start.AddHours(25), schedule.NextFor("prod/api"));
        Assert.Equal(["prod/api"], schedule.Due(stacks, Start.AddHours(25)));
    }

    [Fact]
    public void Missed_occurrences_are_not_caught_up_and_a_changed_schedule_starts_over()
    {
        var schedule = new BackupSchedule();
        Assert.Empty(schedule.Due([("prod/api", "0 3 * * *")], Start));

        // The operator was busy (or stopped) for three days: one backup, then the next occurrence after it.
        Assert.Equal(["prod/api"], schedule.Due([("prod/api", "0 3 * * *")], Start.AddDays(3)));
        schedule.Ran("prod/api", Start.AddDays(3));
        Assert.Equal(Start.AddDays(3).AddHours(1), schedule.NextFor("prod/api"));

        // A new schedule is not due at once: its first occurrence is after the change was seen.
        Assert.Empty(schedule.Due([("prod/api", "*/10 * * * *")], Start.AddDays(3).AddMinutes(5)));
        Assert.Equal(Start.AddDays(3).AddMinutes(10), schedule.NextFor("prod/api"));
    }

    [Fact]
    public void Stacks_gone_from_the_list_are_forgotten_and_invalid_schedules_never_run()
    {
        var schedule = new BackupSchedule();
        schedule.Due([("a/x", "* * * * *"), ("a/bad", "not cron")], Start);
        Assert.NotNull(schedule.NextFor("a/x"));
        Assert.Null(schedule.NextFor("a/bad"));
        Assert.Empty(schedule.Due([("a/bad", "not cron")], Start.AddDays(1)));
        Assert.Null(schedule.NextFor("a/x"));
    }

    [Theory]
    [InlineData("0 3 * * *", null)]
    [InlineData("*/5 * * * * *", null)]
    [InlineData("", "required")]
    [InlineData("0 3 * *", "5 fields")]
    [InlineData("0 25 * * *", "not a valid cron schedule")]
    public void Schedules_are_checked_with_a_message_naming_the_problem(string text, string? problem)
    {
        var parsed = CronSchedule.TryParse(text, out var error);
        if (problem is null)
        {
            Assert.NotNull(parsed);
            Assert.Null(error);
        }
        else
        {
            Assert.Null(parsed);
            Assert.Contains(problem, error, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Validation_names_the_field_of_a_bad_backup_spec()
    {
        var resource = Resource("0 3 * * 8", retain: 0, path: "backups");
        var errors = ResourceValidator.Validate(resource).ToDictionary(e => e.Path, e => e.Message);

        Assert.Contains("spec.database.backup.schedule", errors.Keys);
        Assert.Contains("spec.database.backup.retain", errors.Keys);
        Assert.Contains("spec.database.backup.path", errors.Keys);
        Assert.Empty(ResourceValidator.Validate(Resource("0 3 * * *", retain: 3, path: "/var/backups/skiff")));
    }

    [Fact]
    public void A_backup_spec_does_not_change_the_spec_hash()
    {
        var without = Resource("0 3 * * *", 3, "/b");
        without.Spec.Database!.Backup = null;
        Assert.Equal(SpecHash.Compute(without.Spec), SpecHash.Compute(Resource("0 3 * * *", 3, "/b").Spec));
        Assert.Equal(SpecHash.Compute(Resource("0 4 * * *", 5, "/c").Spec), SpecHash.Compute(Resource("0 3 * * *", 3, "/b").Spec));
    }

    [Fact]
    public async Task The_scheduler_takes_a_backup_when_the_fake_clock_reaches_the_schedule_and_reports_a_failure()
    {
        var clock = new FakeTimeProvider(Start);
        var engine = new InMemoryEngine(clock);
        var events = new RecordingEvents();
        var ledger = new BackupLedger();
        var requeued = new List<string>();
        var resource = Resource("0 3 * * *", 2, "/nonexistent-skiff-backups");
        var scheduler = new BackupScheduler(
            () => [resource], new StaticSecrets(), new StackContext("local", "src", "test"),
            new BackupRunner(engine, NullLogger.Instance, clock), ledger, events, names => requeued.Add(names.Key), null, NullLogger.Instance, clock);
        using var cts = new CancellationTokenSource();
        var running = scheduler.RunAsync(cts.Token);

        await Eventually.TrueAsync("the scheduler sees the stack", () => scheduler.NextFor(new StackNames("prod", "api")) is not null, TimeSpan.FromSeconds(10));
        Assert.Equal(Start.AddHours(1), scheduler.NextFor(new StackNames("prod", "api")));
        clock.Advance(TimeSpan.FromMinutes(59));
        await Task.Delay(100);
        Assert.Empty(events.Recorded);

        clock.Advance(TimeSpan.FromMinutes(1));
        await Eventually.TrueAsync("one backup ran at 03:00", () => events.Recorded.Count == 1, TimeSpan.FromSeconds(10));
        // The in-memory engine has no database container: the backup fails, and says why, without touching anything.
        var (kind, reason, message) = events.Recorded.Single();
        Assert.Equal((EventKind.Warning, Reasons.BackupFailed), (kind, reason));
        Assert.Contains("database container skiff_prod_api_database is not running", message, StringComparison.Ordinal);
        Assert.Equal(["prod/api"], requeued);

        var status = new AppDeploymentStatus();
        ledger.Apply(new StackNames("prod", "api"), status, 1);
        Assert.Equal("True", Conditions.Get(status, ConditionTypes.BackupFailed)?.Status);
        Assert.Null(status.LastBackup);
        await Eventually.TrueAsync("the next is tomorrow", () => scheduler.NextFor(new StackNames("prod", "api")) == Start.AddDays(1).AddHours(1), TimeSpan.FromSeconds(10));

        await cts.CancelAsync();
        await running;
    }

    [Fact]
    public void The_ledger_sets_lastBackup_and_clears_BackupFailed_after_a_good_backup()
    {
        var ledger = new BackupLedger();
        var names = new StackNames("prod", "api");
        var status = new AppDeploymentStatus();
        ledger.Apply(names, status, 1);
        Assert.Null(Conditions.Get(status, ConditionTypes.BackupFailed));

        ledger.Record(names, new BackupResult(false, "pg_dump exited 1", null, TimeSpan.FromSeconds(1)), Start);
        ledger.Apply(names, status, 1);
        Assert.Equal("pg_dump exited 1", Conditions.Get(status, ConditionTypes.BackupFailed)?.Message);

        var file = new BackupFile("/b/prod_api_20260101T030000Z.dump", Start, 1234);
        ledger.Record(names, new BackupResult(true, "ok", file, TimeSpan.FromSeconds(1)) { Verified = (2, 10) }, Start.AddMinutes(1));
        ledger.Apply(names, status, 1);
        Assert.Equal("False", Conditions.Get(status, ConditionTypes.BackupFailed)?.Status);
        Assert.Equal(Reasons.BackupSucceeded, Conditions.Get(status, ConditionTypes.BackupFailed)?.Reason);
        Assert.Equal((file.Path, 1234L, true), (status.LastBackup!.File, status.LastBackup.Bytes!.Value, status.LastBackup.Verified!.Value));
    }

    [Fact]
    public void Retention_keeps_the_newest_files_of_the_stack_only_and_partials_never_count()
    {
        var folder = Path.Combine(Path.GetTempPath(), "skiff-backup-unit-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(folder);
        try
        {
            var names = new StackNames("prod", "api");
            foreach (var hour in new[] { 1, 2, 3, 4 })
            {
                File.WriteAllText(Path.Combine(folder, $"prod_api_20260101T0{hour}0000Z.dump"), "x");
            }

            File.WriteAllText(Path.Combine(folder, "prod_apix_20260101T010000Z.dump"), "other stack");
            File.WriteAllText(Path.Combine(folder, ".prod_api_20260101T050000Z.dump.partial"), "half");

            Assert.Equal(4, BackupFiles.List(folder, names).Count);
            var removed = BackupFiles.Prune(folder, names, 2);
            Assert.Equal(2, removed.Count);
            Assert.Equal(["prod_api_20260101T040000Z.dump", "prod_api_20260101T030000Z.dump"], BackupFiles.List(folder, names).Select(f => Path.GetFileName(f.Path)));
            Assert.True(File.Exists(Path.Combine(folder, "prod_apix_20260101T010000Z.dump")));
            Assert.Equal(1, BackupFiles.RemovePartials(folder, names));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public void Verification_compares_tables_with_the_live_statistics()
    {
        var live = BackupRunner.ParseCounts("public.visits|42\npublic.empty|0\n");
        Assert.Null(BackupRunner.Compare(live, BackupRunner.ParseCounts("public.visits|40\npublic.empty|0\npublic.new|1")));
        Assert.Contains("public.empty", BackupRunner.Compare(live, BackupRunner.ParseCounts("public.visits|40")), StringComparison.Ordinal);
        Assert.Contains("came back empty: public.visits", BackupRunner.Compare(live, BackupRunner.ParseCounts("public.visits|0\npublic.empty|0")), StringComparison.Ordinal);
    }

    private static AppDeployment Resource(string schedule, int retain, string path) => new()
    {
        Metadata = new k8s.Models.V1ObjectMeta { Name = "api", NamespaceProperty = "prod" },
        Spec = new AppDeploymentSpec
        {
            Node = "local",
            App = new AppSpec { Image = "skiff-test/app:1" },
            Database = new DatabaseSpec { Backup = new BackupSpec { Schedule = schedule, Retain = retain, Path = path } },
        },
    };

    private sealed class RecordingEvents : IEventSink
    {
        public List<(EventKind Kind, string Reason, string Message)> Recorded { get; } = [];

        public void Record(AppDeployment resource, EventKind kind, string reason, string message)
        {
            lock (Recorded)
            {
                Recorded.Add((kind, reason, message));
            }
        }
    }

    private sealed class StaticSecrets : ISecretSource
    {
        public Task<IReadOnlyDictionary<string, byte[]>?> GetSecretAsync(string @namespace, string name, CancellationToken ct) =>
            Task.FromResult<IReadOnlyDictionary<string, byte[]>?>(null);

        public Task<DatabaseCredentials> EnsureDatabaseCredentialsAsync(StackNames names, string database, string user, CancellationToken ct) =>
            Task.FromResult(new DatabaseCredentials(user, "pw", database));

        public Task DeleteDatabaseCredentialsAsync(StackNames names, CancellationToken ct) => Task.CompletedTask;
    }
}

/// <summary>The backup metrics, scraped as Prometheus sees them.</summary>
public sealed class BackupMetricsTests
{
    [Fact]
    public async Task A_good_backup_sets_the_stack_series_and_a_failed_one_leaves_them()
    {
        await using var server = await Skiff.Tests.Observability.TestServer.StartAsync();
        var metrics = new Skiff.Observability.SkiffMetrics(server.Registry);
        var at = new DateTimeOffset(2026, 1, 1, 3, 0, 0, TimeSpan.Zero);
        metrics.BackupEnded("prod", "api", true, TimeSpan.FromSeconds(12), 4096, at);
        metrics.BackupEnded("prod", "api", false, TimeSpan.FromSeconds(1), null, null);
        metrics.SetBackupInterval("prod", "api", TimeSpan.FromDays(1));

        var scrape = await server.ScrapeAsync();
        var stack = new[] { ("namespace", "prod"), ("name", "api") };
        Assert.Equal(at.ToUnixTimeSeconds(), scrape.Value("skiff_backup_last_success_timestamp_seconds", stack));
        Assert.Equal(4096, scrape.Value("skiff_backup_bytes", stack));
        Assert.Equal(86400, scrape.Value("skiff_backup_schedule_interval_seconds", stack));
        Assert.Equal(1, scrape.Value("skiff_backups_total", ("result", "failure")));
        Assert.Equal(1, scrape.Value("skiff_backup_duration_seconds_count", ("result", "success")));

        metrics.ForgetAppDeployment("prod", "api");
        Assert.Empty((await server.ScrapeAsync()).Find("skiff_backup_bytes"));
    }
}
