using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Skiff.Reconcile;

namespace Skiff.Backup;

/// <summary>How a backup ended.</summary>
/// <param name="Ok">A verified dump is in the folder.</param>
/// <param name="Message">What happened, for the condition, the Event and the CLI.</param>
/// <param name="File">The dump, when Ok.</param>
/// <param name="Duration">How long it took.</param>
public sealed record BackupResult(bool Ok, string Message, BackupFile? File, TimeSpan Duration)
{
    /// <summary>The cache's RDB copy beside the dump, when the stack's cache persists.</summary>
    public BackupFile? CacheFile { get; init; }

    /// <summary>Tables and rows the verification counted in the restored copy.</summary>
    public (int Tables, long Rows)? Verified { get; init; }

    /// <summary>Files removed by retention.</summary>
    public IReadOnlyList<string> Pruned { get; init; } = [];
}

/// <summary>A backup could not even start, or failed: the message says why, in the user's words.</summary>
public sealed class BackupException(string message) : Exception(message);

/// <summary>
/// Takes, verifies and restores backups of one node's stacks through the engine port (DESIGN §7): <c>pg_dump -Fc</c> in a
/// one-off container of the database image on the stack's network, written under a partial name; restored into a
/// throw-away PostgreSQL with no network and its tables counted against the live database's statistics; renamed to its
/// final name only then; the newest <c>retain</c> kept.
/// </summary>
/// <remarks>
/// # Guarantees
/// - Never two backups of one stack at once: in this process a lock per stack; across processes (<c>skiff backup</c>
///   beside <c>skiff run</c>) the dump container's fixed name, which the engine gives once.
/// - A crash or a kill at any point leaves no file with a final name that is not complete and verified; partial files
///   are removed by the next backup of the stack.
/// - A failed backup never touches the running database: it is only read (pg_dump, and one statistics query).
/// - A backup that would push the backup folder's filesystem over <see cref="HighThresholdPercent"/> (the node's image GC
///   policy's high threshold, read at each backup) is refused.
/// </remarks>
public sealed class BackupRunner(IContainerEngine engine, ILogger logger, TimeProvider? timeProvider = null)
{
    private const string DumpMount = "/backup";
    private const string VerifyDump = "/backup.dump";
    private readonly TimeProvider time = timeProvider ?? TimeProvider.System;
    private readonly ConcurrentDictionary<string, SemaphoreSlim> locks = new(StringComparer.Ordinal);

    /// <summary>Disk usage (percent of the backup folder's filesystem) above which a backup is refused: the node's image GC policy's high threshold.</summary>
    public Func<int> HighThresholdPercent { get; init; } = () => Api.Defaults.HighThresholdPercent;

    /// <summary>How long pg_dump may run.</summary>
    public TimeSpan DumpTimeout { get; init; } = TimeSpan.FromHours(2);

    /// <summary>How long the stack's database may take to become healthy before a backup or restore.</summary>
    public TimeSpan DatabaseReadyTimeout { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>How long the throw-away PostgreSQL may take to start.</summary>
    public TimeSpan VerifyStartTimeout { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>Measures the filesystem holding a folder: (used bytes, total bytes).</summary>
    public Func<string, (long Used, long Total)> MeasureDisk { get; init; } = Measure;

    /// <summary>Takes one backup of <paramref name="job"/>: dump, verify, rename, prune. Never throws for a failed backup (only for cancellation).</summary>
    public async Task<BackupResult> BackupAsync(BackupJob job, CancellationToken ct)
    {
        var started = Stopwatch.StartNew();
        var gate = locks.GetOrAdd(job.Names.Key, _ => new SemaphoreSlim(1, 1));
        if (!await gate.WaitAsync(0, ct))
        {
            return new BackupResult(false, $"a backup of {job.Names.Key} is already running in this process", null, started.Elapsed);
        }

        try
        {
            return await BackupLockedAsync(job, started, ct);
        }
        catch (BackupException e)
        {
            return new BackupResult(false, e.Message, null, started.Elapsed);
        }
        catch (EngineUnreachableException e)
        {
            return new BackupResult(false, e.Message, null, started.Elapsed);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return new BackupResult(false, $"backup folder {job.Folder}: {e.Message}", null, started.Elapsed);
        }
        finally
        {
            gate.Release();
        }
    }

    private async Task<BackupResult> BackupLockedAsync(BackupJob job, Stopwatch started, CancellationToken ct)
    {
        await DatabaseReadyAsync(job, "nothing to back up", ct);

        await ClaimAsync(job.DumpContainer, job, ct);
        Directory.CreateDirectory(job.Folder);
        BackupFiles.RemovePartials(job.Folder, job.Names);
        CheckDisk(job);

        var now = time.GetUtcNow();
        var finalName = job.FileName(now, BackupFiles.DumpExtension);
        var final = Path.Combine(job.Folder, finalName);
        var partial = BackupFiles.Partial(job.Folder, finalName);
        try
        {
            var live = await LiveTablesAsync(job, ct);
            await DumpAsync(job, Path.GetFileName(partial), ct);
            var size = new FileInfo(partial).Length;
            if (size == 0)
            {
                throw new BackupException("pg_dump wrote an empty file");
            }

            var counted = await VerifyAsync(job, partial, live, ct);
            BackupFiles.Complete(partial, final);
            var file = new BackupFile(final, now, size);
            BackupFile? cacheFile = null;
            if (job.PersistentCache is not null)
            {
                cacheFile = await CacheAsync(job, now, ct);
            }

            var pruned = BackupFiles.Prune(job.Folder, job.Names, job.Retain).ToList();
            pruned.AddRange(BackupFiles.Prune(job.Folder, job.Names, job.Retain, BackupFiles.RdbExtension));
            var message = $"backup {final} ({size.ToString(CultureInfo.InvariantCulture)} bytes) verified: {counted.Tables} table(s), {counted.Rows} row(s)" +
                (cacheFile is null ? "" : $"; cache copied to {cacheFile.Path}");
            logger.LogInformation("{Stack}: {Message}", job.Names.Key, message);
            return new BackupResult(true, message, file, started.Elapsed) { Verified = counted, Pruned = pruned, CacheFile = cacheFile };
        }
        finally
        {
            await RemoveQuietlyAsync(job.DumpContainer);
            await RemoveQuietlyAsync(job.VerifyContainer);
            await RemoveQuietlyAsync(job.DumpContainer + "_cache");
            if (File.Exists(partial))
            {
                File.Delete(partial);
            }

            BackupFiles.RemovePartials(job.Folder, job.Names);
        }
    }

    /// <summary>
    /// Restores <paramref name="file"/> into the stack's database with <c>pg_restore --clean --if-exists</c> in a one-off
    /// container, the app stopped meanwhile and started again after (also when the restore fails).
    /// </summary>
    public async Task RestoreAsync(BackupJob job, string file, Action<string> progress, CancellationToken ct)
    {
        await DatabaseReadyAsync(job, "start the stack first (skiff run)", ct);

        await ClaimAsync(job.DumpContainer, job, ct);
        var apps = (await engine.ListContainersAsync(
            new Dictionary<string, string> { [SkiffLabels.App] = job.Names.Key, [SkiffLabels.Component] = StackNames.AppComponent }, ct))
            .Where(c => c.Running).ToList();
        try
        {
            // Holds the stack's backup lock for the restore: no backup dumps a half-restored database.
            await engine.CreateContainerAsync(Hold(job), ct);
            foreach (var app in apps)
            {
                progress($"stopping {app.Name}");
                await engine.StopContainerAsync(app.Id, TimeSpan.FromSeconds(30), ct);
            }

            progress($"restoring {file} into database {job.Credentials.Database}");
            var spec = new ContainerSpec
            {
                Name = job.RestoreContainer,
                Image = job.DatabaseImage,
                Entrypoint = ["pg_restore"],
                Cmd = ["--clean", "--if-exists", "--no-owner", "--exit-on-error", "--single-transaction", "-h", StackNames.DatabaseHost, "-U", job.Credentials.Username, "-d", job.Credentials.Database, VerifyDump],
                Env = ["PGPASSWORD=" + job.Credentials.Password],
                Labels = job.LabelsFor("restore"),
                Mounts = [new VolumeMount(Path.GetFullPath(file), VerifyDump, Bind: true, ReadOnly: true)],
                Network = job.Names.Network,
                RestartPolicy = "no",
            };
            await RemoveQuietlyAsync(job.RestoreContainer);
            var id = await engine.CreateContainerAsync(spec, ct);
            try
            {
                await engine.StartContainerAsync(id, ct);
                var done = await WaitExitedAsync(id, DumpTimeout, ct);
                if (done.ExitCode != 0)
                {
                    var logs = await engine.LogsAsync(id, 20, ct);
                    throw new BackupException($"pg_restore exited {done.ExitCode.ToString(CultureInfo.InvariantCulture)} (nothing was changed: it runs in one transaction): {Tail(logs)}");
                }
            }
            finally
            {
                await RemoveQuietlyAsync(job.RestoreContainer);
            }
        }
        finally
        {
            foreach (var app in apps)
            {
                progress($"starting {app.Name}");
                await engine.StartContainerAsync(app.Id, CancellationToken.None);
            }

            await RemoveQuietlyAsync(job.DumpContainer);
        }
    }

    /// <summary>The running app containers of the stack after a restore (for the CLI to wait on their health).</summary>
    public async Task<IReadOnlyList<ObservedContainer>> AppsAsync(BackupJob job, CancellationToken ct) =>
        (await engine.ListContainersAsync(new Dictionary<string, string> { [SkiffLabels.App] = job.Names.Key, [SkiffLabels.Component] = StackNames.AppComponent }, ct))
            .ToList();

    /// <summary>
    /// Takes the name of the stack's dump container, which only one process can hold: one that runs means a backup or
    /// restore is under way (refused); one that exited is a leftover of a crash (removed).
    /// </summary>
    private async Task ClaimAsync(string name, BackupJob job, CancellationToken ct)
    {
        if (await engine.InspectContainerAsync(name, ct) is { } existing)
        {
            // A created container is a backup about to start, or the hold of a restore (which lasts as long as the restore).
            var createdFor = existing.Label(SkiffLabels.Component) == "backup-hold" ? TimeSpan.FromHours(12) : TimeSpan.FromMinutes(1);
            if (existing.Running || (existing.State == "created" && time.GetUtcNow() - existing.Created < createdFor))
            {
                throw new BackupException($"a backup or restore of {job.Names.Key} is already running (container {name}); try again when it is done");
            }

            await engine.RemoveContainerAsync(existing.Id, ct);
        }
    }

    /// <summary>A created, never started container under the dump container's name: the lock a restore holds.</summary>
    private static ContainerSpec Hold(BackupJob job) => new()
    {
        Name = job.DumpContainer,
        Image = job.DatabaseImage,
        Entrypoint = ["true"],
        Labels = job.LabelsFor("backup-hold"),
        Network = "none",
        RestartPolicy = "no",
    };

    private void CheckDisk(BackupJob job)
    {
        var (used, total) = MeasureDisk(job.Folder);
        if (total <= 0)
        {
            return;
        }

        var previous = BackupFiles.List(job.Folder, job.Names).FirstOrDefault()?.Bytes ?? 0;
        var after = (used + previous) * 100.0 / total;
        var high = HighThresholdPercent();
        if (after > high)
        {
            throw new BackupException(
                $"refused: the backup folder's disk is {(used * 100.0 / total).ToString("0.0", CultureInfo.InvariantCulture)} % full and another dump " +
                $"(about {previous.ToString(CultureInfo.InvariantCulture)} bytes, the size of the last) would take it over the {high} % high threshold (the node's ImageGCPolicy); " +
                $"free space in {job.Folder}, lower retain, or move backup.path to a larger disk");
        }
    }

    private static (long Used, long Total) Measure(string folder)
    {
        var info = new DriveInfo(folder);
        return (info.TotalSize - info.AvailableFreeSpace, info.TotalSize);
    }

    private async Task DumpAsync(BackupJob job, string partialName, CancellationToken ct)
    {
        var spec = new ContainerSpec
        {
            Name = job.DumpContainer,
            Image = job.DatabaseImage,
            Entrypoint = ["pg_dump"],
            Cmd = ["-Fc", "-h", StackNames.DatabaseHost, "-U", job.Credentials.Username, "-d", job.Credentials.Database, "-f", $"{DumpMount}/{partialName}"],
            Env = ["PGPASSWORD=" + job.Credentials.Password],
            Labels = job.LabelsFor("backup"),
            Mounts = [new VolumeMount(Path.GetFullPath(job.Folder), DumpMount, Bind: true)],
            Network = job.Names.Network,
            RestartPolicy = "no",
        };
        string id;
        try
        {
            id = await engine.CreateContainerAsync(spec, ct);
        }
        catch (Exception e) when (e is not (EngineUnreachableException or OperationCanceledException))
        {
            // Another process created it between the check and now.
            throw new BackupException($"could not create the dump container {job.DumpContainer}: {e.Message}");
        }

        await engine.StartContainerAsync(id, ct);
        var done = await WaitExitedAsync(id, DumpTimeout, ct);
        if (done.ExitCode != 0)
        {
            var logs = await engine.LogsAsync(id, 20, ct);
            var why = done.ExitCode is 137 ? "was killed (SIGKILL)" : $"exited {done.ExitCode.ToString(CultureInfo.InvariantCulture)}";
            throw new BackupException($"pg_dump {why}: {Tail(logs)}; the partial file was removed");
        }
    }

    private async Task<ObservedContainer> WaitExitedAsync(string id, TimeSpan timeout, CancellationToken ct)
    {
        var deadline = time.GetUtcNow() + timeout;
        while (true)
        {
            var c = await engine.InspectContainerAsync(id, ct)
                ?? throw new BackupException($"container {id[..Math.Min(12, id.Length)]} disappeared (removed from outside)");
            if (c.State is "exited" or "dead")
            {
                return c;
            }

            if (time.GetUtcNow() > deadline)
            {
                throw new BackupException($"container {c.Name} did not finish within {timeout}");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(200), time, ct);
        }
    }

    /// <summary>
    /// The stack's database is running and, when it has a health check, healthy: one still starting (just created, or
    /// restarted by the engine) is waited for up to <see cref="DatabaseReadyTimeout"/>, as pg_dump and pg_restore would
    /// otherwise fail on "the database system is starting up".
    /// </summary>
    private async Task DatabaseReadyAsync(BackupJob job, string fix, CancellationToken ct)
    {
        var name = job.Names.DatabaseContainer;
        var deadline = time.GetUtcNow() + DatabaseReadyTimeout;
        while (true)
        {
            var database = await engine.InspectContainerAsync(name, ct);
            if (database is not { Running: true })
            {
                throw new BackupException($"the database container {name} is not running: {fix}");
            }

            if (database.Health is null or "none" or "healthy")
            {
                return;
            }

            if (database.Health == "unhealthy")
            {
                throw new BackupException($"the database container {name} is unhealthy (its health check, pg_isready, fails): see skiff logs and the stack's status");
            }

            if (time.GetUtcNow() > deadline)
            {
                throw new BackupException($"the database container {name} did not become healthy within {DatabaseReadyTimeout.TotalSeconds:0}s");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(200), time, ct);
        }
    }

    /// <summary>The live database's tables and their estimated rows (pg_stat_user_tables), read before the dump.</summary>
    private async Task<Dictionary<string, long>> LiveTablesAsync(BackupJob job, CancellationToken ct)
    {
        var result = await engine.ExecAsync(job.Names.DatabaseContainer,
            ["psql", "-X", "-q", "-At", "-F", "|", "-U", job.Credentials.Username, "-d", job.Credentials.Database, "-c",
             "select schemaname || '.' || relname, n_live_tup from pg_stat_user_tables"], ct);
        if (result.ExitCode != 0)
        {
            throw new BackupException($"could not read the live database's statistics: {Tail(result.Stderr)}");
        }

        return ParseCounts(result.Stdout);
    }

    /// <summary>Restores the dump into a throw-away PostgreSQL without network and counts every table's rows.</summary>
    private async Task<(int Tables, long Rows)> VerifyAsync(BackupJob job, string partial, Dictionary<string, long> live, CancellationToken ct)
    {
        var user = job.Credentials.Username;
        var db = job.Credentials.Database;
        var spec = new ContainerSpec
        {
            Name = job.VerifyContainer,
            Image = job.DatabaseImage,
            // A throw-away copy: no fsync (initdb's and the server's), which is most of its start-up on a busy disk.
            Env = ["POSTGRES_USER=" + user, "POSTGRES_DB=" + db, "POSTGRES_PASSWORD=" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16)), "POSTGRES_INITDB_ARGS=--no-sync"],
            Cmd = ["postgres", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
            Labels = job.LabelsFor("backup-verify"),
            Healthcheck = new HealthProbe(["CMD", "pg_isready", "-h", "127.0.0.1", "-U", user, "-d", db], TimeSpan.FromMilliseconds(500), TimeSpan.FromSeconds(5), 240, TimeSpan.FromSeconds(120)),
            StopSignal = "SIGINT",
            Mounts = [new VolumeMount(Path.GetFullPath(partial), VerifyDump, Bind: true, ReadOnly: true)],
            Network = "none",
            RestartPolicy = "no",
        };
        await RemoveQuietlyAsync(job.VerifyContainer);
        var id = await engine.CreateContainerAsync(spec, ct);
        await engine.StartContainerAsync(id, ct);
        var deadline = time.GetUtcNow() + VerifyStartTimeout;
        while (true)
        {
            var c = await engine.InspectContainerAsync(id, ct) ?? throw new BackupException("the verification container disappeared");
            if (c.Health == "healthy")
            {
                break;
            }

            if (!c.Running || time.GetUtcNow() > deadline)
            {
                throw new BackupException($"verification failed: the throw-away PostgreSQL did not start: {Tail(await engine.LogsAsync(id, 20, ct))}");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(200), time, ct);
        }

        var restore = await engine.ExecAsync(id, ["pg_restore", "--exit-on-error", "--no-owner", "-U", user, "-d", db, VerifyDump], ct);
        if (restore.ExitCode != 0)
        {
            throw new BackupException($"verification failed: the dump does not restore (pg_restore exited {restore.ExitCode.ToString(CultureInfo.InvariantCulture)}: {Tail(restore.Stderr)}); it was deleted, the earlier backups are kept");
        }

        var count = await engine.ExecAsync(id, ["psql", "-X", "-q", "-At", "-F", "|", "-U", user, "-d", db, "-c", CountRows], ct);
        if (count.ExitCode != 0)
        {
            throw new BackupException($"verification failed: could not count the restored rows: {Tail(count.Stderr)}");
        }

        var restored = ParseCounts(count.Stdout);
        if (Compare(live, restored) is { } mismatch)
        {
            throw new BackupException($"verification failed: {mismatch}; the dump was deleted, the earlier backups are kept");
        }

        return (restored.Count, restored.Values.Sum());
    }

    /// <summary>Exact row counts of every user table, one line each: <c>schema.table|rows</c>.</summary>
    private const string CountRows =
        "select n.nspname || '.' || c.relname, (xpath('/row/c/text()', query_to_xml(format('select count(*) as c from %I.%I', n.nspname, c.relname), false, true, '')))[1]::text " +
        "from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg_toast%'";

    /// <summary>
    /// Every table the live database had when the dump started is in the restored copy, and none that the live
    /// statistics say holds rows came back empty. Null when they agree. Exact counts cannot be compared: the app keeps
    /// writing while pg_dump reads its snapshot.
    /// </summary>
    internal static string? Compare(IReadOnlyDictionary<string, long> live, IReadOnlyDictionary<string, long> restored)
    {
        var missing = live.Keys.Where(t => !restored.ContainsKey(t)).Order(StringComparer.Ordinal).ToList();
        if (missing.Count > 0)
        {
            return $"table(s) missing from the restored copy: {string.Join(", ", missing.Take(10))}";
        }

        var emptied = live.Where(kv => kv.Value > 0 && restored[kv.Key] == 0).Select(kv => kv.Key).Order(StringComparer.Ordinal).ToList();
        return emptied.Count > 0
            ? $"table(s) with rows in the live database came back empty: {string.Join(", ", emptied.Take(10))}"
            : null;
    }

    internal static Dictionary<string, long> ParseCounts(string output)
    {
        var counts = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var line in output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var bar = line.LastIndexOf('|');
            if (bar > 0 && long.TryParse(line[(bar + 1)..], NumberStyles.Integer, CultureInfo.InvariantCulture, out var n))
            {
                counts[line[..bar]] = n;
            }
        }

        return counts;
    }

    /// <summary>Redis: BGSAVE, wait for it, then copy the RDB file beside the dump (a one-off container of the cache image).</summary>
    private async Task<BackupFile> CacheAsync(BackupJob job, DateTimeOffset now, CancellationToken ct)
    {
        var cache = job.PersistentCache!;
        // rdb_saves (Redis 7) counts snapshots: the BGSAVE asked for is done when it grew and none is in progress.
        var before = Field(await PersistenceAsync(cache, ct), "rdb_saves");
        var save = await engine.ExecAsync(cache, ["redis-cli", "BGSAVE"], ct);
        if (save.ExitCode != 0 || (save.Stdout.Contains("ERR", StringComparison.Ordinal) && !save.Stdout.Contains("in progress", StringComparison.Ordinal)))
        {
            throw new BackupException($"cache: BGSAVE failed: {Tail(save.Stdout + save.Stderr)}");
        }

        var deadline = time.GetUtcNow() + TimeSpan.FromMinutes(10);
        while (true)
        {
            var info = await PersistenceAsync(cache, ct);
            // Before Redis 7 (no rdb_saves): only "none in progress" can be told.
            if (Field(info, "rdb_bgsave_in_progress") == 0 && (before < 0 || Field(info, "rdb_saves") > before))
            {
                if (!info.Contains("rdb_last_bgsave_status:ok", StringComparison.Ordinal))
                {
                    throw new BackupException("cache: BGSAVE failed (rdb_last_bgsave_status is not ok; the cache's logs say why)");
                }

                break;
            }

            if (time.GetUtcNow() > deadline)
            {
                throw new BackupException("cache: BGSAVE did not finish within 10 minutes");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(200), time, ct);
        }

        var finalName = job.FileName(now, BackupFiles.RdbExtension);
        var partial = BackupFiles.Partial(job.Folder, finalName);
        var copier = new ContainerSpec
        {
            Name = job.DumpContainer + "_cache",
            Image = job.CacheImage!,
            Entrypoint = ["cp"],
            Cmd = ["/data/dump.rdb", $"{DumpMount}/{Path.GetFileName(partial)}"],
            Labels = job.LabelsFor("backup"),
            Mounts = [new VolumeMount(job.Names.CacheVolume, "/data", ReadOnly: true), new VolumeMount(Path.GetFullPath(job.Folder), DumpMount, Bind: true)],
            Network = "none",
            RestartPolicy = "no",
        };
        await RemoveQuietlyAsync(copier.Name);
        var id = await engine.CreateContainerAsync(copier, ct);
        await engine.StartContainerAsync(id, ct);
        var done = await WaitExitedAsync(id, TimeSpan.FromMinutes(30), ct);
        if (done.ExitCode != 0)
        {
            throw new BackupException($"cache: copying the RDB file failed (exit {done.ExitCode.ToString(CultureInfo.InvariantCulture)}): {Tail(await engine.LogsAsync(id, 20, ct))}");
        }

        var final = Path.Combine(job.Folder, finalName);
        var size = new FileInfo(partial).Length;
        if (size < 5)
        {
            throw new BackupException("cache: the copied RDB file is truncated");
        }

        var magic = new byte[5];
        await using (var rdb = File.OpenRead(partial))
        {
            await rdb.ReadExactlyAsync(magic, ct);
        }

        if (!magic.AsSpan().SequenceEqual("REDIS"u8))
        {
            throw new BackupException("cache: the copied file is not an RDB file (no REDIS header)");
        }

        BackupFiles.Complete(partial, final);
        return new BackupFile(final, now, size);
    }

    private async Task<string> PersistenceAsync(string cache, CancellationToken ct)
    {
        var info = await engine.ExecAsync(cache, ["redis-cli", "INFO", "persistence"], ct);
        if (info.ExitCode != 0)
        {
            throw new BackupException($"cache: redis-cli INFO failed: {Tail(info.Stdout + info.Stderr)}");
        }

        return info.Stdout;
    }

    /// <summary>A numeric field of an INFO answer (<c>name:value</c> lines), or -1 when absent.</summary>
    internal static long Field(string info, string name)
    {
        foreach (var line in info.Split('\n', StringSplitOptions.TrimEntries))
        {
            if (line.StartsWith(name + ":", StringComparison.Ordinal)
                && long.TryParse(line[(name.Length + 1)..], NumberStyles.Integer, CultureInfo.InvariantCulture, out var value))
            {
                return value;
            }
        }

        return -1;
    }

    private async Task RemoveQuietlyAsync(string name)
    {
        try
        {
            await engine.RemoveContainerAsync(name, CancellationToken.None);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            logger.LogDebug(e, "Could not remove {Container}", name);
        }
    }

    private static string Tail(string text)
    {
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var tail = string.Join(" / ", lines.TakeLast(3));
        return tail.Length == 0 ? "(no output)" : tail;
    }
}
