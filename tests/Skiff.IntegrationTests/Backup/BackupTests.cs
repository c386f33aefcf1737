using System.Globalization;
using System.Text.Json.Nodes;
using Skiff.Api;
using Skiff.Reconcile;
using Skiff.State;
using Skiff.IntegrationTests.FolderSource;
using Skiff.IntegrationTests.Infrastructure;

namespace Skiff.IntegrationTests.Backup;

/// <summary>
/// Backups of a real PostgreSQL through the real skiff process and engine (docs/BACKUP.md): a restore brings dropped rows
/// back; retention; a dump killed mid-way; a corrupted dump; one scheduled run. One stack serves them all.
/// </summary>
public sealed class BackupTests(BackupStack stack) : IClassFixture<BackupStack>
{
    private static readonly TimeSpan Timeout = BackupStack.Timeout;

    [Fact]
    public async Task Rows_backed_up_then_dropped_come_back_with_skiff_restore_and_the_app_is_healthy()
    {
        await stack.SqlAsync("create table notes (id int primary key, body text); insert into notes select g, 'note ' || g from generate_series(1, 300) g");

        var backup = await SkiffProcess.RunAsync(Timeout, stack.Stack("backup"));
        Assert.True(backup.Exit == 0, $"exit {backup.Exit}\n{backup.Stdout}\n{backup.Stderr}");
        var file = backup.Stdout.Trim();
        Assert.Matches($@"/{stack.Ns}_api_\d{{8}}T\d{{6}}Z\.dump$", file);
        Assert.True(File.Exists(file));
        // The persistent cache's RDB snapshot, beside the dump under the same time, with Redis's header.
        var rdb = Path.ChangeExtension(file, "rdb");
        Assert.True(File.Exists(rdb), $"{rdb} is missing; the folder holds {string.Join(", ", Directory.GetFiles(stack.Folder))}");
        Assert.Equal("REDIS"u8.ToArray(), File.ReadAllBytes(rdb)[..5]);

        await stack.SqlAsync("drop table notes");
        var refused = await SkiffProcess.RunAsync(Timeout, stack.Stack("restore", "--from", file));
        Assert.Equal(2, refused.Exit);
        Assert.Contains("pass --yes", refused.Stderr, StringComparison.Ordinal);

        var restore = await SkiffProcess.RunAsync(Timeout, stack.Stack("restore", "--from", file, "--yes"));
        Assert.True(restore.Exit == 0, $"exit {restore.Exit}\n{restore.Stdout}\n{restore.Stderr}");
        Assert.Equal("300", await stack.SqlAsync("select count(*) from notes"));
        Assert.Equal("note 42", await stack.SqlAsync("select body from notes where id = 42"));

        // The app serves again, by Skiff's own health check: run --once reports it Ready, and changes nothing.
        var once = await SkiffProcess.RunAsync(Timeout, stack.Workspace.RunOnceArgs());
        Assert.True(once.Exit == 0, $"exit {once.Exit}\n{once.Stdout}\n{once.Stderr}");
        Assert.Matches($@"{stack.Ns}\s+api\s+local\s+True\s+Ready\s+skiff-test/app:1\s+1", once.Stdout);
        await stack.SqlAsync("drop table notes");
    }

    [Fact]
    public async Task A_killed_dump_leaves_no_complete_looking_file_the_next_succeeds_retention_keeps_retain_and_a_corrupt_dump_is_refused()
    {
        // Two older files of the stack: with the next good backup there would be three without retention.
        File.WriteAllText(Path.Combine(stack.Folder, $"{stack.Ns}_api_20200101T000000Z.dump"), "old");
        File.WriteAllText(Path.Combine(stack.Folder, $"{stack.Ns}_api_20200102T000000Z.dump"), "old");
        var before = stack.Files();

        // SIGKILL to the dump container while its partial file is written.
        File.WriteAllText(Path.Combine(stack.Folder, BackupStack.HangMarker), "");
        await using (var killed = SkiffProcess.Start(stack.Stack("backup")))
        {
            var container = $"skiff_{stack.Ns}_api_backup";
            await Eventually.TrueAsync("the dump wrote its partial file and hangs", () =>
                Directory.GetFiles(stack.Folder, ".*.partial").Any(f => new FileInfo(f).Length > 0) && !File.Exists(Path.Combine(stack.Folder, BackupStack.HangMarker)),
                Timeout, () => killed.Stderr);
            await BackupStack.DockerAsync("kill", "-s", "KILL", container);
            var exit = await killed.WaitAsync(Timeout);
            Assert.Equal(1, exit);
            Assert.Contains("pg_dump was killed (SIGKILL)", killed.Stderr, StringComparison.Ordinal);
        }

        Assert.Equal(before, stack.Files());
        Assert.Empty(Directory.GetFiles(stack.Folder, ".*"));

        var next = await SkiffProcess.RunAsync(Timeout, stack.Stack("backup"));
        Assert.True(next.Exit == 0, $"exit {next.Exit}\n{next.Stdout}\n{next.Stderr}");
        var good = Path.GetFileName(next.Stdout.Trim());
        var kept = stack.Files();
        Assert.Equal(BackupStack.Retain, kept.Count);
        Assert.Contains(good, kept);
        Assert.True(stack.Files("rdb").Count <= BackupStack.Retain);
        Assert.DoesNotContain($"{stack.Ns}_api_20200101T000000Z.dump", kept);

        // A dump cut in half fails verification; it is deleted and the good ones stay.
        File.WriteAllText(Path.Combine(stack.Folder, BackupStack.CorruptMarker), "");
        var corrupt = await SkiffProcess.RunAsync(Timeout, stack.Stack("backup"));
        Assert.Equal(1, corrupt.Exit);
        Assert.Contains("verification failed", corrupt.Stderr, StringComparison.Ordinal);
        Assert.Equal(kept, stack.Files());
        Assert.Empty(Directory.GetFiles(stack.Folder, ".*"));

        var listed = await SkiffProcess.RunAsync(Timeout, stack.Stack("backups", "-o", "json"));
        Assert.Equal(0, listed.Exit);
        Assert.Equal(kept.OrderDescending(StringComparer.Ordinal),
            JsonNode.Parse(listed.Stdout)!.AsArray().Select(f => Path.GetFileName(f!["file"]!.GetValue<string>())).Where(f => f.EndsWith(".dump", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Skiff_run_takes_a_scheduled_backup_and_reports_it_in_the_status()
    {
        // Every 2 seconds (6 fields: seconds first); the spec hash leaves backup out, so nothing restarts.
        stack.Workspace.Write("api.yaml", stack.Yaml("*/2 * * * * *"));
        var state = new StateStore(stack.Workspace.StateDir);
        var app = (await stack.Workspace.ContainersAsync("api")).Single(c => c.Component == "app");
        try
        {
            await using var run = SkiffProcess.Start(stack.Workspace.RunArgs());
            var last = await Eventually.ValueAsync(
                "status.lastBackup of a scheduled backup",
                _ => Task.FromResult(state.Read(stack.Ns, "api")?.Status?.LastBackup is { Verified: true } b ? ((BackupRecord?)b, "") : ((BackupRecord?)null, run.Stderr)),
                Timeout);

            Assert.StartsWith(stack.Folder + "/", last.File, StringComparison.Ordinal);
            Assert.True(File.Exists(last.File) || stack.Files().Count == BackupStack.Retain, $"{last.File} was kept (or pruned by a newer one)");
            Assert.True(last.Bytes > 0);
            var status = state.Read(stack.Ns, "api")!.Status!;
            Assert.Equal("True", Conditions.Get(status, ConditionTypes.Ready)?.Status);
            Assert.NotEqual("True", Conditions.Get(status, ConditionTypes.BackupFailed)?.Status);
            await run.UntilLoggedAsync("BackupSucceeded", Timeout);
            var described = await SkiffProcess.RunAsync(Timeout, "status", "api", "-n", stack.Ns, "--state-dir", stack.Workspace.StateDir);
            Assert.Contains("Last Backup:", described.Stdout, StringComparison.Ordinal);
            // SIGTERM, as a service manager stops it: the backup in flight (if any) cleans up after itself.
            using (var term = System.Diagnostics.Process.Start("kill", ["-TERM", run.Id.ToString(CultureInfo.InvariantCulture)]))
            {
                await term.WaitForExitAsync();
            }

            Assert.Equal(0, await run.WaitAsync(Timeout));
        }
        finally
        {
            stack.Workspace.Write("api.yaml", stack.Yaml());
        }

        // The app was never restarted by the new schedule, and nothing of the backups is left running.
        Assert.Equal(app.Id, (await stack.Workspace.ContainersAsync("api")).Single(c => c.Component == "app").Id);
        Assert.DoesNotContain(await stack.Workspace.ContainersAsync("api"), c => c.Component?.StartsWith("backup", StringComparison.Ordinal) == true);
    }
}
