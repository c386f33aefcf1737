using System.Diagnostics;
using Skiff.Docker;

namespace Skiff.IntegrationTests.DockerTarget;

/// <summary>
/// A private dockerd that a test may stop and restart without disturbing anyone: its own network
/// namespace (so its bridges and iptables chains never meet the main engine's), socket, data root
/// and exec root. Its containers reach each other but not the host's network, nor the host theirs:
/// tests that use it probe nothing over the network.
/// </summary>
public sealed class ThrowawayEngine : IAsyncDisposable
{
    private readonly string root;
    private readonly string netns;
    private Process? process;

    public ThrowawayEngine(string name)
    {
        root = $"/run/skiff-it-{name}";
        netns = $"skiff-it-{name}";
        DataRoot = $"/var/lib/skiff-it-{name}";
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
        Directory.CreateDirectory(root);
        Directory.CreateDirectory(DataRoot);
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
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            try
            {
                await engine.VersionAsync(CancellationToken.None);
                return;
            }
            catch (EngineUnreachableException) when (DateTime.UtcNow < deadline && !process.HasExited)
            {
                await Task.Delay(200);
            }
        }
    }

    /// <summary>Stops dockerd (SIGTERM, as a service manager would) and waits for it to exit.</summary>
    public async Task StopAsync()
    {
        if (process is { HasExited: false })
        {
            Process.Start("kill", ["-TERM", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!.WaitForExit();
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

        foreach (var v in (await client.Volumes.ListAsync()).Volumes ?? [])
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

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        process?.Dispose();
    }

    private static void Run(string file, params string[] args)
    {
        using var p = Process.Start(new ProcessStartInfo(file, args) { RedirectStandardError = true, UseShellExecute = false })!;
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"{file} {string.Join(' ', args)}: {p.StandardError.ReadToEnd()}");
    }
}
