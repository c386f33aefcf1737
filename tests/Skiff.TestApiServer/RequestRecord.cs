namespace Skiff.TestApiServer;

/// <summary>One request the server answered, as kube-apiserver's RequestInfo sees it.</summary>
public sealed record RequestRecord(
    DateTimeOffset Time,
    string Method,
    string Path,
    string Query,
    string Verb,
    string ApiGroup,
    string ApiVersion,
    string Resource,
    string Subresource,
    string Namespace,
    string Name,
    string UserAgent,
    string Accept,
    string ContentType,
    int StatusCode)
{
    /// <summary>The client's IP address: which host (or network namespace) sent the request.</summary>
    public string RemoteAddress { get; init; } = "";

    /// <summary>A query parameter's value, or null.</summary>
    public string? QueryValue(string key) =>
        Microsoft.AspNetCore.WebUtilities.QueryHelpers.ParseQuery(Query).TryGetValue(key, out var v) ? v.ToString() : null;

    public override string ToString() => $"{Method} {Path}{Query} -> {StatusCode} ({Verb} {Resource})";
}
