using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Skiff.Api;

namespace Skiff.State;

/// <summary>One resource's record in the state folder: enough to print, prune and report it.</summary>
public sealed class StatusRecord
{
    [JsonPropertyName("namespace")]
    public string Namespace { get; set; } = "default";

    [JsonPropertyName("name")]
    public string Name { get; set; } = "";

    [JsonPropertyName("node")]
    public string? Node { get; set; }

    /// <summary>When Skiff first saw the resource (the AGE column).</summary>
    [JsonPropertyName("createdAt")]
    public DateTimeOffset CreatedAt { get; set; }

    /// <summary>Bumped each time the document's spec changes, like metadata.generation.</summary>
    [JsonPropertyName("generation")]
    public long Generation { get; set; }

    /// <summary>Hash of the document's spec as last seen, to tell when to bump the generation.</summary>
    [JsonPropertyName("documentHash")]
    public string? DocumentHash { get; set; }

    /// <summary>
    /// The source that wrote the record (the reconciler's <c>StackContext.SourceId</c>) when it is not the folder
    /// source: the Kubernetes source mirrors its resources here so that <c>skiff gc</c> and <c>skiff status</c>
    /// on the node know them. A folder source never prunes a record of another source.
    /// </summary>
    [JsonPropertyName("source")]
    public string? Source { get; set; }

    /// <summary>The file the document was read from (a folder source): a file that cannot be parsed protects its stacks from pruning.</summary>
    [JsonPropertyName("file")]
    public string? File { get; set; }

    /// <summary>
    /// What the folder source that last reconciled the stack hashes into its id: its canonical path or its
    /// <c>--source-name</c>. After a move, it names the <c>--source-name</c> that finds the stack again.
    /// </summary>
    [JsonPropertyName("sourceName")]
    public string? SourceName { get; set; }

    /// <summary>The last valid spec: deletion (and a prune) needs its reclaim policy after the document is gone.</summary>
    [JsonPropertyName("spec")]
    public AppDeploymentSpec? Spec { get; set; }

    [JsonPropertyName("status")]
    public AppDeploymentStatus? Status { get; set; }

    /// <summary>A restart or rollback the operator took from <c>skiff restart</c>/<c>skiff rollback</c> (StateStore.Requests.cs).</summary>
    [JsonPropertyName("override")]
    public RolloutOverride? Override { get; set; }
}

/// <summary>
/// The state folder (DESIGN §3): status JSON per resource written atomically, generated secrets
/// (mode 0600), the last Events of each resource (<c>StateStore.Events.cs</c>), and a lock so that two
/// <c>skiff run</c> never share one folder.
/// </summary>
public sealed partial class StateStore
{
    public static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        TypeInfoResolver = StateJsonContext.Default,
    };

    public StateStore(string root)
    {
        Root = Path.GetFullPath(root);
    }

    public string Root { get; }

    private string StatusDir => Path.Combine(Root, "status");

    private string SecretsDir => Path.Combine(Root, "secrets");

    /// <summary>Creates the folders (secrets readable by the owner only).</summary>
    public void EnsureCreated()
    {
        Directory.CreateDirectory(Root);
        Directory.CreateDirectory(StatusDir);
        Directory.CreateDirectory(SecretsDir);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(SecretsDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
    }

    /// <summary>
    /// Takes the folder's lock for as long as the returned handle lives. Throws
    /// <see cref="StateLockedException"/> when another process holds it.
    /// </summary>
    public IDisposable Lock(string purpose)
    {
        EnsureCreated();
        var path = Path.Combine(Root, "skiff.lock");
        try
        {
            // FileShare.None is an exclusive flock on Linux: released by the kernel if the process dies.
            var stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            // Who holds it goes into a separate file: the lock file itself cannot be read while locked.
            System.IO.File.WriteAllText(path + ".owner", $"{Environment.ProcessId} {purpose}\n");
            return stream;
        }
        catch (IOException)
        {
            var holder = "another process";
            try
            {
                var line = System.IO.File.ReadAllText(path + ".owner").Trim().Split(' ', 2);
                if (line is [var pid, var what])
                {
                    holder = $"process {pid} ({what})";
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
            }

            throw new StateLockedException($"the state folder {Root} is in use by {holder}; stop it first, or use another --state-dir");
        }
    }

    public IReadOnlyList<StatusRecord> ReadAll()
    {
        if (!Directory.Exists(StatusDir))
        {
            return [];
        }

        var records = new List<StatusRecord>();
        foreach (var file in Directory.EnumerateFiles(StatusDir, "*.json").Order(StringComparer.Ordinal))
        {
            if (TryRead(file) is { } record)
            {
                records.Add(record);
            }
        }

        return records;
    }

    public StatusRecord? Read(string ns, string name) => TryRead(StatusPath(ns, name));

    public void Write(StatusRecord record) => Write(record, Serialize(record));

    /// <summary>Writes a record already serialised with <see cref="Serialize"/> (callers that compare before writing).</summary>
    public void Write(StatusRecord record, byte[] json) => AtomicFile.Write(StatusPath(record.Namespace, record.Name), json);

    public static byte[] Serialize(StatusRecord record) => JsonSerializer.SerializeToUtf8Bytes(record, Json.Info<StatusRecord>());

    /// <summary>Forgets a resource: its status record and its events.</summary>
    public void Delete(string ns, string name)
    {
        foreach (var path in new[] { StatusPath(ns, name), EventsPath(ns, name) })
        {
            if (File.Exists(path))
            {
                File.Delete(path);
            }
        }
    }

    /// <summary>The image first-seen and last-used times (DESIGN §3), kept by image GC.</summary>
    public string FirstSeenPath => Path.Combine(Root, "images.json");

    /// <summary>The last image GC report of <paramref name="node"/>: <c>gc/&lt;node&gt;.json</c>.</summary>
    public string GcReportPath(string node) => Path.Combine(Root, "gc", $"{node}.json");

    public void WriteGcReport(string node, byte[] json) => AtomicFile.Write(GcReportPath(node), json);

    /// <summary>A generated secret's data, or null.</summary>
    public Dictionary<string, string>? ReadSecret(string ns, string name)
    {
        var path = SecretPath(ns, name);
        if (!File.Exists(path))
        {
            return null;
        }

        return JsonSerializer.Deserialize(File.ReadAllBytes(path), Json.Info<Dictionary<string, string>>());
    }

    public void WriteSecret(string ns, string name, Dictionary<string, string> data) =>
        AtomicFile.Write(SecretPath(ns, name), JsonSerializer.SerializeToUtf8Bytes(data, Json.Info<Dictionary<string, string>>()), ownerOnly: true);

    public void DeleteSecret(string ns, string name)
    {
        var path = SecretPath(ns, name);
        if (File.Exists(path))
        {
            File.Delete(path);
        }
    }

    /// <summary>A stable id of this folder for the dev.skiff.source label of a folder source.</summary>
    public static string SourceId(string kind, string location) =>
        kind + "-" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(location)))[..16];

    private string StatusPath(string ns, string name) => Path.Combine(StatusDir, $"{ns}_{name}.json");

    private string SecretPath(string ns, string name) => Path.Combine(SecretsDir, $"{ns}_{name}.json");

    private static StatusRecord? TryRead(string path)
    {
        try
        {
            return File.Exists(path) ? JsonSerializer.Deserialize(File.ReadAllBytes(path), Json.Info<StatusRecord>()) : null;
        }
        catch (JsonException)
        {
            // A torn or hand-edited file is treated as absent; the next reconcile writes it anew.
            return null;
        }
    }
}

/// <summary>The state folder is held by another process.</summary>
public sealed class StateLockedException(string message) : Exception(message);

/// <summary>Generated passwords: 32 characters from a URL-safe alphabet, from the OS's CSPRNG.</summary>
public static class Passwords
{
    private const string Alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

    public static string Generate() => RandomNumberGenerator.GetString(Alphabet, 32);
}
