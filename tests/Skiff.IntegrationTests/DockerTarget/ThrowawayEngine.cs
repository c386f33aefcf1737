using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Skiff.Docker;
using Skiff.IntegrationTests.Infrastructure;
using Skiff.Reconcile;

namespace Skiff.IntegrationTests.DockerTarget;

/// <summary>
/// A private dockerd that a test may stop and restart without disturbing anyone: its own network
/// namespace (so its bridges and iptables chains never meet the main engine's), socket, data root
/// and exec root. Its containers reach each other but not the host's network, nor the host theirs:
/// tests that use it probe nothing over the network.
/// </summary>
/// <remarks>
/// # Guarantees
/// Named <c>skiff-it-NAME-RUNID</c> (<see cref="TestRun.Id"/>): namespace, <c>/run/…</c> and
/// <c>/var/lib/…</c>. Disposing it stops dockerd and removes all three; if the test process is
/// ended by a signal first, a process-exit hook does the same, and scripts/test.sh removes what a
/// killed process left. With <c>SKIFF_TEST_KEEP_ENGINES=1</c> the name is <c>skiff-it-NAME</c> and
/// the namespace and data root stay for the next run (dockerd is stopped either way).
/// </remarks>
public sealed class ThrowawayEngine : IAsyncDisposable
{
    /// <summary>Engines started and not yet disposed, for the process-exit hook.</summary>
    private static readonly ConcurrentDictionary<ThrowawayEngine, bool> Live = new();

    private readonly string root;
    private readonly string netns;
    private Process? process;

    /// <summary>An exclusive lock on <c>/run/ID/engine.lock</c> while this engine lives: scripts/test.sh never removes an engine in use.</summary>
    private FileStream? inUse;

    static ThrowawayEngine()
    {
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            foreach (var engine in Live.Keys)
            {
                engine.TearDownOnExit();
            }
        };
    }

    /// <param name="name">Lower-case letters and digits: with the run id it names the namespace and folders.</param>
    public ThrowawayEngine(string name)
    {
        if (!name.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c)) || name.Length is 0 or > 16)
        {
            throw new ArgumentException($"a throwaway engine's name is 1 to 16 lower-case letters and digits, not \"{name}\"", nameof(name));
        }

        var id = TestRun.KeepEngines ? $"skiff-it-{name}" : $"skiff-it-{name}-{TestRun.Id}";
        root = $"/run/{id}";
        netns = id;
        DataRoot = $"/var/lib/{id}";
        Socket = $"{root}/docker.sock";
    }

    public string Socket { get; }

    public string DataRoot { get; }

    public string Endpoint => "unix://" + Socket;

    /// <summary>The network namespace dockerd runs in: a process started there (nsenter) reaches its containers.</summary>
    public string NetworkNamespace => netns;

    /// <summary>The command prefix that runs a program in <see cref="NetworkNamespace"/>.</summary>
    public IReadOnlyList<string> Enter => ["nsenter", $"--net=/var/run/netns/{netns}"];

    public async Task StartAsync()
    {
        Live[this] = true;
        Directory.CreateDirectory(root);
        Directory.CreateDirectory(DataRoot);
        try
        {
            // FileShare.None is flock(LOCK_EX | LOCK_NB) on Linux, which `flock -n` in test.sh respects.
            inUse ??= new FileStream(Path.Combine(root, "engine.lock"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e)
        {
            throw new InvalidOperationException($"another test process uses the engine {netns} (SKIFF_TEST_KEEP_ENGINES=1 runs share their engines' names): {e.Message}", e);
        }

        if (!File.Exists($"/var/run/netns/{netns}"))
        {
            Run("ip", "netns", "add", netns);
            Run("ip", "-n", netns, "link", "set", "lo", "up");
        }

        // nsenter, not "ip netns exec": the latter remounts /sys and dockerd then finds no devices cgroup.
        var info = new ProcessStartInfo("nsenter")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[]
        {
            $"--net=/var/run/netns/{netns}", "dockerd",
            "--host", Endpoint, "--data-root", DataRoot, "--exec-root", $"{root}/exec", "--pidfile", $"{root}/docker.pid",
        })
        {
            info.ArgumentList.Add(arg);
        }

        process = Process.Start(info)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        using var engine = new DockerEngine(Endpoint);
        await Eventually.ValueAsync($"dockerd at {Endpoint} answers", async ct =>
        {
            try
            {
                await engine.VersionAsync(ct);
                return ("up", "");
            }
            catch (EngineUnreachableException e) when (!process.HasExited)
            {
                return (null, e.Message);
            }
        }, TimeSpan.FromSeconds(60), interval: TimeSpan.FromMilliseconds(200));
    }

    /// <summary>Stops dockerd (SIGTERM, as a service manager would) and waits for it to exit.</summary>
    public async Task StopAsync()
    {
        if (process is { HasExited: false })
        {
            Process.Start("kill", ["-TERM", process.Id.ToString(CultureInfo.InvariantCulture)])!.WaitForExit();
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await process.WaitForExitAsync(cts.Token);
        }
    }

    /// <summary>Removes every container, volume and user-defined network: the engine is this test's alone.</summary>
    public async Task ResetAsync()
    {
        using var engine = new DockerEngine(Endpoint);
        var client = engine.Client;
        foreach (var c in await client.Containers.ListContainersAsync(new() { All = true }))
        {
            await client.Containers.RemoveContainerAsync(c.ID, new() { Force = true, RemoveVolumes = true });
        }

        foreach (var v in (await client.Volumes.ListAsync(CancellationToken.None)).Volumes ?? [])
        {
            await client.Volumes.RemoveAsync(v.Name, force: true);
        }

        foreach (var n in await client.Networks.ListNetworksAsync(new()))
        {
            if (n.Name is not ("bridge" or "host" or "none"))
            {
                await client.Networks.DeleteNetworkAsync(n.ID);
            }
        }
    }

    /// <summary>Copies images from the main engine (docker save | docker load), skipping those already present.</summary>
    public async Task LoadImagesAsync(params string[] images)
    {
        using var engine = new DockerEngine(Endpoint);
        var missing = new List<string>();
        foreach (var image in images)
        {
            if (await engine.InspectImageAsync(image, CancellationToken.None) is null)
            {
                missing.Add(image);
            }
        }

        if (missing.Count == 0)
        {
            return;
        }

        var shell = Process.Start("sh", ["-c", $"docker save {string.Join(' ', missing)} | docker -H {Endpoint} load -q"])!;
        await shell.WaitForExitAsync();
        Assert.True(shell.ExitCode == 0, "loading test images into the throwaway engine failed");
    }

    /// <summary>Stops dockerd and, unless engines are kept, removes its namespace, exec root and data root.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            await StopAsync();
            process?.Dispose();
            inUse?.Dispose();
            if (!TestRun.KeepEngines)
            {
                var left = RemoveHostState();
                Assert.True(left.Length == 0, $"could not remove {netns}: {left}");
            }
        }
        finally
        {
            Live.TryRemove(this, out _);
        }
    }

    /// <summary>The process-exit hook: no await, no assert, bounded.</summary>
    private void TearDownOnExit()
    {
        try
        {
            // SIGTERM first: dockerd then stops its containers and unmounts; SIGKILL only if it hangs.
            if (process is { HasExited: false })
            {
                using (var kill = Process.Start("kill", ["-TERM", process.Id.ToString(CultureInfo.InvariantCulture)])!)
                {
                    kill.WaitForExit();
                }

                if (!process.WaitForExit(TimeSpan.FromSeconds(20)))
                {
                    process.Kill();
                }
            }

            inUse?.Dispose();
            if (!TestRun.KeepEngines)
            {
                RemoveHostState();
            }
        }
        catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception or IOException or UnauthorizedAccessException)
        {
            // Best effort while the process ends; scripts/test.sh sweeps what is left.
        }
    }

    /// <summary>
    /// Removes the namespace, the exec root and the data root (unmounting what a dockerd that did
    /// not stop cleanly left mounted there). Returns what could not be removed, or "".
    /// </summary>
    private string RemoveHostState()
    {
        var problems = new List<string>();
        foreach (var mount in MountsUnder(root).Concat(MountsUnder(DataRoot)).OrderByDescending(m => m.Length))
        {
            TryRun(problems, "umount", "-l", mount);
        }

        if (File.Exists($"/var/run/netns/{netns}"))
        {
            TryRun(problems, "ip", "netns", "del", netns);
        }

        foreach (var dir in new[] { root, DataRoot })
        {
            try
            {
                if (Directory.Exists(dir))
                {
                    Directory.Delete(dir, recursive: true);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                problems.Add($"{dir}: {e.Message}");
            }
        }

        return string.Join("; ", problems);
    }

    /// <summary>Mount points at or below <paramref name="dir"/>, from /proc/self/mountinfo (field 5, octal escapes decoded).</summary>
    private static IEnumerable<string> MountsUnder(string dir) =>
        File.ReadLines("/proc/self/mountinfo")
            .Select(line => line.Split(' ')[4].Replace("\\040", " ", StringComparison.Ordinal))
            .Where(m => m == dir || m.StartsWith(dir + "/", StringComparison.Ordinal))
            .ToList();

    private static void TryRun(List<string> problems, string file, params string[] args)
    {
        using var p = Process.Start(new ProcessStartInfo(file, args) { RedirectStandardError = true, UseShellExecute = false })!;
        var stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0)
        {
            problems.Add($"{file} {string.Join(' ', args)}: {stderr.Trim()}");
        }
    }

    private static void Run(string file, params string[] args)
    {
        using var p = Process.Start(new ProcessStartInfo(file, args) { RedirectStandardError = true, UseShellExecute = false })!;
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"{file} {string.Join(' ', args)}: {p.StandardError.ReadToEnd()}");
    }
}
