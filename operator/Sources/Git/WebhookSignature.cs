using System.Security.Cryptography;

namespace Skiff.Sources.Git;

/// <summary>What a webhook's signature check found.</summary>
public enum SignatureCheck
{
    /// <summary>The header is the HMAC-SHA256 of the body under the secret.</summary>
    Valid,

    /// <summary>No <c>X-Hub-Signature-256</c> header.</summary>
    Missing,

    /// <summary>The header is not <c>sha256=</c> and 64 hex digits.</summary>
    Malformed,

    /// <summary>Well formed, but not the body's signature under this secret.</summary>
    Mismatch,
}

/// <summary>
/// GitHub's webhook signature (<c>X-Hub-Signature-256: sha256=&lt;hex HMAC-SHA256 of the raw body&gt;</c>), which Gitea and
/// Forgejo send too; compared in constant time.
/// </summary>
public static class WebhookSignature
{
    /// <summary>The header GitHub signs with.</summary>
    public const string Header = "X-Hub-Signature-256";

    private const string Prefix = "sha256=";

    /// <summary>Checks <paramref name="header"/> against the body.</summary>
    public static SignatureCheck Check(ReadOnlySpan<byte> secret, ReadOnlySpan<byte> body, string? header)
    {
        if (string.IsNullOrEmpty(header))
        {
            return SignatureCheck.Missing;
        }

        header = header.Trim();
        if (!header.StartsWith(Prefix, StringComparison.OrdinalIgnoreCase) || header.Length != Prefix.Length + 64)
        {
            return SignatureCheck.Malformed;
        }

        byte[] given;
        try
        {
            given = Convert.FromHexString(header.AsSpan(Prefix.Length));
        }
        catch (FormatException)
        {
            return SignatureCheck.Malformed;
        }

        var expected = HMACSHA256.HashData(secret, body);
        return CryptographicOperations.FixedTimeEquals(expected, given) ? SignatureCheck.Valid : SignatureCheck.Mismatch;
    }

    /// <summary>The header value GitHub would send for <paramref name="body"/> (tests, and a curl line in the docs).</summary>
    public static string Sign(ReadOnlySpan<byte> secret, ReadOnlySpan<byte> body) =>
        Prefix + Convert.ToHexStringLower(HMACSHA256.HashData(secret, body));

    /// <summary>
    /// The secret of <c>--webhook-secret-file</c>: the file's bytes without a trailing newline (as <c>echo</c> writes it).
    /// </summary>
    public static byte[] ReadSecret(string file)
    {
        var bytes = File.ReadAllBytes(file);
        var end = bytes.Length;
        while (end > 0 && bytes[end - 1] is (byte)'\n' or (byte)'\r')
        {
            end--;
        }

        return bytes[..end];
    }
}
