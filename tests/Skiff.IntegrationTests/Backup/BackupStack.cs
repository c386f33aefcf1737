using System.Diagnostics;
using Skiff.Api;
using Skiff.IntegrationTests.FolderSource;
using Skiff.IntegrationTests.Infrastructure;

namespace Skiff.IntegrationTests.Backup;

/// <summary>
/// One API stack (app, PostgreSQL, migration) deployed once by <c>skiff run --once</c> and shared by the backup tests,
/// which run one after another. Its database image is <c>skiff-test/postgres:15</c> with one change: <c>pg_dump</c> is a
/// wrapper around the real one that injects faults when a marker file lies in the backup folder
/// (<see cref="HangMarker"/>: sleep after writing, so a test can SIGKILL the dump container mid-way;
/// <see cref="CorruptMarker"/>: cut the dump in half). PostgreSQL, pg_restore and psql are the real ones.
/// </summary>
public sealed class BackupStack : IAsyncLifetime
{
    public const string HangMarker = "fault-hang";
    public const string CorruptMarker = "fault-corrupt";
    public const int Retain = 2;

    private const string Wrapper = """
        #!/bin/sh
        # Test fault injection around the real pg_dump (see BackupStack.cs).
        out=""; prev=""
        for a in "$@"; do [ "$prev" = "-f" ] && out="$a"; prev="$a"; done
        dir="$(dirname "$out")"
        /usr/lib/postgresql/15/bin/pg_dump "$@" || exit $?
        if [ -e "$dir/fault-hang" ]; then rm -f "$dir/fault-hang"; sleep 300; fi
        if [ -e "$dir/fault-corrupt" ]; then
            rm -f "$dir/fault-corrupt"
            size=$(wc -c < "$out"); head -c $((size / 2)) "$out" > "$out.cut" && mv "$out.cut" "$out"
        fi
        exit 0
        """;

    public static readonly TimeSpan Timeout = TimeSpan.FromMinutes(3);

    public FolderWorkspace Workspace { get; } = new();

    public string Image { get; } = $"skiff-test/postgres:15-backup-faults-{TestRun.Id}";

    public string Folder => Path.Combine(Workspace.Root, "backups");

    public string Ns => Workspace.Namespace;

    public string Database => $"skiff_{Ns}_api_database";

    /// <summary>The arguments every backup command takes: the stack, the folder source and the state folder.</summary>
    public string[] Stack(string command, params string[] more) =>
        [command, "api", "-n", Ns, "--path", Workspace.Resources, "--node", "local", "--state-dir", Workspace.StateDir, "--log-level", "warning", .. more];

    /// <summary>The stack's YAML with a backup <paramref name="schedule"/> (by default once a year: the tests take theirs by hand).</summary>
    public string Yaml(string schedule = "0 0 1 1 *") => Workspace.Api(edit: s =>
    {
        s.Database!.Image = Image;
        s.Database.Backup = new BackupSpec { Schedule = schedule, Retain = Retain, Path = Folder };
        // A persistent Redis: each backup copies its RDB file beside the dump.
        s.Cache = new CacheSpec { Image = TestImages.Redis, Persistence = PersistenceModes.Aof };
    });

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(Folder);
        var script = Path.Combine(Workspace.Root, "pg_dump");
        await File.WriteAllTextAsync(script, Wrapper.Replace("\r", "", StringComparison.Ordinal) + "\n");
        File.SetUnixFileMode(script, (UnixFileMode)0b111_101_101);
        var container = $"skiff-backup-faults-{TestRun.Id}-{Guid.NewGuid().ToString("N")[..6]}";
        await DockerAsync("create", "--name", container, "--label", $"{DockerFixture.RunLabel}={TestRun.Id}-backup", "skiff-test/postgres:15");
        try
        {
            await DockerAsync("cp", script, $"{container}:/usr/local/bin/pg_dump");
            await DockerAsync("commit", "--change", $"LABEL {DockerFixture.RunLabel}={TestRun.Id}-backup", container, Image);
        }
        finally
        {
            await DockerAsync("rm", "-f", "-v", container); // -v: the image declares a VOLUME, created with the container
        }

        Workspace.Write("api.yaml", Yaml());
        var (exit, stdout, stderr) = await SkiffProcess.RunAsync(Timeout, Workspace.RunOnceArgs());
        Assert.True(exit == 0, $"exit {exit}\n{stdout}\n{stderr}");
    }

    /// <summary>Runs SQL in the live database (through its local socket, as the app's user).</summary>
    public Task<string> SqlAsync(string sql) => DockerAsync("exec", Database, "psql", "-X", "-q", "-At", "-U", "app", "-d", "app", "-c", sql);

    /// <summary>The complete-looking files of one kind (<c>dump</c>, <c>rdb</c>) in the backup folder: partials and markers are not.</summary>
    public IReadOnlyList<string> Files(string extension = "dump") =>
        [.. Directory.GetFiles(Folder, "*." + extension).Select(Path.GetFileName).OfType<string>().Where(f => !f.StartsWith('.')).Order(StringComparer.Ordinal)];

    public static async Task<string> DockerAsync(params string[] args)
    {
        var start = new ProcessStartInfo("docker") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
        {
            start.ArgumentList.Add(a);
        }

        using var p = Process.Start(start)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        Assert.True(p.ExitCode == 0, $"docker {string.Join(' ', args)}: exit {p.ExitCode}\n{await stderr}");
        return (await stdout).Trim();
    }

    public async Task DisposeAsync()
    {
        await Workspace.DisposeAsync();
        await DockerAsync("rmi", "-f", Image);
    }
}
