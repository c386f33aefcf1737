using System.Diagnostics;

namespace Skiff.TestApiServer;

/// <summary>Runs the real kubectl against a server, with its own kubeconfig and an empty discovery cache.</summary>
public sealed class Kubectl : IDisposable
{
    private readonly string _dir;

    public Kubectl(TestApiServer server)
    {
        _dir = Path.Combine(Path.GetTempPath(), "skiff-kubectl-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
        Kubeconfig = server.WriteKubeconfig(Path.Combine(_dir, "kubeconfig"));
    }

    public string Kubeconfig { get; }

    public static string Binary => "/usr/bin/kubectl";

    public string Dir => _dir;

    /// <summary>Writes a file into the scratch folder and returns its path.</summary>
    public string WriteFile(string name, string content)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, content);
        return path;
    }

    public Task<Result> RunAsync(params string[] args) => RunAsync(TimeSpan.FromSeconds(60), args);

    public async Task<Result> RunAsync(TimeSpan timeout, params string[] args)
    {
        var psi = new ProcessStartInfo(Binary)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add("--kubeconfig");
        psi.ArgumentList.Add(Kubeconfig);
        psi.ArgumentList.Add("--cache-dir");
        psi.ArgumentList.Add(Path.Combine(_dir, "cache"));
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["HOME"] = _dir;
        psi.Environment["KUBECONFIG"] = Kubeconfig;
        psi.Environment.Remove("KUBERNETES_SERVICE_HOST");
        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"kubectl {string.Join(' ', args)} did not finish in {timeout}");
        }

        return new Result(process.ExitCode, await stdout, await stderr);
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
            // Best effort.
        }
    }

    public sealed record Result(int ExitCode, string Stdout, string Stderr)
    {
        public override string ToString() => $"exit {ExitCode}\nstdout:\n{Stdout}\nstderr:\n{Stderr}";
    }
}
