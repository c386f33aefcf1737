using System.ComponentModel;
using System.Diagnostics;

namespace Skiff.Sources.Directory;

/// <summary>What <see cref="AgeCli.DecryptAsync"/> gave: the plaintext, or why there is none (a message without plaintext nor key).</summary>
/// <param name="Plaintext">The decrypted bytes, or null.</param>
/// <param name="Problem">Why there are none, in Skiff's words (never age's, never a value).</param>
/// <param name="Transient">The file was not the problem (age missing, too slow): worth trying again.</param>
public sealed record AgeResult(byte[]? Plaintext, string? Problem, bool Transient = false);

/// <summary>
/// The one way Skiff runs <c>age</c> (Debian's <c>age</c> package: <c>age</c> and <c>age-keygen</c> on PATH): the
/// command line, not a library, because no NuGet package implementing age is served here, and the binary is the
/// reference implementation users encrypt with. Arguments go as a list (no shell); the ciphertext goes in on standard
/// input and the plaintext comes back on standard output, never through a file nor a log.
/// </summary>
/// <remarks>
/// age's own error text is never passed on: for a file that is not age at all it quotes the file's first line, which
/// may be plaintext. Failures are told apart by their kind and said in Skiff's words.
/// </remarks>
/// <param name="keyFile">The identity file (<c>age-keygen -o KEYFILE</c>), as given to <c>--age-key-file</c>.</param>
/// <param name="timeout">How long one run may take.</param>
public sealed class AgeCli(string keyFile, TimeSpan timeout)
{
    public const string Executable = "age";
    public const string KeygenExecutable = "age-keygen";

    private const string Missing = "the age program is not installed on this host: apt-get install age";

    public string KeyFile { get; } = keyFile;

    /// <summary>The public key (recipient) of <see cref="KeyFile"/>, or what is wrong with the file. Safe to log.</summary>
    public async Task<(string? Recipient, string? Problem)> RecipientAsync(CancellationToken ct)
    {
        if (!File.Exists(KeyFile))
        {
            return (null, $"{KeyFile} does not exist: create it with age-keygen -o {KeyFile}");
        }

        var run = await RunAsync(KeygenExecutable, ["-y", "--", KeyFile], null, ct);
        if (run.Problem is not null)
        {
            return (null, run.Problem);
        }

        var recipient = System.Text.Encoding.UTF8.GetString(run.Stdout).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault();
        return run.Exit == 0 && recipient is { Length: > 0 }
            ? (recipient, null)
            : (null, $"{KeyFile} is not an age identity file (AGE-SECRET-KEY-1… lines, as age-keygen writes): check the file");
    }

    /// <summary>Decrypts <paramref name="ciphertext"/> for the folder scan, which is synchronous (<see cref="DirectorySource.Rescan"/>).</summary>
    public AgeResult Decrypt(byte[] ciphertext) => DecryptAsync(ciphertext, CancellationToken.None).GetAwaiter().GetResult();

    /// <summary>Decrypts <paramref name="ciphertext"/> (binary or armored) with <see cref="KeyFile"/>.</summary>
    public async Task<AgeResult> DecryptAsync(byte[] ciphertext, CancellationToken ct)
    {
        var run = await RunAsync(Executable, ["--decrypt", "--identity", KeyFile], ciphertext, ct);
        if (run.Problem is not null)
        {
            return new AgeResult(null, run.Problem, Transient: true);
        }

        return run.Exit == 0 ? new AgeResult(run.Stdout, null) : new AgeResult(null, Classify(run.Stderr));
    }

    /// <summary>What a failed <c>age --decrypt</c> means, from its standard error, in words that quote none of it.</summary>
    internal string Classify(string stderr)
    {
        if (stderr.Contains("no identity matched", StringComparison.Ordinal))
        {
            return $"it was not encrypted to the key in {KeyFile}: encrypt it again to that key's recipient (age-keygen -y {KeyFile}), or pass the right --age-key-file";
        }

        if (stderr.Contains($"reading \"{KeyFile}\"", StringComparison.Ordinal) || stderr.Contains("identity", StringComparison.Ordinal))
        {
            return $"the key file {KeyFile} cannot be read as an age identity file: check it (age-keygen -y {KeyFile} prints its recipient)";
        }

        if (stderr.Contains("header", StringComparison.Ordinal))
        {
            return "it is not an age-encrypted file (its header cannot be read): encrypt it with age -r RECIPIENT -o FILE.age";
        }

        return "it is damaged (age could not decrypt it to the end): encrypt it again";
    }

    private async Task<(int Exit, byte[] Stdout, string Stderr, string? Problem)> RunAsync(string program, IReadOnlyList<string> args, byte[]? input, CancellationToken ct)
    {
        var info = new ProcessStartInfo(program)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        using var process = new Process { StartInfo = info };
        try
        {
            process.Start();
        }
        catch (Win32Exception)
        {
            return (-1, [], "", Missing);
        }

        using var timer = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timer.CancelAfter(timeout);
        try
        {
            using var stdout = new MemoryStream();
            var reading = process.StandardOutput.BaseStream.CopyToAsync(stdout, timer.Token);
            var stderr = process.StandardError.ReadToEndAsync(timer.Token);
            try
            {
                if (input is not null)
                {
                    await process.StandardInput.BaseStream.WriteAsync(input, timer.Token);
                }
            }
            catch (IOException)
            {
                // age stopped reading (a bad header, a bad key): its exit code and standard error say why.
            }
            finally
            {
                process.StandardInput.Close();
            }

            await reading;
            var errors = await stderr;
            await process.WaitForExitAsync(timer.Token);
            return (process.ExitCode, stdout.ToArray(), errors, null);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            TryKill(process);
            return (-1, [], "", $"{program} did not finish within {timeout.TotalSeconds:0}s");
        }
        catch (OperationCanceledException)
        {
            TryKill(process);
            throw;
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
        }
    }
}
