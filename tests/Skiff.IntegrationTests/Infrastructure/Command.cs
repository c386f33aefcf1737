using System.Diagnostics;

namespace Skiff.IntegrationTests.Infrastructure;

/// <summary>Runs a host command (docker, htpasswd, sh) to completion for a test's set-up.</summary>
public static class Command
{
    /// <summary>Runs <paramref name="file"/> and returns its exit code and its output (stdout, then stderr).</summary>
    public static async Task<(int Code, string Output)> RunAsync(string file, IReadOnlyList<string> args, IReadOnlyDictionary<string, string>? environment = null)
    {
        var info = new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[name] = value;
        }

        using var p = Process.Start(info)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        return (p.ExitCode, await stdout + await stderr);
    }

    /// <summary>Runs <paramref name="file"/> and fails the test unless it exits 0; <paramref name="shown"/> is how the failure names it.</summary>
    public static async Task<string> MustAsync(string shown, string file, IReadOnlyList<string> args, IReadOnlyDictionary<string, string>? environment = null)
    {
        var (code, output) = await RunAsync(file, args, environment);
        Assert.True(code == 0, $"{shown}: {output}");
        return output;
    }
}
