using System.Diagnostics;
using Skiff.IntegrationTests.Infrastructure;
using Skiff.IntegrationTests.KubernetesSource;

namespace Skiff.IntegrationTests.TwoHosts;

/// <summary>Tests that need the second VPS share one <see cref="SecondEngineFixture"/>: <c>[Collection(TwoHostsCollection.Name)]</c>.</summary>
[CollectionDefinition(Name)]
public sealed class TwoHostsCollection : ICollectionFixture<SecondEngineFixture>
{
    public const string Name = "Two hosts";
}

/// <summary>
/// The second VPS: a Docker engine in the network namespace <c>skiff-vps2</c>, brought up by
/// <c>scripts/second-engine.sh up</c> (DESIGN §6) and taken down by <c>scripts/second-engine.sh down</c>.
/// </summary>
/// <remarks>
/// # Guarantees
/// Up for the tests of <see cref="TwoHostsCollection"/> (an engine already up is reused and gets any
/// test image it lacks), then down: dockerd, namespace, veth pair (10.213.0.1/30) and data root all
/// go when the fixture is disposed, or when the test process ends on a signal before that (a
/// process-exit hook), and scripts/test.sh takes it down after a run that was killed outright.
/// While it is in use, this process holds a shared flock on <see cref="UsersLock"/>, and
/// <c>down</c> leaves the engine up while any other process holds one: the last user takes it
/// down. With <c>SKIFF_TEST_KEEP_ENGINES=1</c> it stays up for the next run.
///
/// # Caveats
/// Needs root (network namespaces, dockerd) and the test images in the main engine. One machine
/// has one second VPS: two runs at once share it (its tests create uniquely named objects).
/// </remarks>
public sealed class SecondEngineFixture : IAsyncLifetime
{
    /// <summary>The network namespace, as a path for <c>nsenter --net=</c>.</summary>
    public const string NetnsPath = "/var/run/netns/skiff-vps2";

    /// <summary>The host's end of the veth pair: the API server listens here, reachable from both hosts.</summary>
    public const string HostAddress = "10.213.0.1";

    /// <summary>The namespace's end of the veth pair: requests from the second VPS come from here.</summary>
    public const string Vps2Address = "10.213.0.2";

    public const string DockerHost = "unix:///run/skiff-vps2/docker.sock";

    /// <summary>Shared by every process using the engine; <c>second-engine.sh down</c> needs it exclusively.</summary>
    public const string UsersLock = "/run/lock/skiff-vps2.users";

    private static readonly string Script = Path.Combine(KubeHarness.RepoRoot(), "scripts", "second-engine.sh");

    private int up;
    private FileStream? inUse;

    public SecondEngineFixture() => AppDomain.CurrentDomain.ProcessExit += OnProcessExit;

    /// <summary>The command that runs a program on the second VPS (its network namespace; same files).</summary>
    public static IReadOnlyList<string> Vps2Prefix { get; } = ["nsenter", $"--net={NetnsPath}"];

    public async Task InitializeAsync()
    {
        inUse = await HoldSharedAsync();
        Interlocked.Exchange(ref up, 1);
        var (code, output) = await Task.Run(() => RunScript("up", TimeSpan.FromMinutes(3)));
        if (code != 0)
        {
            throw new InvalidOperationException(
                $"scripts/second-engine.sh up exited with {code} (it needs root and the test images: sudo scripts/test.sh):\n{output}");
        }
    }

    public async Task DisposeAsync()
    {
        AppDomain.CurrentDomain.ProcessExit -= OnProcessExit;
        inUse?.Dispose();
        if (Interlocked.Exchange(ref up, 0) == 0 || TestRun.KeepEngines)
        {
            return;
        }

        var (code, output) = await Task.Run(() => RunScript("down", TimeSpan.FromMinutes(2)));
        if (code != 0)
        {
            throw new InvalidOperationException($"scripts/second-engine.sh down exited with {code}:\n{output}");
        }
    }

    /// <summary>The test process ends (a signal) with the engine still up: take it down, bounded, best effort.</summary>
    private void OnProcessExit(object? sender, EventArgs e)
    {
        inUse?.Dispose();
        if (Interlocked.Exchange(ref up, 0) == 0 || TestRun.KeepEngines)
        {
            return;
        }

        try
        {
            RunScript("down", TimeSpan.FromSeconds(60));
        }
        catch (Exception ex) when (ex is TimeoutException or InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            // scripts/test.sh takes it down after the run.
        }
    }

    /// <summary>
    /// A shared flock on <see cref="UsersLock"/> (.NET takes LOCK_SH for any FileShare but None),
    /// retried while a <c>down</c> holds it exclusively.
    /// </summary>
    private static async Task<FileStream> HoldSharedAsync()
    {
        Directory.CreateDirectory(Path.GetDirectoryName(UsersLock)!);
        return await Eventually.ValueAsync($"a shared lock on {UsersLock}", _ =>
        {
            try
            {
                return Task.FromResult<(FileStream?, string)>((new FileStream(UsersLock, FileMode.OpenOrCreate, FileAccess.Read, FileShare.ReadWrite), ""));
            }
            catch (IOException e)
            {
                return Task.FromResult<(FileStream?, string)>((null, e.Message));
            }
        }, TimeSpan.FromMinutes(2), interval: TimeSpan.FromMilliseconds(500));
    }

    private static (int Code, string Output) RunScript(string verb, TimeSpan timeout)
    {
        var info = new ProcessStartInfo("bash", [Script, verb]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            throw new TimeoutException($"scripts/second-engine.sh {verb} did not finish within {timeout.TotalSeconds:0} s:\n{stdout.Result}{stderr.Result}");
        }

        return (process.ExitCode, stdout.Result + stderr.Result);
    }
}
