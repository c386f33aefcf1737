using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using k8s.Models;
using Skiff.Api;
using Skiff.Reconcile;
using Skiff.Validation;

namespace Skiff.Sources.Directory;

/// <summary>
/// A Secret document of the folder with its values read: from <c>data</c>/<c>stringData</c> and from the files its
/// annotations name; or, when a file cannot be read or decrypted, the reason and message the stacks using it report.
/// </summary>
/// <param name="Data">The values, or null when <paramref name="Problem"/> says why there are none.</param>
/// <param name="Reason"><see cref="Reasons.SecretNotDecrypted"/> (an <c>.age</c> file) or <see cref="Reasons.SecretNotFound"/> (a missing or malformed file).</param>
/// <param name="Problem">The message, naming the document, the file and the fix; never a value.</param>
public sealed record FolderSecret(IReadOnlyDictionary<string, byte[]>? Data, string? Reason, string? Problem)
{
    /// <summary>The document's <c>type</c> (<c>Opaque</c> when it gives none, as the Kubernetes API defaults it).</summary>
    public string Type { get; init; } = "Opaque";
}

/// <summary>
/// Values of Secret documents kept in files beside them, so that a repository holds ciphertext only. Two annotations,
/// which keep the document valid Kubernetes YAML (kubectl applies it as a Secret with these annotations):
/// <list type="bullet">
/// <item><c>skiff.dev/from-env-file: app.env[.age][, other.env]</c>: <c>KEY=VALUE</c> lines, as
/// <c>kubectl create secret generic --from-env-file</c> reads them (blank lines and <c>#</c> lines skipped, the value
/// taken as written, quotes included).</item>
/// <item><c>skiff.dev/from-file: [KEY=]FILE[, …]</c>: the whole file is the value, under KEY or the file's name
/// without <c>.age</c>, as <c>--from-file</c>.</item>
/// </list>
/// Paths are relative to the document's file and must stay inside the folder (links resolved). A file named
/// <c>*.age</c> is decrypted with the operator's key (<c>--age-key-file</c>, <see cref="AgeCli"/>). Each key comes from
/// one place: a key given twice is an error.
/// </summary>
/// <param name="age">The key, or null: then every <c>*.age</c> file is <see cref="Reasons.SecretNotDecrypted"/>.</param>
public sealed class SecretFiles(AgeCli? age)
{
    public const string EnvFileAnnotation = "skiff.dev/from-env-file";
    public const string FileAnnotation = "skiff.dev/from-file";
    public const string AgeSuffix = ".age";

    /// <summary>As the Kubernetes API: a Secret holds at most 1 MiB.</summary>
    public const int MaxBytes = 1024 * 1024;

    private readonly object gate = new();
    private Dictionary<string, AgeResult> decrypted = new(StringComparer.Ordinal);
    private Dictionary<string, AgeResult> used = new(StringComparer.Ordinal);

    /// <summary>Whether the document names files at all.</summary>
    public static bool NamesFiles(V1Secret secret) =>
        secret.Metadata.Annotations is { } a && (a.ContainsKey(EnvFileAnnotation) || a.ContainsKey(FileAnnotation));

    /// <summary>
    /// Reads the values of <paramref name="secret"/>, written in <paramref name="documentFile"/> at
    /// <paramref name="location"/> (FILE:DOC), inside the folder <paramref name="root"/>.
    /// </summary>
    public FolderSecret Resolve(V1Secret secret, string documentFile, string location, string root)
    {
        var name = $"Secret \"{secret.Metadata.Name}\" ({location})";
        var values = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        var from = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (k, v) in secret.Data ?? new Dictionary<string, byte[]>())
        {
            values[k] = v;
            from[k] = "the document's data/stringData";
        }

        foreach (var (k, v) in secret.StringData ?? new Dictionary<string, string>())
        {
            values[k] = Encoding.UTF8.GetBytes(v);
            from[k] = "the document's data/stringData";
        }

        var annotations = secret.Metadata.Annotations ?? new Dictionary<string, string>();
        var folder = Path.GetDirectoryName(documentFile) ?? root;
        string canonicalRoot;
        try
        {
            canonicalRoot = FolderIdentity.CanonicalPath(root);
        }
        catch (IOException e)
        {
            return Fail(Reasons.SecretNotFound, $"{name}: the folder cannot be read: {e.Message}");
        }

        if (annotations.TryGetValue(EnvFileAnnotation, out var envFiles))
        {
            foreach (var entry in Entries(envFiles))
            {
                var where = $"{name}: {EnvFileAnnotation} {Text.Quote(entry)}";
                var (bytes, reason, problem) = Read(entry, folder, canonicalRoot);
                if (problem is not null)
                {
                    return Fail(reason!, $"{where}: {problem}");
                }

                var parsed = ParseEnvFile(bytes!, out var envProblem);
                if (envProblem is not null)
                {
                    return Fail(IsAge(entry) ? Reasons.SecretNotDecrypted : Reasons.SecretNotFound, $"{where}: {envProblem}");
                }

                foreach (var (k, v) in parsed)
                {
                    if (from.TryGetValue(k, out var first))
                    {
                        return Fail(Reasons.SecretNotFound, $"{where}: key \"{k}\" is given by {first} already; give each key in one place");
                    }

                    values[k] = v;
                    from[k] = entry;
                }
            }
        }

        if (annotations.TryGetValue(FileAnnotation, out var files))
        {
            foreach (var entry in Entries(files))
            {
                var where = $"{name}: {FileAnnotation} {Text.Quote(entry)}";
                var equals = entry.IndexOf('=', StringComparison.Ordinal);
                var file = equals < 0 ? entry : entry[(equals + 1)..].Trim();
                var key = equals < 0 ? KeyOf(file) : entry[..equals].Trim();
                if (file.Length == 0 || key.Length == 0)
                {
                    return Fail(Reasons.SecretNotFound, $"{where}: write [KEY=]FILE, e.g. tls.key=certs/tls.key.age");
                }

                if (key.Length > 253 || !Regex.IsMatch(key, Patterns.SecretKey))
                {
                    return Fail(Reasons.SecretNotFound, $"{where}: the key \"{key}\" must be {Patterns.SecretKeyText}; name it with KEY=FILE");
                }

                if (from.TryGetValue(key, out var first))
                {
                    return Fail(Reasons.SecretNotFound, $"{where}: key \"{key}\" is given by {first} already; give each key in one place");
                }

                var (bytes, reason, problem) = Read(file, folder, canonicalRoot);
                if (problem is not null)
                {
                    return Fail(reason!, $"{where}: {problem}");
                }

                values[key] = bytes!;
                from[key] = entry;
            }
        }

        return new FolderSecret(values, null, null);
    }

    /// <summary>Forgets the plaintext of files no scan since the last call read (a file changed or gone).</summary>
    public void Sweep()
    {
        lock (gate)
        {
            decrypted = used;
            used = new Dictionary<string, AgeResult>(StringComparer.Ordinal);
        }
    }

    /// <summary>
    /// <c>KEY=VALUE</c> lines as <c>kubectl create secret --from-env-file</c> reads them; a message naming the line (never
    /// its text, which may be a value) when one is not.
    /// </summary>
    public static Dictionary<string, byte[]> ParseEnvFile(byte[] bytes, out string? problem)
    {
        problem = null;
        var values = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        string text;
        try
        {
            text = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            problem = "is not UTF-8 text: an env-file holds KEY=VALUE lines (use skiff.dev/from-file for a binary value)";
            return values;
        }

        var lines = text.TrimStart('\uFEFF').Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i].TrimEnd('\r').TrimStart();
            if (line.Length == 0 || line.StartsWith('#'))
            {
                continue;
            }

            var equals = line.IndexOf('=', StringComparison.Ordinal);
            if (equals <= 0)
            {
                problem = $"line {i + 1}: expected KEY=VALUE";
                return values;
            }

            var key = line[..equals];
            if (key.Length > 253 || !Regex.IsMatch(key, Patterns.SecretKey))
            {
                problem = $"line {i + 1}: the name before '=' must be {Patterns.SecretKeyText}";
                return values;
            }

            if (values.ContainsKey(key))
            {
                problem = $"line {i + 1}: key \"{key}\" is given twice";
                return values;
            }

            values[key] = Encoding.UTF8.GetBytes(line[(equals + 1)..]);
        }

        return values;
    }

    private static IEnumerable<string> Entries(string annotation) =>
        annotation.Split(',', StringSplitOptions.TrimEntries);

    private static bool IsAge(string file) => file.EndsWith(AgeSuffix, StringComparison.Ordinal);

    private static string KeyOf(string file)
    {
        var fileName = Path.GetFileName(file);
        return IsAge(fileName) ? fileName[..^AgeSuffix.Length] : fileName;
    }

    private static FolderSecret Fail(string reason, string message) => new(null, reason, message);

    /// <summary>The file's bytes, decrypted when it is <c>*.age</c>; or the reason and problem.</summary>
    private (byte[]? Bytes, string? Reason, string? Problem) Read(string file, string folder, string canonicalRoot)
    {
        if (file.Length == 0)
        {
            return (null, Reasons.SecretNotFound, "an empty file name (a stray comma?): list files as a, b");
        }

        if (Path.IsPathRooted(file))
        {
            return (null, Reasons.SecretNotFound, "must be a path relative to the document's file, inside the folder");
        }

        string full;
        try
        {
            full = FolderIdentity.CanonicalPath(Path.Combine(folder, file));
        }
        catch (IOException)
        {
            return (null, Reasons.SecretNotFound, "a loop of symbolic links");
        }

        if (!full.StartsWith(canonicalRoot + "/", StringComparison.Ordinal))
        {
            return (null, Reasons.SecretNotFound, "is outside the folder Skiff reads: keep the file beside the document");
        }

        byte[] bytes;
        try
        {
            var info = new FileInfo(full);
            if (!info.Exists)
            {
                return (null, Reasons.SecretNotFound, "no such file: add it beside the document (Skiff retries by itself)");
            }

            if (info.Length > MaxBytes)
            {
                return (null, Reasons.SecretNotFound, $"is larger than 1 MiB, a Secret's limit ({info.Length} bytes)");
            }

            bytes = File.ReadAllBytes(full);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return (null, Reasons.SecretNotFound, $"cannot be read: {e.Message}");
        }

        if (!IsAge(file))
        {
            return (bytes, null, null);
        }

        if (age is null)
        {
            return (null, Reasons.SecretNotDecrypted, "is encrypted with age and Skiff has no key: pass --age-key-file KEYFILE (or set SKIFF_AGE_KEY_FILE) to skiff run, plan, backup or restore");
        }

        var result = Decrypt(bytes);
        return result.Plaintext is { } plain
            ? (plain, null, null)
            : (null, Reasons.SecretNotDecrypted, $"cannot be decrypted with --age-key-file {age.KeyFile}: {result.Problem}");
    }

    private AgeResult Decrypt(byte[] ciphertext)
    {
        var hash = Convert.ToHexString(SHA256.HashData(ciphertext));
        lock (gate)
        {
            if (used.TryGetValue(hash, out var seen) || decrypted.TryGetValue(hash, out seen))
            {
                used[hash] = seen;
                return seen;
            }
        }

        var result = age!.Decrypt(ciphertext);
        if (result.Transient)
        {
            // age missing or too slow, not a bad file: try again at the next scan.
            return result;
        }

        lock (gate)
        {
            used[hash] = result;
        }

        return result;
    }
}
