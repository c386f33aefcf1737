using System.Diagnostics;
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
/// <c>scripts/second-engine.sh up</c> (DESIGN §6).
/// </summary>
/// <remarks>
/// # Guarantees
/// Idempotent: an engine that is already up is reused (and gets any test image it lacks). The
/// engine is left running for later runs; the tests remove what they create on it.
///
/// # Caveats
/// Needs root (network namespaces, dockerd) and the test images in the main engine.
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

    /// <summary>The command that runs a program on the second VPS (its network namespace; same files).</summary>
    public static IReadOnlyList<string> Vps2Prefix { get; } = ["nsenter", $"--net={NetnsPath}"];

    public async Task InitializeAsync()
    {
        var script = Path.Combine(KubeHarness.RepoRoot(), "scripts", "second-engine.sh");
        var info = new ProcessStartInfo("bash", [script, "up"]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"scripts/second-engine.sh up did not finish within 3 minutes:\n{await stdout}{await stderr}");
        }

        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException(
                $"scripts/second-engine.sh up exited with {process.ExitCode} (it needs root and the test images: sudo scripts/test.sh):\n{await stdout}{await stderr}");
        }
    }

    public Task DisposeAsync() => Task.CompletedTask;
}
