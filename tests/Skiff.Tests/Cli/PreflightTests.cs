using Microsoft.Extensions.Logging.Abstractions;
using Skiff.Cli;
using Skiff.State;
using Skiff.Hosting;

namespace Skiff.Tests.Cli;

/// <summary>The checks <c>skiff run</c> and <c>skiff gc</c> make before they touch the node: one preflight, the same messages.</summary>
public sealed class PreflightTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("skiff-preflight-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private GcCommand.GcOptions Gc(string dockerHost) =>
        new("vps-1", dockerHost, Path.Combine(dir, "state"), null, DryRun: false, OutputFormat.Table);

    [Fact]
    public async Task Skiff_gc_beside_a_holder_of_the_state_folder_exits_2_naming_the_holder_and_the_way_around_it()
    {
        using var held = new StateStore(Path.Combine(dir, "state")).Lock("skiff run --path /srv/skiff");
        var stderr = new StringWriter();

        // The engine is never asked: the lock comes first.
        var exit = await GcCommand.RunAsync(Gc($"unix://{dir}/no-docker.sock"), new StringWriter(), stderr, NullLoggerFactory.Instance, CancellationToken.None);

        Assert.Equal(ExitCodes.UsageOrIo, exit);
        Assert.StartsWith($"skiff gc: the state folder {Path.Combine(dir, "state")} is in use by process {Environment.ProcessId} (skiff run --path /srv/skiff); stop it first, or use another --state-dir. " +
            "A running skiff run collects this node by itself", stderr.ToString(), StringComparison.Ordinal);
        Assert.Contains("skiff gc --dry-run shows its decisions without the lock", stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Skiff_gc_without_an_engine_exits_3_asking_whether_dockerd_runs()
    {
        var stderr = new StringWriter();

        var exit = await GcCommand.RunAsync(Gc($"unix://{dir}/no-docker.sock"), new StringWriter(), stderr, NullLoggerFactory.Instance, CancellationToken.None);

        Assert.Equal(ExitCodes.Unreachable, exit);
        Assert.StartsWith("skiff gc: ", stderr.ToString(), StringComparison.Ordinal);
        Assert.Contains($"{dir}/no-docker.sock", stderr.ToString(), StringComparison.Ordinal);
        Assert.EndsWith("Is dockerd running? (--docker-host or DOCKER_HOST)\n", stderr.ToString().ReplaceLineEndings("\n"), StringComparison.Ordinal);
    }
}
