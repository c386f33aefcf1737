using System.Diagnostics;

namespace Skiff.IntegrationTests.FolderSource;

/// <summary>Keys and encrypted files made with the real <c>age</c> and <c>age-keygen</c> (Debian's <c>age</c>, scripts/install-deps.sh).</summary>
public static class AgeFiles
{
    /// <summary>Writes a new identity to <paramref name="keyFile"/>; returns its recipient (public key).</summary>
    public static string NewKey(string keyFile)
    {
        Run("age-keygen", ["-o", keyFile], null);
        return Run("age-keygen", ["-y", keyFile], null).Trim();
    }

    /// <summary>Encrypts <paramref name="plaintext"/> to <paramref name="recipient"/> into <paramref name="file"/>.</summary>
    public static void Encrypt(string recipient, string plaintext, string file) =>
        Run("age", ["-r", recipient, "-o", file], plaintext);

    private static string Run(string program, string[] args, string? input)
    {
        var info = new ProcessStartInfo(program) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        using var process = Process.Start(info)!;
        process.StandardInput.Write(input ?? "");
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{program} {string.Join(' ', args)} exited {process.ExitCode}: {stderr.Result}");
        }

        return stdout.Result;
    }
}
