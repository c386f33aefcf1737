using System.Text.RegularExpressions;

namespace Skiff.Validation;

/// <summary>
/// Docker image references, <c>[registry[:port]/]path[:tag][@sha256:&lt;64 hex&gt;]</c>, in one place: validation, the
/// parts a pull needs, the registry a login is for, and the familiar form GC compares (Docker reports tags as
/// <c>postgres:16</c>, <c>acme/api:1</c>, while users may write <c>docker.io/library/postgres:16</c>).
/// </summary>
public static partial class ImageReference
{
    /// <summary>Null when <paramref name="reference"/> is valid, else what is wrong, phrased to name the fix.</summary>
    public static string? Problem(string reference)
    {
        const string Example = "such as registry.example.com/team/app:1.4.2 or team/app@sha256:<64 hex digits>";
        if (reference.Length > 512)
        {
            return $"must be at most 512 characters, got {reference.Length}";
        }

        var at = reference.IndexOf('@');
        if (at >= 0 && !Digest().IsMatch(reference[(at + 1)..]))
        {
            return $"the digest must be sha256: followed by 64 lowercase hex digits, got {Text.Quote(reference[(at + 1)..])}";
        }

        var match = Reference().Match(at >= 0 ? reference[..at] : reference);
        if (!match.Success)
        {
            var lower = reference.ToLowerInvariant();
            return lower != reference && Reference().IsMatch(at >= 0 ? lower[..at] : lower)
                ? $"repository names must be lowercase, got {Text.Quote(reference)}"
                : $"must be an image reference {Example}, got {Text.Quote(reference)}";
        }

        if (match.Groups["name"].Value.Length > 255)
        {
            return "the repository name must be at most 255 characters";
        }

        return null;
    }

    /// <summary>Splits a reference into what the pull API wants: repository and tag (or digest), <c>latest</c> when it names neither.</summary>
    public static (string Repository, string Tag) SplitForPull(string reference)
    {
        var repository = Repository(reference);
        return repository.Length == reference.Length ? (reference, "latest") : (repository, reference[(repository.Length + 1)..]);
    }

    /// <summary>The registry host of a reference (docker.io when none is named), as dockerconfigjson keys name it.</summary>
    public static string Registry(string reference)
    {
        var slash = reference.IndexOf('/');
        if (slash < 0)
        {
            return "docker.io";
        }

        var first = reference[..slash];
        return first.Contains('.', StringComparison.Ordinal) || first.Contains(':', StringComparison.Ordinal) || first == "localhost" ? first : "docker.io";
    }

    private static readonly string[] DockerHubPrefixes =
        ["docker.io/library/", "index.docker.io/library/", "registry-1.docker.io/library/", "docker.io/", "index.docker.io/", "registry-1.docker.io/"];

    /// <summary>The reference without Docker Hub's implicit registry and <c>library/</c> prefix.</summary>
    public static string Familiar(string reference)
    {
        var r = reference.Trim();
        if (!r.Contains("docker.io/", StringComparison.Ordinal))
        {
            return r; // the common case, one vectorized search instead of six prefix checks
        }

        foreach (var prefix in DockerHubPrefixes)
        {
            if (r.StartsWith(prefix, StringComparison.Ordinal))
            {
                return r[prefix.Length..];
            }
        }

        return r;
    }

    /// <summary>The familiar reference, with <c>:latest</c> when it names neither a tag nor a digest (Docker's rule).</summary>
    public static string Normalize(string reference)
    {
        var r = Familiar(reference);
        return HasTagOrDigest(r) ? r : r + ":latest";
    }

    /// <summary>Whether the reference's last path component carries a <c>:tag</c>, or the reference an <c>@digest</c>.</summary>
    public static bool HasTagOrDigest(string reference) =>
        reference.Contains('@', StringComparison.Ordinal) || reference.LastIndexOf(':') > reference.LastIndexOf('/');

    /// <summary>The repository of a tag or digest reference: <c>acme/api</c> for <c>acme/api:1</c> or <c>acme/api@sha256:…</c>.</summary>
    public static string Repository(string reference)
    {
        var repo = RepositorySpan(reference);
        return repo.Length == reference.Length ? reference : repo.ToString();
    }

    /// <summary><see cref="Repository"/> without allocating.</summary>
    public static ReadOnlySpan<char> RepositorySpan(string reference)
    {
        var at = reference.IndexOf('@', StringComparison.Ordinal);
        if (at >= 0)
        {
            return reference.AsSpan(0, at);
        }

        var colon = reference.LastIndexOf(':');
        return colon > reference.LastIndexOf('/') ? reference.AsSpan(0, colon) : reference;
    }

    /// <summary>The placeholders older engines report for untagged images.</summary>
    public static bool IsPlaceholder(string reference) =>
        reference is "<none>:<none>" or "<none>@<none>" || reference.Length == 0;

    /// <summary>Image ids are compared in full <c>sha256:</c> form; a bare hex id gets the prefix.</summary>
    public static string NormalizeId(string id)
    {
        var t = id.Trim();
        return t.Contains(':', StringComparison.Ordinal) ? t : "sha256:" + t;
    }

    /// <summary>Whether a string in InUseNow is an image id rather than a reference.</summary>
    public static bool LooksLikeId(string value) =>
        value.StartsWith("sha256:", StringComparison.Ordinal) || (value.Length == 64 && value.All(char.IsAsciiHexDigitLower));

    /// <summary>
    /// Glob match where <c>*</c> stands for any run of characters (including <c>/</c> and <c>:</c>)
    /// and everything else is literal and case-sensitive. Linear-time greedy matching with
    /// backtracking to the last star, so hostile patterns cannot blow up a GC pass.
    /// </summary>
    public static bool Glob(ReadOnlySpan<char> pattern, ReadOnlySpan<char> text)
    {
        int p = 0, t = 0, star = -1, mark = 0;
        while (t < text.Length)
        {
            if (p < pattern.Length && pattern[p] == '*')
            {
                star = p++;
                mark = t;
            }
            else if (p < pattern.Length && pattern[p] == text[t])
            {
                p++;
                t++;
            }
            else if (star >= 0)
            {
                p = star + 1;
                t = ++mark;
            }
            else
            {
                return false;
            }
        }

        while (p < pattern.Length && pattern[p] == '*')
        {
            p++;
        }

        return p == pattern.Length;
    }

    [GeneratedRegex(@"^sha256:[0-9a-f]{64}$", RegexOptions.CultureInvariant)]
    private static partial Regex Digest();

    // From distribution/reference: domain components may be mixed case; path components are lowercase.
    [GeneratedRegex(@"^(?<name>(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)(?::[\w][\w.-]{0,127})?$", RegexOptions.CultureInvariant)]
    private static partial Regex Reference();
}

/// <summary>Small text helpers for messages.</summary>
internal static class Text
{
    /// <summary>A value quoted for a message, shortened so a huge value cannot flood the output.</summary>
    public static string Quote(string value)
    {
        var shown = value.Length > 64 ? value[..61] + "..." : value;
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(shown.Length + 2);
        using (var writer = new System.Text.Json.Utf8JsonWriter(buffer, QuoteOptions))
        {
            writer.WriteStringValue(shown);
        }

        return System.Text.Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private static readonly System.Text.Json.JsonWriterOptions QuoteOptions = new()
    {
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };
}
