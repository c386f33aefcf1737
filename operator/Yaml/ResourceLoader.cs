using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using k8s;
using k8s.Models;
using Skiff.Api;
using Skiff.Validation;

namespace Skiff.Yaml;

/// <summary>One document of a YAML file, as read and checked.</summary>
public sealed class LoadedDocument
{
    /// <summary>The file, as given or joined to the folder given.</summary>
    public required string File { get; init; }

    /// <summary>The document's position in the file, from 1.</summary>
    public required int Index { get; init; }

    public string? Kind { get; init; }

    public string? ApiVersion { get; init; }

    /// <summary>The namespace ("default" when a namespaced resource names none); null for cluster-scoped kinds.</summary>
    public string? Namespace { get; init; }

    public string? Name { get; init; }

    /// <summary>The typed resource (<see cref="AppDeployment"/>, <see cref="ImageGCPolicy"/> or <see cref="V1Secret"/>) when the document is valid.</summary>
    public object? Resource { get; init; }

    /// <summary>Problems, each with the path of the field (or the line and column of a syntax error).</summary>
    public IReadOnlyList<ValidationError> Errors { get; init; } = [];

    /// <summary>A kind Skiff does not read (a ConfigMap, a Kustomization, ...): not an error, just not loaded.</summary>
    public bool Skipped { get; init; }

    public bool IsValid => Errors.Count == 0 && Resource is not null;

    public override string ToString() => $"{File}:{Index}";
}

/// <summary>A path that could not be read at all (missing, no permission).</summary>
public sealed record UnreadablePath(string Path, string Message);

/// <summary>Everything read from a set of files and folders.</summary>
public sealed class LoadResult
{
    public required IReadOnlyList<LoadedDocument> Documents { get; init; }

    public required IReadOnlyList<UnreadablePath> Unreadable { get; init; }

    public bool HasErrors => Documents.Any(d => d.Errors.Count > 0);

    public IEnumerable<LoadedDocument> Skipped => Documents.Where(d => d.Skipped);

    public IEnumerable<AppDeployment> AppDeployments => Valid<AppDeployment>();

    public IEnumerable<ImageGCPolicy> ImageGCPolicies => Valid<ImageGCPolicy>();

    public IEnumerable<V1Secret> Secrets => Valid<V1Secret>();

    private IEnumerable<T> Valid<T>() => Documents.Where(d => d.IsValid).Select(d => d.Resource).OfType<T>();
}

/// <summary>
/// Reads AppDeployment, ImageGCPolicy and Secret documents from YAML files and folders, strictly:
/// unknown fields and wrong types are errors with the field's path, every resource is validated
/// with <see cref="ResourceValidator"/>, and a (kind, namespace, name) seen twice is an error on the
/// later document. Bounded for hostile input (file size, value size, depth, alias expansion) and
/// never throws: every problem becomes an error on a document.
/// </summary>
public static class ResourceLoader
{
    public const long MaxFileBytes = 4 * 1024 * 1024;

    /// <summary>Loads files and folders (recursively: *.yaml and *.yml, skipping hidden files and editors' temporary files).</summary>
    public static LoadResult LoadPaths(IEnumerable<string> paths)
    {
        var documents = new List<LoadedDocument>();
        var unreadable = new List<UnreadablePath>();
        foreach (var path in paths)
        {
            try
            {
                if (Directory.Exists(path))
                {
                    foreach (var file in FilesUnder(path, 0))
                    {
                        LoadFile(file, documents, unreadable);
                    }
                }
                else if (File.Exists(path))
                {
                    LoadFile(path, documents, unreadable);
                }
                else
                {
                    unreadable.Add(new UnreadablePath(path, "no such file or folder"));
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                unreadable.Add(new UnreadablePath(path, e.Message));
            }
        }

        return new LoadResult { Documents = MarkDuplicates(documents), Unreadable = unreadable };
    }

    /// <summary>Loads the documents of one YAML text; <paramref name="file"/> only names it in results.</summary>
    public static IReadOnlyList<LoadedDocument> LoadText(string file, string text) =>
        MarkDuplicates(ParseText(file, text));

    /// <summary>Whether a folder walk reads this file: *.yaml or *.yml, not hidden, not an editor's temporary file.</summary>
    public static bool IsResourceFile(string fileName) =>
        (fileName.EndsWith(".yaml", StringComparison.OrdinalIgnoreCase) || fileName.EndsWith(".yml", StringComparison.OrdinalIgnoreCase))
        && !fileName.StartsWith('.') && !fileName.StartsWith('#') && !fileName.EndsWith('~');

    private static IEnumerable<string> FilesUnder(string folder, int depth)
    {
        if (depth > 32)
        {
            yield break;
        }

        var entries = new DirectoryInfo(folder).EnumerateFileSystemInfos().OrderBy(e => e.Name, StringComparer.Ordinal).ToList();
        foreach (var entry in entries)
        {
            if (entry is FileInfo && IsResourceFile(entry.Name))
            {
                yield return Path.Combine(folder, entry.Name);
            }
        }

        foreach (var entry in entries)
        {
            // Hidden folders (.git) are not resources; linked folders are skipped so a link loop cannot recurse.
            if (entry is DirectoryInfo && !entry.Name.StartsWith('.') && entry.LinkTarget is null)
            {
                foreach (var file in FilesUnder(Path.Combine(folder, entry.Name), depth + 1))
                {
                    yield return file;
                }
            }
        }
    }

    private static void LoadFile(string file, List<LoadedDocument> documents, List<UnreadablePath> unreadable)
    {
        string text;
        try
        {
            var length = new FileInfo(file).Length;
            if (length > MaxFileBytes)
            {
                documents.Add(FileError(file, $"the file is {length} bytes; the limit is 4 MiB ({MaxFileBytes} bytes): split it"));
                return;
            }

            var bytes = File.ReadAllBytes(file);
            text = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true).GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            documents.Add(FileError(file, "the file is not UTF-8 text"));
            return;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            unreadable.Add(new UnreadablePath(file, e.Message));
            return;
        }

        documents.AddRange(ParseText(file, text));
    }

    private static LoadedDocument FileError(string file, string message) =>
        new() { File = file, Index = 1, Errors = [new ValidationError("(file)", message)] };

    private static List<LoadedDocument> ParseText(string file, string text)
    {
        if (text.Length > MaxFileBytes)
        {
            return [FileError(file, $"the text is {text.Length} characters; the limit is 4 MiB: split it")];
        }

        List<YamlDocument> yaml;
        try
        {
            yaml = YamlReader.Read(text.TrimStart('\uFEFF'));
        }
        catch (Exception e)
        {
            // YamlReader reports syntax errors with their line and column; this is only a safety net, and no
            // exception text is shown to a user.
            return [FileError(file, $"cannot read the YAML (the reader failed with {e.GetType().Name}): check the file's syntax")];
        }

        var result = new List<LoadedDocument>();
        foreach (var document in yaml.Where(d => !d.Empty))
        {
            try
            {
                result.Add(ParseDocument(file, document));
            }
            catch (Exception e)
            {
                // A bug of ours must not hide the rest of the folder; say where it happened.
                result.Add(new LoadedDocument
                {
                    File = file,
                    Index = document.Index,
                    Errors = [new ValidationError("(document)", $"internal error while reading this document: {e.GetType().Name}: {e.Message}")],
                });
            }
        }

        return result;
    }

    private static LoadedDocument ParseDocument(string file, YamlDocument document)
    {
        var errors = new ResourceValidator.Errors();
        foreach (var error in document.Errors)
        {
            errors.Add(error.Path, error.Message);
        }

        if (document.Root is not JsonObject root)
        {
            if (errors.List.Count == 0)
            {
                errors.Add("(document)", "must be a mapping with apiVersion, kind and metadata");
            }

            return new LoadedDocument { File = file, Index = document.Index, Errors = errors.List };
        }

        var kind = root["kind"] is JsonValue k && k.GetValueKind() == JsonValueKind.String ? k.GetValue<string>() : null;
        var apiVersion = root["apiVersion"] is JsonValue a && a.GetValueKind() == JsonValueKind.String ? a.GetValue<string>() : null;
        var metadata = root["metadata"] as JsonObject;
        var name = metadata?["name"] is JsonValue n && n.GetValueKind() == JsonValueKind.String ? n.GetValue<string>() : null;
        var ns = metadata?["namespace"] is JsonValue s && s.GetValueKind() == JsonValueKind.String ? s.GetValue<string>() : null;

        var known = (kind, apiVersion) switch
        {
            (AppDeployment.KindName or ImageGCPolicy.KindName, SkiffApi.ApiVersion) => true,
            ("Secret", "v1") => true,
            _ => false,
        };
        if (!known)
        {
            if (kind is null)
            {
                errors.Add("kind", "required: a document needs apiVersion and kind");
            }
            else if (kind is AppDeployment.KindName or ImageGCPolicy.KindName)
            {
                errors.Add("apiVersion", $"must be {SkiffApi.ApiVersion}, got {Text.Quote(apiVersion ?? "")}");
            }
            else if (kind == "Secret")
            {
                errors.Add("apiVersion", $"must be v1, got {Text.Quote(apiVersion ?? "")}");
            }
            else if (ResourceKinds.Problem(kind, apiVersion) is { } problem)
            {
                errors.Add("kind", problem);
            }

            return new LoadedDocument
            {
                File = file, Index = document.Index, Kind = kind, ApiVersion = apiVersion, Name = name, Namespace = ns,
                Errors = errors.List,
                Skipped = errors.List.Count == 0,
            };
        }

        var namespaced = kind != ImageGCPolicy.KindName;
        if (namespaced)
        {
            ns ??= "default";
        }

        // Every check prunes what it rejects, so the rest is still read and validated: one pass
        // reports every problem of the document.
        CheckMetadata(root, errors);
        var resource = kind switch
        {
            "Secret" => ReadSecret(root, errors),
            _ => ReadCustomResource(kind!, root, errors),
        };

        if (resource is IMetadata<V1ObjectMeta> { Metadata: { } meta } && namespaced)
        {
            meta.NamespaceProperty ??= "default";
        }

        return new LoadedDocument
        {
            File = file, Index = document.Index, Kind = kind, ApiVersion = apiVersion, Name = name, Namespace = namespaced ? ns : null,
            Resource = errors.List.Count == 0 ? resource : null,
            Errors = errors.List,
        };
    }

    private static object? ReadCustomResource(string kind, JsonObject root, ResourceValidator.Errors errors)
    {
        var schema = CommittedSchemas.OpenApiSchema(kind)!;
        var metadata = root["metadata"];
        root.Remove("metadata");
        SchemaChecker.Check(root, schema, "", errors);
        root["metadata"] = metadata;

        if (kind == AppDeployment.KindName)
        {
            var obj = Deserialize<AppDeployment>(root, errors);
            if (obj is not null)
            {
                foreach (var e in ResourceValidator.Validate(obj))
                {
                    errors.Add(e.Path, e.Message);
                }
            }

            return obj;
        }
        else
        {
            var obj = Deserialize<ImageGCPolicy>(root, errors);
            if (obj is not null)
            {
                foreach (var e in ResourceValidator.Validate(obj))
                {
                    errors.Add(e.Path, e.Message);
                }
            }

            return obj;
        }
    }

    private static T? Deserialize<T>(JsonObject root, ResourceValidator.Errors errors) where T : class
    {
        try
        {
            return KubernetesJson.Deserialize<T>(root.ToJsonString());
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException or NotSupportedException)
        {
            var path = e is JsonException { Path: { } p } ? p.TrimStart('$').TrimStart('.') : "(document)";
            errors.Add(path.Length == 0 ? "(document)" : path, "cannot be read as this field's type: check the value against docs/CONFIGURATION.md");
            return null;
        }
    }

    private static void CheckMetadata(JsonObject root, ResourceValidator.Errors errors)
    {
        var metadata = root["metadata"];
        if (metadata is null)
        {
            errors.Add("metadata", "required: give at least metadata.name");
            root["metadata"] = new JsonObject();
            return;
        }

        if (metadata is not JsonObject obj)
        {
            errors.Add("metadata", "must be an object with fields");
            root["metadata"] = new JsonObject();
            return;
        }

        var before = errors.Reported;
        foreach (var (key, value) in obj.ToList())
        {
            switch (key)
            {
                case "name" or "namespace" or "generateName" or "uid" or "resourceVersion":
                    if (value is not null && value.GetValueKind() != JsonValueKind.String)
                    {
                        errors.Add($"metadata.{key}", "must be a string");
                    }

                    break;
                case "labels" or "annotations":
                    if (value is not null and not JsonObject)
                    {
                        errors.Add($"metadata.{key}", "must be a mapping of strings to strings");
                        break;
                    }

                    foreach (var (k, v) in value as JsonObject ?? [])
                    {
                        if (v?.GetValueKind() != JsonValueKind.String)
                        {
                            errors.Add($"metadata.{key}.{k}", "must be a string: quote the value");
                        }
                    }

                    break;
                case "generation" or "creationTimestamp" or "deletionTimestamp" or "deletionGracePeriodSeconds"
                    or "finalizers" or "ownerReferences" or "managedFields" or "selfLink":
                    break;
                default:
                    errors.Add($"metadata.{key}", "unknown field" + SchemaChecker.Suggest(key, ["name", "namespace", "labels", "annotations"]));
                    break;
            }
        }

        if (errors.Reported > before)
        {
            // Keep only what is known to be well-formed, so the rest of the document can be read.
            root["metadata"] = new JsonObject
            {
                ["name"] = obj["name"] is JsonValue n && n.GetValueKind() == JsonValueKind.String ? n.GetValue<string>() : null,
                ["namespace"] = obj["namespace"] is JsonValue s && s.GetValueKind() == JsonValueKind.String ? s.GetValue<string>() : null,
            };
        }
    }

    private static V1Secret? ReadSecret(JsonObject root, ResourceValidator.Errors errors)
    {
        foreach (var (key, _) in root)
        {
            if (key is not ("apiVersion" or "kind" or "metadata" or "type" or "data" or "stringData" or "immutable"))
            {
                errors.Add(SchemaChecker.Join("", key), "unknown field" + SchemaChecker.Suggest(key, ["type", "data", "stringData", "immutable"]));
            }
        }

        var data = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        ReadSecretMap(root["data"], "data", errors, (key, value, path) =>
        {
            try
            {
                data[key] = Convert.FromBase64String(value);
            }
            catch (FormatException)
            {
                errors.Add(path, "must be base64: use stringData for plain text");
            }
        });
        ReadSecretMap(root["stringData"], "stringData", errors, (key, value, _) => data[key] = Encoding.UTF8.GetBytes(value));
        if (root["type"] is { } type && type.GetValueKind() != JsonValueKind.String)
        {
            errors.Add("type", "must be a string");
        }

        if (root["immutable"] is { } immutable && immutable.GetValueKind() is not (JsonValueKind.True or JsonValueKind.False))
        {
            errors.Add("immutable", "must be true or false");
        }

        var metadata = KubernetesJson.Deserialize<V1ObjectMeta>(root["metadata"]!.ToJsonString());
        if (string.IsNullOrEmpty(metadata.Name))
        {
            errors.Add("metadata.name", "required");
        }
        else if (metadata.Name.Length > 253 || !System.Text.RegularExpressions.Regex.IsMatch(metadata.Name, Patterns.Dns1123Subdomain))
        {
            errors.Add("metadata.name", $"must be {Patterns.Dns1123SubdomainText}, got {Text.Quote(metadata.Name)}");
        }

        // As the API server does: stringData is merged into data (winning on conflicts) and not kept.
        return new V1Secret
        {
            ApiVersion = "v1",
            Kind = "Secret",
            Metadata = metadata,
            Type = root["type"] is JsonValue t && t.GetValueKind() == JsonValueKind.String ? t.GetValue<string>() : "Opaque",
            Immutable = root["immutable"] is JsonValue i && i.TryGetValue<bool>(out var b) ? b : null,
            Data = data,
        };
    }

    private static void ReadSecretMap(JsonNode? node, string field, ResourceValidator.Errors errors, Action<string, string, string> add)
    {
        if (node is null)
        {
            return;
        }

        if (node is not JsonObject map)
        {
            errors.Add(field, "must be a mapping of keys to values");
            return;
        }

        foreach (var (key, value) in map)
        {
            var path = $"{field}.{key}";
            if (!System.Text.RegularExpressions.Regex.IsMatch(key, Patterns.SecretKey) || key.Length > 253)
            {
                errors.Add(path, $"the key must be {Patterns.SecretKeyText}");
            }
            else if (value?.GetValueKind() != JsonValueKind.String)
            {
                errors.Add(path, "must be a string: quote the value");
            }
            else
            {
                add(key, value.GetValue<string>(), path);
            }
        }
    }

    private static List<LoadedDocument> MarkDuplicates(List<LoadedDocument> documents)
    {
        var seen = new Dictionary<(string, string?, string), LoadedDocument>();
        for (var i = 0; i < documents.Count; i++)
        {
            var d = documents[i];
            if (d.Kind is null || d.Name is null || d.Skipped)
            {
                continue;
            }

            if (seen.TryGetValue((d.Kind, d.Namespace, d.Name), out var first))
            {
                var key = d.Namespace is null ? d.Name : $"{d.Namespace}/{d.Name}";
                documents[i] = new LoadedDocument
                {
                    File = d.File, Index = d.Index, Kind = d.Kind, ApiVersion = d.ApiVersion, Namespace = d.Namespace, Name = d.Name,
                    Errors = [.. d.Errors, new ValidationError("metadata.name", $"duplicate {d.Kind} {key}: first defined in {first}")],
                };
            }
            else
            {
                seen[(d.Kind, d.Namespace, d.Name)] = d;
            }
        }

        return documents;
    }
}
