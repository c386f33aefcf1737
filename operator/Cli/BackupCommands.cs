using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Skiff.Api;
using Skiff.Backup;
using Skiff.Docker;
using Skiff.Hosting;
using Skiff.ImageGC;
using Skiff.Reconcile;
using Skiff.Runtime;
using Skiff.Sources.Directory;
using Skiff.State;

namespace Skiff.Cli;

/// <summary>
/// <c>skiff backup NAME</c>, <c>skiff backups NAME</c> and <c>skiff restore NAME --from FILE</c> with the folder source:
/// they read the stack from the folder and its credentials from the state folder, and talk to the engine directly
/// (docs/BACKUP.md).
/// </summary>
/// <remarks>
/// <b>Beside a running skiff run.</b> <c>backup</c> and <c>backups</c> only read the state folder and may run while
/// <c>skiff run</c> holds it; the dump container's name keeps two backups of one stack apart. <c>restore</c> takes the
/// state folder's lock, so it refuses while <c>skiff run</c> runs (that one would start the stopped app again mid-restore):
/// stop the service, restore, start it.
/// </remarks>
public static class BackupCommands
{
    public static IEnumerable<Command> Build() => [BuildBackup(), BuildList(), BuildRestore()];

    private sealed record Target(StackOptions Options, Argument<string> Name, Option<string> Namespace);

    private sealed record StackOptions(Option<string> Path, Option<string?> Node, Option<string?> DockerHost, Option<string> StateDir, Option<string?> SourceName, Option<string?> AgeKeyFile);

    private static StackOptions Options() => new(
        new Option<string>("--path") { Description = "Folder of resources (the one skiff run --path serves)", Required = true },
        CommonOptions.Node(),
        CommonOptions.DockerHost(),
        CommonOptions.StateDir(),
        new Option<string?>("--source-name") { Description = "The folder source's name, when skiff run is given one (--source-name)" },
        CommonOptions.AgeKeyFile());

    private static Target AddTarget(Command command)
    {
        var options = Options();
        var name = new Argument<string>("NAME") { Description = "The AppDeployment's name" };
        var ns = new Option<string>("--namespace", "-n") { Description = "Its namespace", DefaultValueFactory = _ => "default" };
        command.Arguments.Add(name);
        command.Options.Add(ns);
        command.Options.Add(options.Path);
        command.Options.Add(options.Node);
        command.Options.Add(options.DockerHost);
        command.Options.Add(options.StateDir);
        command.Options.Add(options.SourceName);
        command.Options.Add(options.AgeKeyFile);
        return new Target(options, name, ns);
    }

    private static Command BuildBackup()
    {
        var command = new Command("backup", "Take a backup of a stack's database now (pg_dump, verified by a restore into a throw-away PostgreSQL); prints the file's path");
        var target = AddTarget(command);
        command.SetAction(async (parse, ct) =>
        {
            var error = parse.InvocationConfiguration.Error;
            if (Resolve(parse, target, "skiff backup", error, out var exit) is not { } stack)
            {
                return exit;
            }

            using var engine = new DockerEngine(stack.DockerHost);
            var runner = stack.Runner(engine);
            try
            {
                var job = await stack.JobAsync(ct);
                var result = await runner.BackupAsync(job, ct);
                if (!result.Ok)
                {
                    error.WriteLine($"skiff backup: {job.Names.Key}: {result.Message}");
                    return ExitCodes.NotOk;
                }

                parse.InvocationConfiguration.Output.WriteLine(result.File!.Path);
                return ExitCodes.Ok;
            }
            catch (EngineUnreachableException e)
            {
                error.WriteLine(Preflight.Unreachable("skiff backup", e));
                return ExitCodes.Unreachable;
            }
        });
        return command;
    }

    private static Command BuildList()
    {
        var command = new Command("backups", "List a stack's verified backups in its backup folder, newest first");
        var target = AddTarget(command);
        var output = CommonOptions.Output(OutputFormat.Table, OutputFormat.Json);
        command.Options.Add(output);
        command.SetAction(async (parse, ct) =>
        {
            var error = parse.InvocationConfiguration.Error;
            if (Resolve(parse, target, "skiff backups", error, out var exit) is not { } stack)
            {
                return exit;
            }

            var files = BackupFiles.List(stack.Folder, stack.Names);
            var rdb = BackupFiles.List(stack.Folder, stack.Names, BackupFiles.RdbExtension);
            var all = files.Concat(rdb).OrderByDescending(f => f.Time).ThenBy(f => f.Path, StringComparer.Ordinal).ToList();
            var writer = parse.InvocationConfiguration.Output;
            if (parse.GetValue(output) == OutputFormat.Json)
            {
                await writer.WriteLineAsync(JsonSerializer.Serialize(
                    [.. all.Select(f => new BackupListEntry(f.Time, f.Path, f.Bytes))], CliJson.Default.ListBackupListEntry));
                return ExitCodes.Ok;
            }

            if (all.Count == 0)
            {
                error.WriteLine($"No backups of {stack.Names.Key} in {stack.Folder}");
                return ExitCodes.Ok;
            }

            var rows = all.Select(f => new[] { f.Time.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture), f.Bytes.ToString(CultureInfo.InvariantCulture), f.Path }).ToList();
            var widths = new[] { 20, Math.Max(5, rows.Max(r => r[1].Length)) };
            await writer.WriteLineAsync($"{"TIME".PadRight(widths[0])}   {"BYTES".PadRight(widths[1])}   FILE");
            foreach (var r in rows)
            {
                await writer.WriteLineAsync($"{r[0].PadRight(widths[0])}   {r[1].PadRight(widths[1])}   {r[2]}");
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command BuildRestore()
    {
        var command = new Command("restore", "Restore a backup into a stack's database (pg_restore --clean --if-exists); the app is stopped meanwhile and started again");
        var target = AddTarget(command);
        var from = new Option<string>("--from") { Description = "The backup file (.dump) to restore", Required = true };
        var yes = new Option<bool>("--yes", "-y") { Description = "Do not ask: required when stdin is not a terminal" };
        command.Options.Add(from);
        command.Options.Add(yes);
        command.SetAction(async (parse, ct) =>
        {
            var error = parse.InvocationConfiguration.Error;
            var output = parse.InvocationConfiguration.Output;
            if (Resolve(parse, target, "skiff restore", error, out var exit) is not { } stack)
            {
                return exit;
            }

            var file = parse.GetValue(from)!;
            if (!File.Exists(file))
            {
                error.WriteLine($"--from: file {file} does not exist; `skiff backups {stack.Names.Name} -n {stack.Names.Namespace} --path ...` lists the backups");
                return ExitCodes.UsageOrIo;
            }

            if (!parse.GetValue(yes))
            {
                if (Console.IsInputRedirected)
                {
                    error.WriteLine($"skiff restore: refusing to replace the data of {stack.Names.Key} without confirmation: stdin is not a terminal; pass --yes");
                    return ExitCodes.UsageOrIo;
                }

                error.Write($"Replace the database of {stack.Names.Key} with {file}? The app is stopped meanwhile. Type the stack's name to confirm: ");
                if (Console.ReadLine()?.Trim() != stack.Names.Name)
                {
                    error.WriteLine("skiff restore: not confirmed; nothing was changed");
                    return ExitCodes.NotOk;
                }
            }

            using var stateLock = Preflight.LockState(stack.State, $"skiff restore {stack.Names.Key}", error, out var lockExit, "skiff restore",
                "A running skiff run would start the app again mid-restore: stop it (e.g. systemctl stop skiff), restore, then start it");
            if (stateLock is null)
            {
                return lockExit;
            }

            using var engine = new DockerEngine(stack.DockerHost);
            var runner = stack.Runner(engine);
            try
            {
                var job = await stack.JobAsync(ct);
                await runner.RestoreAsync(job, file, line => error.WriteLine(line), ct);
                var unhealthy = await WaitAppsAsync(runner, job, stack.Resource, stack.DockerHost, ct);
                if (unhealthy is not null)
                {
                    error.WriteLine($"skiff restore: restored, but {unhealthy}");
                    return ExitCodes.NotOk;
                }

                await output.WriteLineAsync($"restored {file} into {job.Names.Key}");
                return ExitCodes.Ok;
            }
            catch (BackupException e)
            {
                error.WriteLine($"skiff restore: {stack.Names.Key}: {e.Message}");
                return ExitCodes.NotOk;
            }
            catch (EngineUnreachableException e)
            {
                error.WriteLine(Preflight.Unreachable("skiff restore", e));
                return ExitCodes.Unreachable;
            }
        });
        return command;
    }

    /// <summary>
    /// Waits (up to a minute) for the app containers to run again and pass the stack's health check (the operator's own
    /// HTTP probe on the stack network, when the spec has one and the engine is this machine's: a remote engine's
    /// networks are not reachable from here); null when they do, else what is wrong.
    /// </summary>
    private static async Task<string?> WaitAppsAsync(BackupRunner runner, BackupJob job, AppDeployment resource, string? dockerHost, CancellationToken ct)
    {
        var host = dockerHost ?? Environment.GetEnvironmentVariable("DOCKER_HOST");
        var local = string.IsNullOrEmpty(host) || host.StartsWith("unix://", StringComparison.Ordinal);
        var target = local ? DesiredStack.HealthTarget(Defaults.Apply(resource.Spec)) : null;
        var probe = new HttpAppProbe();
        var deadline = DateTimeOffset.UtcNow + TimeSpan.FromMinutes(1);
        while (true)
        {
            var apps = await runner.AppsAsync(job, ct);
            var live = apps.Where(a => a.Running).ToList();
            var failing = new List<string>();
            foreach (var app in live)
            {
                if (app.Health is not (null or "healthy"))
                {
                    failing.Add($"{app.Name} ({app.Health})");
                }
                else if (target is { } t && !await probe.ProbeAsync(app, t.Port, t.Path, ct))
                {
                    failing.Add($"{app.Name} (GET {t.Path} on port {t.Port.ToString(CultureInfo.InvariantCulture)} fails)");
                }
            }

            if (live.Count > 0 && failing.Count == 0)
            {
                return null;
            }

            if (DateTimeOffset.UtcNow > deadline)
            {
                return live.Count == 0 ? "no app container runs" : $"app container(s) not healthy: {string.Join(", ", failing)}";
            }

            await Task.Delay(500, ct);
        }
    }

    /// <summary>The stack, read from the folder, with what its backups need.</summary>
    private sealed class Stack
    {
        public required StackNames Names { get; init; }

        public required AppDeployment Resource { get; init; }

        public required StateStore State { get; init; }

        public required FolderSecretSource Secrets { get; init; }

        public required StackContext Context { get; init; }

        public string? DockerHost { get; init; }

        /// <summary>The node's image GC high threshold, from the folder's ImageGCPolicies (as skiff run reads it).</summary>
        public int HighThresholdPercent { get; init; } = Defaults.HighThresholdPercent;

        /// <summary>A runner that refuses a backup over <see cref="HighThresholdPercent"/>.</summary>
        public BackupRunner Runner(IContainerEngine engine) =>
            new(engine, CliContext.Logging.CreateLogger<BackupRunner>()) { HighThresholdPercent = () => HighThresholdPercent };

        public string Folder => Resource.Spec.Database?.Backup?.Path ?? Defaults.BackupPath;

        public async Task<BackupJob> JobAsync(CancellationToken ct)
        {
            var db = Defaults.Apply(Resource.Spec).Database!;
            if (await Secrets.GetSecretAsync(Names.Namespace, Names.DatabaseSecret, ct) is null)
            {
                throw new BackupException($"no database credentials for {Names.Key} in {State.Root} (the Secret {Names.DatabaseSecret}): has skiff run deployed it with this --state-dir?");
            }

            var credentials = await Secrets.EnsureDatabaseCredentialsAsync(Names, db.Name!, db.User!, ct);
            return BackupJob.For(Resource, credentials, Context)!;
        }
    }

    private static Stack? Resolve(ParseResult parse, Target target, string command, TextWriter error, out int exit)
    {
        exit = ExitCodes.UsageOrIo;
        var node = parse.GetValue(target.Options.Node);
        if (string.IsNullOrEmpty(node))
        {
            error.WriteLine("--node: required (or set NODE_NAME)");
            return null;
        }

        var path = parse.GetValue(target.Options.Path)!;
        if (!Directory.Exists(path))
        {
            error.WriteLine($"--path: folder {path} does not exist");
            return null;
        }

        var source = new DirectorySource(path, Microsoft.Extensions.Logging.Abstractions.NullLogger<DirectorySource>.Instance, age: CommonOptions.Age(parse, target.Options.AgeKeyFile));
        source.Rescan();
        var key = new ObjectKey(parse.GetValue(target.Namespace) ?? "default", parse.GetValue(target.Name)!);
        var entry = source.Get(key);
        exit = ExitCodes.NotOk;
        if (entry is null)
        {
            error.WriteLine($"{command}: no AppDeployment {key} in {source.Path}");
            return null;
        }

        if (entry.Resource is not { } resource)
        {
            error.WriteLine($"{command}: {key} in {entry.Location} is invalid: {string.Join("; ", entry.Errors)}");
            return null;
        }

        if (resource.Spec.Node != node)
        {
            error.WriteLine($"{command}: {key} runs on node \"{resource.Spec.Node}\", not \"{node}\" (--node): run it there");
            return null;
        }

        if (resource.Spec.Database is null)
        {
            error.WriteLine($"{command}: {key} has no database (spec.database): nothing to back up or restore");
            return null;
        }

        var state = new StateStore(parse.GetValue(target.Options.StateDir)!);
        exit = ExitCodes.Ok;
        return new Stack
        {
            Names = new StackNames(key.Namespace ?? "default", key.Name),
            Resource = resource,
            State = state,
            Secrets = new FolderSecretSource(state, source.GetSecret),
            Context = new StackContext(node, FolderIdentity.SourceId(source.Path, parse.GetValue(target.Options.SourceName)), source.Path),
            DockerHost = parse.GetValue(target.Options.DockerHost),
            HighThresholdPercent = ImageGcPlanner.ResolvePolicy(source.Policies(), node, out _).HighThresholdPercent,
        };
    }
}
