using System.Text;
using Docker.DotNet;
using Skiff.Observability;

namespace Skiff.Cli;

/// <summary>
/// Copies a container's output streams (stdout and stderr as the engine multiplexes them) to the CLI's writers with every
/// secret masked. Whole lines are masked, so a secret split across two reads is still found; <see cref="Raw"/> (a TTY)
/// passes each read through as it comes, masked by itself, so prompts show at once.
/// </summary>
public sealed class MaskedOutput(TextWriter stdout, TextWriter stderr, IReadOnlyList<string> secrets)
{
    private readonly StringBuilder pendingOut = new();
    private readonly StringBuilder pendingErr = new();
    private readonly SecretRedactor redactor = Redactor(secrets);

    /// <summary>Write what arrives at once instead of by lines (an interactive TTY).</summary>
    public bool Raw { get; init; }

    /// <summary>Copies until the stream ends (or <paramref name="ct"/> stops it).</summary>
    public async Task CopyAsync(MultiplexedStream stream, CancellationToken ct)
    {
        var buffer = new byte[16 * 1024];
        var decoderOut = Encoding.UTF8.GetDecoder();
        var decoderErr = Encoding.UTF8.GetDecoder();
        var chars = new char[Encoding.UTF8.GetMaxCharCount(buffer.Length)];
        while (true)
        {
            var read = await stream.ReadOutputAsync(buffer, 0, buffer.Length, ct);
            if (read.EOF)
            {
                break;
            }

            var toErr = read.Target == MultiplexedStream.TargetStream.StandardError;
            var n = (toErr ? decoderErr : decoderOut).GetChars(buffer, 0, read.Count, chars, 0);
            Add(new string(chars, 0, n), toErr);
        }

        Flush();
    }

    /// <summary>Adds text read from one stream: whole lines go out masked, the rest waits for its end.</summary>
    public void Add(string text, bool toErr)
    {
        var (pending, writer) = toErr ? (pendingErr, stderr) : (pendingOut, stdout);
        if (Raw)
        {
            writer.Write(redactor.Redact(text));
            writer.Flush();
            return;
        }

        pending.Append(text);
        var all = pending.ToString();
        var end = all.LastIndexOf('\n');
        if (end < 0)
        {
            return;
        }

        writer.Write(redactor.Redact(all[..(end + 1)]));
        writer.Flush();
        pending.Clear().Append(all, end + 1, all.Length - end - 1);
    }

    /// <summary>Writes what is left of unfinished lines.</summary>
    public void Flush()
    {
        foreach (var (pending, writer) in new[] { (pendingOut, stdout), (pendingErr, stderr) })
        {
            if (pending.Length > 0)
            {
                writer.Write(redactor.Redact(pending.ToString()));
                pending.Clear();
            }

            writer.Flush();
        }
    }

    private static SecretRedactor Redactor(IEnumerable<string> secrets)
    {
        var redactor = new SecretRedactor();
        foreach (var secret in secrets)
        {
            redactor.Register(secret);
        }

        return redactor;
    }
}
