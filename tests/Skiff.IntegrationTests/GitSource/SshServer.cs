using System.Diagnostics;
using System.Net.Sockets;
using Skiff.IntegrationTests.Infrastructure;

namespace Skiff.IntegrationTests.GitSource;

/// <summary>
/// A local <c>sshd</c> (Debian's openssh-server) on a free port of 127.0.0.1, with a host key and a deploy key generated
/// for the test: the only key it accepts is <see cref="DeployKey"/>, and <see cref="KnownHosts"/> holds its host key,
/// as a deploy key and <c>ssh-keyscan</c> would give them. Stopped (and its files deleted) on dispose.
/// </summary>
public sealed class SshServer : IAsyncDisposable
{
    private readonly Process process;

    private SshServer(string folder, int port, Process process)
    {
        Folder = folder;
        Port = port;
        this.process = process;
    }

    public string Folder { get; }

    public int Port { get; }

    /// <summary>The private key the server accepts (for <c>--ssh-key</c>).</summary>
    public string DeployKey => Path.Combine(Folder, "deploy_key");

    /// <summary>A known-hosts file with the server's host key (for <c>--ssh-known-hosts</c>).</summary>
    public string KnownHosts => Path.Combine(Folder, "known_hosts");

    /// <summary>An ssh:// URL of <paramref name="path"/> on this server, as the current user (root in tests).</summary>
    public string UrlOf(string path) => $"ssh://{Environment.UserName}@127.0.0.1:{Port}{path}";

    public static async Task<SshServer> StartAsync(string folder)
    {
        _ = TestRun.Id;
        Directory.CreateDirectory(folder);
        Run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "skiff-test-host", "-f", Path.Combine(folder, "host_key"));
        Run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "skiff-test-deploy", "-f", Path.Combine(folder, "deploy_key"));
        File.Copy(Path.Combine(folder, "deploy_key.pub"), Path.Combine(folder, "authorized_keys"));
        var port = GitHttpServer.FreePort();
        var hostKey = File.ReadAllText(Path.Combine(folder, "host_key.pub")).Trim().Split(' ');
        File.WriteAllText(Path.Combine(folder, "known_hosts"), $"[127.0.0.1]:{port} {hostKey[0]} {hostKey[1]}\n");
        var config = Path.Combine(folder, "sshd_config");
        File.WriteAllLines(config,
        [
            $"Port {port}",
            "ListenAddress 127.0.0.1",
            $"HostKey {Path.Combine(folder, "host_key")}",
            $"AuthorizedKeysFile {Path.Combine(folder, "authorized_keys")}",
            $"PidFile {Path.Combine(folder, "sshd.pid")}",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes",
            "PermitRootLogin prohibit-password",
            "UsePAM no",
            "StrictModes no",
            "AllowTcpForwarding no",
            "X11Forwarding no",
        ]);

        // sshd's privilege separation folder (Debian creates it only when its service starts).
        Directory.CreateDirectory("/run/sshd");
        var info = new ProcessStartInfo("/usr/sbin/sshd") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "-D", "-e", "-f", config })
        {
            info.ArgumentList.Add(a);
        }

        var process = Process.Start(info)!;
        var log = new System.Text.StringBuilder();
        process.ErrorDataReceived += (_, e) => { lock (log) { log.AppendLine(e.Data); } };
        process.OutputDataReceived += (_, e) => { lock (log) { log.AppendLine(e.Data); } };
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        var server = new SshServer(folder, port, process);
        await Eventually.TrueAsync($"sshd listens on 127.0.0.1:{port}", () => !process.HasExited && CanConnect(port), TimeSpan.FromSeconds(20), () => { lock (log) { return log.ToString(); } });
        return server;
    }

    public async ValueTask DisposeAsync()
    {
        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }

        process.Dispose();
    }

    private static bool CanConnect(int port)
    {
        try
        {
            using var client = new TcpClient();
            client.Connect("127.0.0.1", port);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private static void Run(string file, params string[] args)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        using var p = Process.Start(info)!;
        var stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} failed: {stderr}");
        }
    }
}
