using System.Diagnostics;
using System.Text;
using Skiff.IntegrationTests.Infrastructure;

namespace Skiff.IntegrationTests.FolderSource;

/// <summary>The real <c>skiff</c> executable, run as a child process (<see cref="SkiffDll"/>).</summary>
public sealed class SkiffProcess : IAsyncDisposable
{
    private readonly Process process;
    private readonly StringBuilder stdout = new();
    private int disposed;
    private readonly StringBuilder stderr = new();

    private SkiffProcess(Process process)
    {
        this.process = process;
    }

    /// <summary>
    /// The ReadyToRun publish scripts/test.sh names (SKIFF_TEST_SKIFF_DLL: the one the test image holds, built from the
    /// same tree), else the skiff.dll built beside the tests (an IDE's test run).
    /// </summary>
    public static string SkiffDll { get; } =
        Environment.GetEnvironmentVariable("SKIFF_TEST_SKIFF_DLL") is { Length: > 0 } published && File.Exists(published)
            ? published
            : Path.Combine(AppContext.BaseDirectory, "skiff.dll");

    /// <summary>Whether <see cref="SkiffDll"/> is an executable of its own (a NativeAOT publish's <c>skiff</c>), not run by <c>dotnet</c>.</summary>
    public static bool IsNative { get; } = !SkiffDll.EndsWith(".dll", StringComparison.Ordinal);

    /// <summary>The command line that runs skiff, for a shell.</summary>
    public static string ShellCommand => IsNative ? $"'{SkiffDll}'" : $"dotnet '{SkiffDll}'";

    public string Stdout
    {
        get
        {
            lock (stdout)
            {
                return stdout.ToString();
            }
        }
    }

    public string Stderr
    {
        get
        {
            lock (stderr)
            {
                return stderr.ToString();
            }
        }
    }

    public int Id => process.Id;

    public bool HasExited => process.HasExited;

    public static SkiffProcess Start(params string[] args) => StartUnder([], args);

    /// <summary>Starts skiff with extra environment variables.</summary>
    public static SkiffProcess StartWith(IReadOnlyDictionary<string, string> environment, params string[] args) => StartUnder([], args, environment);

    /// <summary>
    /// Starts skiff under a command <paramref name="prefix"/> that execs it, e.g.
    /// <c>nsenter --net=/var/run/netns/skiff-vps2</c> to run it in another network namespace.
    /// </summary>
    public static SkiffProcess StartUnder(IReadOnlyList<string> prefix, params string[] args) => StartUnder(prefix, args, null);

    private static SkiffProcess StartUnder(IReadOnlyList<string> prefix, string[] args, IReadOnlyDictionary<string, string>? environment)
    {
        string[] skiff = IsNative ? [SkiffDll] : ["dotnet", SkiffDll];
        var command = prefix.Concat(skiff).ToList();
        var info = new ProcessStartInfo(command[0])
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        foreach (var word in command.Skip(1))
        {
            info.ArgumentList.Add(word);
        }
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        info.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[name] = value;
        }
        var p = new Process { StartInfo = info, EnableRaisingEvents = true };
        var result = new SkiffProcess(p);
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) { lock (result.stdout) { result.stdout.AppendLine(e.Data); } } };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) { lock (result.stderr) { result.stderr.AppendLine(e.Data); } } };
        p.Start();
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return result;
    }

    /// <summary>Runs skiff to completion and returns its exit code and output.</summary>
    public static async Task<(int Exit, string Stdout, string Stderr)> RunAsync(TimeSpan timeout, params string[] args)
    {
        await using var p = Start(args);
        var exit = await p.WaitAsync(timeout);
        return (exit, p.Stdout, p.Stderr);
    }

    public async Task<int> WaitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"skiff did not exit within {timeout}; stderr:\n{Stderr}");
        }

        // WaitForExitAsync returns before the redirected streams are drained; this call waits for them.
        process.WaitForExit();
        return process.ExitCode;
    }

    /// <summary>SIGKILL: no chance to clean up, as in a crash or an OOM kill.</summary>
    /// <summary>Waits until the process has logged <paramref name="text"/> on stderr; a timeout shows the end of its log.</summary>
    public Task UntilLoggedAsync(string text, TimeSpan timeout) =>
        Eventually.TrueAsync($"skiff (pid {Id}) logs \"{text}\"", () => Stderr.Contains(text, StringComparison.Ordinal), timeout,
            () => (HasExited ? "(exited)\n" : "") + Stderr);

    public void Kill() => process.Kill(entireProcessTree: true);

    /// <summary>Kills the process if it still runs; a second call does nothing (a test's finally may dispose it again).</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref disposed, 1) == 1)
        {
            return;
        }

        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }

        process.Dispose();
    }
}
