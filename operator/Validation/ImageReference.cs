using System.Text.RegularExpressions;

namespace Skiff.Validation;

/// <summary>Docker image references: <c>[registry[:port]/]path[:tag][@sha256:&lt;64 hex&gt;]</c>.</summary>
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
        return System.Text.Json.JsonSerializer.Serialize(shown, QuoteOptions);
    }

    private static readonly System.Text.Json.JsonSerializerOptions QuoteOptions = new()
    {
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };
}
