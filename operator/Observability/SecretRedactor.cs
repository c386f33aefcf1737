using System.Collections.Immutable;

namespace Skiff.Observability;

/// <summary>
/// The secret values this process knows (generated database passwords, values read from
/// Secrets), and <see cref="Redact"/>, which masks them in any text: log messages and their
/// properties, before they reach a sink.
/// </summary>
/// <remarks>
/// # Guarantees
/// - Every occurrence of every registered value is masked, overlapping ones too: the union of the
///   matches becomes one <see cref="SecretMasker.Mask"/>, so no edge of a longer secret survives
///   because a shorter one was replaced first.
/// - Thread-safe; <see cref="Redact"/> takes no lock and returns the same string when nothing matched.
///
/// # Caveats
/// Values shorter than <see cref="MinimumLength"/> are ignored (as <see cref="SecretMasker"/> does):
/// masking "1" or "yes" everywhere would destroy the logs and hint at the value. Values are
/// matched literally, so a secret that a log line shows encoded (base64, URL-escaped) is not found.
/// </remarks>
public sealed class SecretRedactor
{
    /// <summary>The shortest value that is registered.</summary>
    public const int MinimumLength = 4;

    private readonly Lock gate = new();

    // Longest first; replaced whole on every Register so readers never lock.
    private ImmutableArray<string> secrets = [];

    /// <summary>
    /// The process's redactor: Program.cs puts it in the log pipeline before any command runs, and
    /// whatever learns a secret (the reconciler, the sources) registers it here.
    /// </summary>
    public static SecretRedactor Shared { get; } = new();

    /// <summary>How many distinct values are registered.</summary>
    public int Count => secrets.Length;

    /// <summary>Remembers a secret value; null, short and known values are ignored.</summary>
    /// <param name="secret">The value.</param>
    public void Register(string? secret)
    {
        if (secret is null || secret.Length < MinimumLength)
        {
            return;
        }

        lock (gate)
        {
            if (!secrets.Contains(secret, StringComparer.Ordinal))
            {
                secrets = [.. secrets.Append(secret).OrderByDescending(s => s.Length).ThenBy(s => s, StringComparer.Ordinal)];
            }
        }
    }

    /// <summary>The text with every registered value replaced by <see cref="SecretMasker.Mask"/>.</summary>
    /// <param name="text">Any text.</param>
    public string Redact(string text)
    {
        var known = secrets;
        if (known.IsEmpty || string.IsNullOrEmpty(text))
        {
            return text;
        }

        bool[]? masked = null;
        foreach (var secret in known)
        {
            for (var at = text.IndexOf(secret, StringComparison.Ordinal); at >= 0; at = text.IndexOf(secret, at + 1, StringComparison.Ordinal))
            {
                masked ??= new bool[text.Length];
                Array.Fill(masked, true, at, secret.Length);
            }
        }

        if (masked is null)
        {
            return text;
        }

        var result = new System.Text.StringBuilder(text.Length);
        for (var i = 0; i < text.Length;)
        {
            if (!masked[i])
            {
                result.Append(text[i++]);
                continue;
            }

            result.Append(SecretMasker.Mask);
            while (i < text.Length && masked[i])
            {
                i++;
            }
        }

        return result.ToString();
    }
}
