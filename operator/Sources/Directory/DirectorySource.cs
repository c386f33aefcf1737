using System.Collections.Concurrent;
using System.Diagnostics;
using k8s.Models;
using Microsoft.Extensions.Logging;
using Skiff.Api;
using Skiff.Reconcile;
using Skiff.Runtime;
using Skiff.Yaml;

namespace Skiff.Sources.Directory;

/// <summary>One AppDeployment document of the folder, valid or not.</summary>
/// <param name="Key">Namespace and name.</param>
/// <param name="Resource">The parsed resource, or null when the document is invalid.</param>
/// <param name="Errors">Every problem, as "FILE:DOC: PATH: message".</param>
/// <param name="Location">FILE:DOC.</param>
/// <param name="File">The full path of the file holding the document.</param>
/// <param name="DocumentHash">Hash of the spec as written, to tell when it changed.</param>
public sealed record FolderEntry(ObjectKey Key, AppDeployment? Resource, IReadOnlyList<string> Errors, string Location, string File, string? DocumentHash);

/// <summary>
/// The directory source: every AppDeployment, ImageGCPolicy and Secret document under a folder
/// (a Git checkout), rescanned when files change. A document that disappeared means its stack is
/// pruned; a file that cannot be parsed, or holds a document whose kind Skiff cannot tell (a typo'd
/// kind), keeps its previous documents alive, so a half-written file or a typo never prunes a running stack.
/// </summary>
/// <param name="path">The folder.</param>
/// <param name="logger">Where skipped and invalid documents are said.</param>
/// <param name="followLink">
/// Keep <paramref name="path"/> as given (absolute) instead of resolving its links once: the Git source's folder is a
/// link it switches from commit to commit, and each <see cref="Rescan"/> must read the commit it points to then.
/// </param>
/// <param name="age">
/// The key for Secret values kept in <c>*.age</c> files (<c>--age-key-file</c>), or null: such Secrets are then
/// unreadable (<see cref="Reasons.SecretNotDecrypted"/>) for the stacks that use them, and only for those.
/// </param>
public sealed class DirectorySource(string path, ILogger<DirectorySource> logger, bool followLink = false, AgeCli? age = null)
{
    private readonly object gate = new();
    private readonly SecretFiles secretFiles = new(age);
    private Dictionary<ObjectKey, FolderEntry> apps = [];
    private Dictionary<(string, string), FolderSecret> secrets = [];
    private HashSet<string> secretProblems = new(StringComparer.Ordinal);
    private List<ImageGCPolicy> policies = [];
    private List<string> problems = [];
    private HashSet<string> broken = new(StringComparer.Ordinal);
    private bool recheckEmpty;

    private readonly HashSet<string> reportedSkips = new(StringComparer.Ordinal);

    /// <summary>The folder's canonical real path (<see cref="FolderIdentity.CanonicalPath"/>), or the absolute link to it with <c>followLink</c>.</summary>
    public string Path { get; } = followLink ? System.IO.Path.GetFullPath(path) : FolderIdentity.CanonicalPath(path);

    public bool HasSynced { get; private set; }

    /// <summary>Problems of documents that have no resource key (syntax errors, duplicates, no name).</summary>
    public IReadOnlyList<string> Problems
    {
        get
        {
            lock (gate)
            {
                return problems.ToList();
            }
        }
    }

    /// <summary>Whether a file exists but could not be read whole (being written, broken, an unknown kind): its stacks must not be pruned.</summary>
    public bool IsBroken(string file)
    {
        lock (gate)
        {
            return broken.Contains(file);
        }
    }

    public FolderEntry? Get(ObjectKey key)
    {
        lock (gate)
        {
            return apps.GetValueOrDefault(key);
        }
    }

    public IReadOnlyList<FolderEntry> Entries()
    {
        lock (gate)
        {
            return apps.Values.OrderBy(e => e.Key.ToString(), StringComparer.Ordinal).ToList();
        }
    }

    public IReadOnlyList<ImageGCPolicy> Policies()
    {
        lock (gate)
        {
            return policies.ToList();
        }
    }

    /// <summary>
    /// A Secret document's values (its files read and decrypted, <see cref="SecretFiles"/>), or null when the folder has
    /// none; throws <see cref="SecretUnreadableException"/> when it has one whose files cannot be read or decrypted.
    /// </summary>
    public IReadOnlyDictionary<string, byte[]>? GetSecret(string ns, string name)
    {
        lock (gate)
        {
            if (!secrets.TryGetValue((ns, name), out var secret))
            {
                return null;
            }

            if (secret.Data is null)
            {
                throw new SecretUnreadableException(secret.Reason!, secret.Problem!);
            }

            return new Dictionary<string, byte[]>(secret.Data, StringComparer.Ordinal);
        }
    }

    /// <summary>The <c>type</c> of the folder's Secret document, or null when there is none.</summary>
    public string? GetSecretType(string ns, string name)
    {
        lock (gate)
        {
            return secrets.TryGetValue((ns, name), out var secret) ? secret.Type : null;
        }
    }

    /// <summary>Reads the folder again; returns the keys whose document appeared, changed or disappeared.</summary>
    public IReadOnlyCollection<ObjectKey> Rescan()
    {
        var result = ResourceLoader.LoadPaths([Path]);
        var newApps = new Dictionary<ObjectKey, FolderEntry>();
        var newSecrets = new Dictionary<(string, string), FolderSecret>();
        var newProblems = result.Unreadable.Select(u => $"{u.Path}: {u.Message}").ToList();
        var brokenFiles = new HashSet<string>(StringComparer.Ordinal);

        foreach (var doc in result.Documents.Where(d => d.Skipped))
        {
            // Another tool's document (a ConfigMap, a Flux Kustomization): not an error; said once, at debug level.
            var skip = $"{Relative(doc.File)}:{doc.Index}: {doc.ApiVersion} {doc.Kind}";
            bool first;
            lock (gate)
            {
                first = reportedSkips.Add(skip);
            }

            if (first)
            {
                logger.LogDebug("Ignoring {Document}: not a Skiff resource", skip);
            }
        }

        foreach (var doc in result.Documents.Where(d => !d.Skipped))
        {
            var isApp = doc.Kind == AppDeployment.KindName || doc.Resource is AppDeployment;
            if (isApp && doc.Name is { Length: > 0 } && !IsDuplicate(doc))
            {
                var entry = AppEntry(doc);
                newApps[entry.Key] = entry;
                continue;
            }

            var location = $"{Relative(doc.File)}:{doc.Index}";
            var errors = doc.Errors.Select(e => $"{location}: {e}").ToList();
            if (errors.Count > 0)
            {
                newProblems.AddRange(errors);
                // A document without a name, or of a kind Skiff cannot tell (a typo'd kind, a skiff.dev kind it does
                // not serve), may be what held a running stack: its file keeps its stacks, as an unparseable one does.
                if (doc.Name is not { Length: > 0 } || doc.Kind is not (AppDeployment.KindName or ImageGCPolicy.KindName or "Secret"))
                {
                    brokenFiles.Add(doc.File);
                }

                continue;
            }

            switch (doc.Resource)
            {
                case V1Secret secret:
                    newSecrets[(secret.Metadata.NamespaceProperty ?? "default", secret.Metadata.Name)] = secretFiles.Resolve(secret, doc.File, location, Path) with { Type = string.IsNullOrEmpty(secret.Type) ? "Opaque" : secret.Type };
                    break;
            }
        }

        foreach (var file in result.Unreadable.Select(u => u.Path))
        {
            brokenFiles.Add(file);
        }

        secretFiles.Sweep();
        var newSecretProblems = newSecrets.Values.Select(v => v.Problem).OfType<string>().ToHashSet(StringComparer.Ordinal);
        List<ObjectKey> changed;
        HashSet<string> oldSecretProblems;
        var emptied = new SortedSet<string>(StringComparer.Ordinal);
        lock (gate)
        {
            // A file that could not be read whole keeps its previous stacks: it is probably being written. So does a
            // file that is empty and was written just now: a writer that truncates first and writes later (a script's
            // `>` redirection, a slow copy) leaves it empty for a moment, and reading the folder then must not prune
            // its stacks. Once it has stayed empty for EmptyGrace, it is read as it is.
            recheckEmpty = false;
            foreach (var (key, old) in apps)
            {
                if (newApps.ContainsKey(key))
                {
                    continue;
                }

                if (brokenFiles.Contains(old.File))
                {
                    newApps[key] = old with { Errors = [.. old.Errors, $"{Relative(old.File)}: the file cannot be read whole right now (see the problems); keeping the last good version"] };
                }
                else if (JustEmptied(old.File))
                {
                    newApps[key] = old;
                    brokenFiles.Add(old.File);
                    emptied.Add(Relative(old.File));
                    recheckEmpty = true;
                }
            }

            var secretsChanged = !SameSecrets(secrets, newSecrets);
            changed = apps.Keys.Union(newApps.Keys)
                .Where(k => secretsChanged
                    || !apps.TryGetValue(k, out var a) || !newApps.TryGetValue(k, out var b)
                    || a.DocumentHash != b.DocumentHash || !a.Errors.SequenceEqual(b.Errors))
                .ToList();
            apps = newApps;
            secrets = newSecrets;
            oldSecretProblems = secretProblems;
            secretProblems = newSecretProblems;
            policies = result.Documents.Where(d => d.IsValid).Select(d => d.Resource).OfType<ImageGCPolicy>().ToList();
            problems = newProblems;
            broken = brokenFiles;
            HasSynced = true;
        }

        foreach (var problem in newProblems)
        {
            logger.LogWarning("Ignoring an invalid document: {Problem}", problem);
        }

        foreach (var file in emptied)
        {
            logger.LogInformation("{File} is empty since just now: keeping its stacks for {Grace} s in case it is being written", file, EmptyGrace.TotalSeconds);
        }

        // Said once per change (the stacks using the Secret say it too, as their condition); the message holds no value.
        foreach (var problem in newSecretProblems.Except(oldSecretProblems).Order(StringComparer.Ordinal))
        {
            logger.LogWarning("{Problem}", problem);
        }

        return changed;
    }

    /// <summary>
    /// Reads one file that was just renamed into place (<c>mv</c>, <c>os.replace</c>, an editor's or a tool's atomic
    /// save): its content is whole by construction, so its valid AppDeployments that are new or changed are taken at
    /// once, without waiting for the folder to go quiet. Only those: a document gone from the file, its Secrets and
    /// policies, a name another file holds, and every other file wait for the next <see cref="Rescan"/> after the quiet
    /// window, which keeps its protections for files written in place (a half-written file, one that vanishes or
    /// empties for a moment inside a burst never prunes or shrinks a stack). Returns the keys taken.
    /// </summary>
    public IReadOnlyCollection<ObjectKey> ReadReplaced(string file)
    {
        var result = ResourceLoader.LoadPaths([file]);
        if (result.Unreadable.Count > 0)
        {
            return [];
        }

        var taken = new List<ObjectKey>();
        lock (gate)
        {
            if (!HasSynced)
            {
                return [];
            }

            foreach (var doc in result.Documents)
            {
                if (doc.Skipped || !doc.IsValid || doc.Resource is not AppDeployment || doc.Name is not { Length: > 0 })
                {
                    continue;
                }

                var entry = AppEntry(doc);
                if (apps.TryGetValue(entry.Key, out var old)
                    && (old.File != entry.File || (old.DocumentHash == entry.DocumentHash && old.Errors.Count == 0)))
                {
                    continue;
                }

                apps[entry.Key] = entry;
                taken.Add(entry.Key);
            }
        }

        return taken;
    }

    private FolderEntry AppEntry(LoadedDocument doc)
    {
        var location = $"{Relative(doc.File)}:{doc.Index}";
        var errors = doc.Errors.Select(e => $"{location}: {e}").ToList();
        var key = new ObjectKey(doc.Namespace ?? "default", doc.Name!);
        var resource = doc.IsValid ? (AppDeployment)doc.Resource! : null;
        if (resource is not null)
        {
            resource.Metadata.NamespaceProperty ??= key.Namespace;
        }

        return new FolderEntry(key, resource, errors, location, doc.File, resource is null ? null : SpecHash.Compute(resource.Spec));
    }

    /// <summary>Whether a rename's new name is a file a folder walk reads (<see cref="ResourceLoader.IsResourceFile"/>, not under a hidden folder).</summary>
    private bool IsReadFile(string fullPath)
    {
        var relative = System.IO.Path.GetRelativePath(Path, fullPath);
        var parts = relative.Split(System.IO.Path.DirectorySeparatorChar);
        return !relative.StartsWith("..", StringComparison.Ordinal)
            && ResourceLoader.IsResourceFile(parts[^1])
            && parts[..^1].All(p => !p.StartsWith('.'));
    }

    /// <summary>How long a file that became empty keeps its stacks, for a writer that truncates it first to write it.</summary>
    public static readonly TimeSpan EmptyGrace = TimeSpan.FromSeconds(2);

    /// <summary>A file that is empty now and was written less than <see cref="EmptyGrace"/> ago.</summary>
    private bool JustEmptied(string file)
    {
        try
        {
            var info = new FileInfo(file);
            return info.Exists && info.Length == 0 && DateTime.UtcNow - info.LastWriteTimeUtc < EmptyGrace;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>How long the folder must be quiet after a change before it is read again.</summary>
    public static readonly TimeSpan Quiet = TimeSpan.FromMilliseconds(40);

    /// <summary>The longest a burst of changes delays the rescan.</summary>
    public static readonly TimeSpan MaxDebounce = TimeSpan.FromMilliseconds(300);

    /// <summary>Watches the folder and rescans (debounced) on every change, and every <paramref name="resync"/> in any case.</summary>
    public async Task WatchAsync(Action<IReadOnlyCollection<ObjectKey>> onChange, TimeSpan resync, CancellationToken ct)
    {
        var signal = new SemaphoreSlim(0);
        using var watcher = new FileSystemWatcher(Path) { IncludeSubdirectories = true, NotifyFilter = NotifyFilters.FileName | NotifyFilters.DirectoryName | NotifyFilters.LastWrite | NotifyFilters.Size };
        FileSystemEventHandler handler = (_, _) => signal.Release();
        watcher.Changed += handler;
        watcher.Created += handler;
        watcher.Deleted += handler;
        var replaced = new ConcurrentQueue<string>();
        watcher.Renamed += (_, e) =>
        {
            if (IsReadFile(e.FullPath))
            {
                replaced.Enqueue(e.FullPath);
            }

            signal.Release();
        };
        watcher.Error += (_, e) => { logger.LogWarning(e.GetException(), "Folder watch failed; relying on periodic rescans"); signal.Release(); };
        watcher.EnableRaisingEvents = true;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                // A file read while just emptied is read again once its grace is over, written or not.
                bool recheck;
                lock (gate)
                {
                    recheck = recheckEmpty;
                }

                await signal.WaitAsync(recheck ? EmptyGrace : resync, ct);
                // A file renamed into place is whole: its new and changed stacks are taken at once (ReadReplaced).
                TakeReplaced(replaced, onChange);
                // Debounce: editors and git write several files in a burst (a truncate, then the writes; a checkout of
                // many files). Rescan once the folder has been quiet for Quiet, or at MaxDebounce after the first
                // change if it keeps changing: one save is acted on within tens of milliseconds, not a fixed 300 ms.
                var first = Stopwatch.GetTimestamp();
                while (await signal.WaitAsync(Quiet, ct) && Stopwatch.GetElapsedTime(first) < MaxDebounce)
                {
                    TakeReplaced(replaced, onChange);
                }

                while (signal.CurrentCount > 0)
                {
                    await signal.WaitAsync(ct);
                }
            }
            catch (OperationCanceledException)
            {
                return;
            }

            var changed = Rescan();
            if (changed.Count > 0)
            {
                logger.LogInformation("Folder changed: {Count} resource(s) to reconcile", changed.Count);
                onChange(changed);
            }
        }
    }

    private void TakeReplaced(ConcurrentQueue<string> replaced, Action<IReadOnlyCollection<ObjectKey>> onChange)
    {
        while (replaced.TryDequeue(out var file))
        {
            var taken = ReadReplaced(file);
            if (taken.Count > 0)
            {
                logger.LogInformation("{File} replaced: {Count} resource(s) to reconcile", Relative(file), taken.Count);
                onChange(taken);
            }
        }
    }

    private static bool IsDuplicate(LoadedDocument doc) =>
        doc.Errors.Any(e => e.Message.Contains("duplicate", StringComparison.OrdinalIgnoreCase) || e.Message.Contains("defined again", StringComparison.OrdinalIgnoreCase));

    private static bool SameSecrets(Dictionary<(string, string), FolderSecret> a, Dictionary<(string, string), FolderSecret> b) =>
        a.Count == b.Count && a.All(kv => b.TryGetValue(kv.Key, out var other) && Fingerprint(kv.Value) == Fingerprint(other));

    private static string Fingerprint(FolderSecret s) =>
        string.Join(";", (s.Data ?? new Dictionary<string, byte[]>()).OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => kv.Key + "=" + Convert.ToBase64String(kv.Value)))
        + "|" + s.Reason + "|" + s.Problem + "|" + s.Type;

    private string Relative(string file) => System.IO.Path.GetRelativePath(Path, file);
}
