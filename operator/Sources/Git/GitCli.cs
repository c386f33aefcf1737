using System.Diagnostics;
using System.Text;

namespace Skiff.Sources.Git;

/// <summary>A <c>git</c> command failed: its exit code and what it said (already masked).</summary>
public sealed class GitException(string message, int exitCode) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}

/// <summary>
/// The one way Skiff runs <c>git</c>: the Git command line, not a library, because it speaks every transport users have
/// (file, smart HTTP, SSH with their keys and known hosts; LibGit2Sharp's native library has no SSH) and is the Git
/// every host already trusts. Arguments go as a list (no shell), secrets only through the environment of
/// <see cref="GitRemote.Environment"/>, and every message it returns goes through <see cref="GitRemote.Mask"/>.
/// </summary>
/// <param name="remote">Whose credentials and masking apply.</param>
/// <param name="timeout">How long one command may take (a fetch over a slow link included).</param>
public sealed class GitCli(GitRemote remote, TimeSpan timeout)
{
    /// <summary>The executable (on PATH).</summary>
    public const string Executable = "git";

    // What git adds after every failed SSH fetch: it would push the line that says why out of the message.
    private static readonly HashSet<string> Boilerplate = new(StringComparer.Ordinal)
    {
        "Please make sure you have the correct access rights",
        "and the repository exists.",
    };

    /// <summary>Runs git with <paramref name="args"/>; returns its standard output (trimmed), throws <see cref="GitException"/> on failure.</summary>
    public async Task<string> RunAsync(IReadOnlyList<string> args, CancellationToken ct, string? workingDirectory = null)
    {
        using var process = Start(args, workingDirectory);
        var stdout = process.StandardOutput.ReadToEndAsync(ct);
        var stderr = process.StandardError.ReadToEndAsync(ct);
        await WaitAsync(process, args, ct);
        var output = await stdout;
        var errors = await stderr;
        if (process.ExitCode != 0)
        {
            throw new GitException(Describe(args, process.ExitCode, errors), process.ExitCode);
        }

        return output.Trim();
    }

    /// <summary>Runs git with <paramref name="args"/> and hands its standard output as a stream to <paramref name="consume"/>.</summary>
    public async Task StreamAsync(IReadOnlyList<string> args, Func<Stream, CancellationToken, Task> consume, CancellationToken ct)
    {
        using var process = Start(args, null);
        var stderr = process.StandardError.ReadToEndAsync(ct);
        Exception? consumeError = null;
        try
        {
            await consume(process.StandardOutput.BaseStream, ct);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
        {
            consumeError = e;
            TryKill(process);
        }

        await WaitAsync(process, args, ct);
        var errors = await stderr;
        if (process.ExitCode != 0)
        {
            throw new GitException(Describe(args, process.ExitCode, errors), process.ExitCode);
        }

        if (consumeError is not null)
        {
            throw new GitException(remote.Mask($"git {args[0]}: {consumeError.Message}"), 0);
        }
    }

    /// <summary>The last non-empty lines of git's standard error, masked, as one line: what a user needs to fix it.</summary>
    public string Describe(IReadOnlyList<string> args, int exitCode, string stderr)
    {
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Where(l => !l.StartsWith("hint:", StringComparison.Ordinal) && !Boilerplate.Contains(l))
            .TakeLast(3)
            .ToList();
        var said = lines.Count == 0 ? $"exit code {exitCode}" : string.Join("; ", lines);
        return remote.Mask($"git {args[0]} failed: {said}");
    }

    private Process Start(IReadOnlyList<string> args, string? workingDirectory)
    {
        var info = new ProcessStartInfo(Executable)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            StandardErrorEncoding = Encoding.UTF8,
            StandardOutputEncoding = Encoding.UTF8,
        };
        if (workingDirectory is not null)
        {
            info.WorkingDirectory = workingDirectory;
        }

        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        foreach (var (name, value) in remote.Environment())
        {
            info.Environment[name] = value;
        }

        try
        {
            var process = Process.Start(info) ?? throw new GitException("git: cannot start it", -1);
            process.StandardInput.Close();
            return process;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new GitException($"git: cannot run it ({e.Message}); install Git (Debian: apt-get install git)", -1);
        }
    }

    private async Task WaitAsync(Process process, IReadOnlyList<string> args, CancellationToken ct)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        limit.CancelAfter(timeout);
        try
        {
            await process.WaitForExitAsync(limit.Token);
        }
        catch (OperationCanceledException)
        {
            TryKill(process);
            ct.ThrowIfCancellationRequested();
            throw new GitException($"git {args[0]} failed: no answer within {timeout.TotalSeconds:0} s", -1);
        }
    }

    private static void TryKill(Process process)
    {
        try
        {
            process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
    }
}
