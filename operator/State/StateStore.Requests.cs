using System.Text.Json;
using System.Text.Json.Serialization;
using Skiff.Api;

namespace Skiff.State;

/// <summary>
/// A restart or a rollback asked for with <c>skiff restart</c>/<c>skiff rollback</c> of a folder source's stack: the CLI
/// cannot edit the user's YAML, and the running <c>skiff run</c> owns the status records, so the CLI leaves the request
/// as a file in <c>requests/</c>; the operator takes it (and deletes it), keeps it in the record as
/// <see cref="StatusRecord.Override"/> and rolls it out like any change.
/// </summary>
public sealed class RolloutRequest
{
    public const string Restart = "restart";
    public const string Rollback = "rollback";

    /// <summary>restart or rollback.</summary>
    [JsonPropertyName("action")]
    public string Action { get; set; } = Restart;

    /// <summary>For a rollback: the revision gone back to.</summary>
    [JsonPropertyName("revision")]
    public long? Revision { get; set; }

    /// <summary>For a rollback: that revision's image.</summary>
    [JsonPropertyName("image")]
    public string? Image { get; set; }

    [JsonPropertyName("requestedAt")]
    public DateTimeOffset RequestedAt { get; set; }
}

/// <summary>
/// A request the operator took, kept in the stack's record for as long as the document is the one it was asked for
/// (<see cref="DocumentHash"/>): the next edit of the document wins over it, as a new deploy does.
/// </summary>
public sealed class RolloutOverride
{
    [JsonPropertyName("documentHash")]
    public string? DocumentHash { get; set; }

    /// <summary>The image a rollback went back to, or null (a restart of the document's image).</summary>
    [JsonPropertyName("image")]
    public string? Image { get; set; }

    /// <summary>The revision a rollback went back to.</summary>
    [JsonPropertyName("rollbackTo")]
    public long? RollbackTo { get; set; }

    /// <summary>The value of <c>skiff.dev/restartedAt</c>: a new one rolls the stack out again.</summary>
    [JsonPropertyName("restartedAt")]
    public string RestartedAt { get; set; } = "";
}

public sealed partial class StateStore
{
    private string RequestsDir => Path.Combine(Root, "requests");

    /// <summary>The folder a running operator watches for requests.</summary>
    public string RequestsFolder => RequestsDir;

    public void WriteRequest(string ns, string name, RolloutRequest request)
    {
        Directory.CreateDirectory(RequestsDir);
        AtomicFile.Write(RequestPath(ns, name), JsonSerializer.SerializeToUtf8Bytes(request, Json.Info<RolloutRequest>()));
    }

    /// <summary>The request waiting for the operator, or null.</summary>
    public RolloutRequest? ReadRequest(string ns, string name)
    {
        try
        {
            var path = RequestPath(ns, name);
            return File.Exists(path) ? JsonSerializer.Deserialize(File.ReadAllBytes(path), Json.Info<RolloutRequest>()) : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    public void DeleteRequest(string ns, string name)
    {
        var path = RequestPath(ns, name);
        if (File.Exists(path))
        {
            File.Delete(path);
        }
    }

    /// <summary>The stack a request file is for (<c>NS_NAME.json</c>), or null for another file.</summary>
    public static (string Namespace, string Name)? RequestKey(string path)
    {
        var file = Path.GetFileName(path);
        if (!file.EndsWith(".json", StringComparison.Ordinal) || file.Split('_', 2) is not [{ Length: > 0 } ns, { Length: > 5 } rest])
        {
            return null;
        }

        return (ns, rest[..^5]);
    }

    private string RequestPath(string ns, string name) => Path.Combine(RequestsDir, $"{ns}_{name}.json");
}
