namespace Skiff.Acme;

/// <summary>
/// Where certificates come from (<c>skiff run --acme-directory URL --acme-email ADDRESS</c>): the CA's ACME
/// directory and the account's contact e-mail (the CA writes there before a certificate expires).
/// </summary>
public sealed record AcmeOptions
{
    /// <summary>Let's Encrypt's production directory, the default.</summary>
    public static readonly Uri LetsEncrypt = new("https://acme-v02.api.letsencrypt.org/directory");

    public Uri Directory { get; init; } = LetsEncrypt;

    public string? Email { get; init; }

    /// <summary>The HTTP handler for the CA's API (tests trust their test CA's root here); null: the system's roots.</summary>
    public HttpMessageHandler? Handler { get; init; }

    /// <summary>A certificate is renewed once it expires within this long (30 days, as Let's Encrypt advises for its 90-day certificates).</summary>
    public TimeSpan RenewBefore { get; init; } = TimeSpan.FromDays(30);

    /// <summary>The longest one issuance may take (order, validation, finalization) before it counts as failed.</summary>
    public TimeSpan IssueTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>The problem with a <c>--acme-directory</c> value, or null when it is an absolute http(s) URL.</summary>
    public static string? DirectoryProblem(string value) =>
        Uri.TryCreate(value, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttps || uri.Scheme == Uri.UriSchemeHttp)
            ? null
            : $"\"{value}\" is not an absolute https URL; use the CA's ACME directory, e.g. {LetsEncrypt}";

    /// <summary>The problem with a <c>--acme-email</c> value, or null when it looks like an address (the CA checks the rest).</summary>
    public static string? EmailProblem(string value) =>
        value.Split('@') is [{ Length: > 0 }, { Length: > 0 } domain] && domain.Contains('.') && !value.Any(c => char.IsWhiteSpace(c) || c is ',' or ':' or '<' or '>')
            ? null
            : $"\"{value}\" is not an e-mail address; use one such as ops@example.com (the CA writes there before a certificate expires)";
}
