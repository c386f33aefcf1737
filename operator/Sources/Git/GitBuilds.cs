using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;
using Skiff.Api;
using Skiff.Observability;
using Skiff.Reconcile;

namespace Skiff.Sources.Git;

/// <summary>
/// <c>spec.app.build</c> with the Git source: before the reconciler sees a stack, its build is turned into an image
/// built on the node from the served commit's tree (<see cref="ResolveAsync"/>), so the reconcile core only ever sees
/// <c>spec.app.image</c>, as with any other source.
/// </summary>
/// <remarks>
/// # Guarantees
/// - The same inputs are never built twice: the image carries the hash of what it was built from (the context's tree
///   id, the Dockerfile, the args) in the label <see cref="InputsLabel"/>; an image with that label is reused, under
///   the tag it was first built with. A commit that does not change the context (a change to another stack's
///   document) therefore keeps the image reference, and rolls nothing out.
/// - A new build is tagged <c>skiff.local/NAMESPACE/NAME:COMMIT12</c>, the served commit's id, and is never pulled
///   (<c>imagePullPolicy: Never</c>): it exists only on this node.
/// - A failed build applies nothing: the running revision stays, the status says <c>BuildFailed</c> with the tail of
///   the build's output (masked), and the same commit is not built again while the process runs; the next commit is.
/// - One build at a time on the node: builds are CPU-heavy and the hosts are small.
/// </remarks>
public sealed class GitBuilds(GitSource git, IImageBuilder builder, string node, ILogger<GitBuilds> logger)
{
    /// <summary>The registry part of every built image's name: never a real registry, so nothing is ever pulled from it.</summary>
    public const string Registry = "skiff.local";

    /// <summary>The label holding the hash of a built image's inputs.</summary>
    public const string InputsLabel = "dev.skiff.build.inputs";

    /// <summary>The label holding the commit an image was built from.</summary>
    public const string CommitLabel = "dev.skiff.build.commit";

    /// <summary>How many lines of a failed build's output the status shows.</summary>
    public const int TailLines = 20;

    private const int MaxLineLength = 300;

    private readonly SemaphoreSlim one = new(1, 1);
    private readonly ConcurrentDictionary<string, Failed> failed = new(StringComparer.Ordinal);

    /// <summary><c>skiff.local/NAMESPACE/NAME</c>: the repository of a stack's built images.</summary>
    public static string Repository(string ns, string name) => $"{Registry}/{ns}/{name}";

    /// <summary><c>skiff.local/NAMESPACE/NAME:COMMIT12</c>: the tag of the image built for a stack from a commit.</summary>
    public static string Tag(string ns, string name, string commit) => $"{Repository(ns, name)}:{(commit.Length > 12 ? commit[..12] : commit)}";

    /// <summary>
    /// The hash of what a build reads: the stack, the context's tree (its content, by Git's own id), the Dockerfile's
    /// path and the args (in name order). Two builds with the same hash give the same image.
    /// </summary>
    public static string InputsHash(string ns, string name, string treeId, BuildSpec build)
    {
        var text = new StringBuilder()
            .Append(ns).Append('/').Append(name).Append('\n')
            .Append(treeId).Append('\n')
            .Append(build.Dockerfile ?? Defaults.BuildDockerfile).Append('\n');
        foreach (var arg in (build.Args ?? []).OrderBy(a => a.Name, StringComparer.Ordinal))
        {
            text.Append(arg.Name).Append('=').Append(arg.Value ?? "").Append('\n');
        }

        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())))[..32];
    }

    /// <summary>
    /// The stack as the reconciler should see it: with <c>spec.app.build</c>, a copy whose <c>spec.app.image</c> is the
    /// image built from <paramref name="commit"/> (built now unless it exists); a failed build gives
    /// <see cref="StoredStack.Failure"/> instead. Anything else is returned as it is.
    /// </summary>
    public async Task<StoredStack> ResolveAsync(StoredStack stored, string commit, CancellationToken ct)
    {
        if (stored is not { Resource: { Spec.App.Build: { } build } resource, NotOurs: false, Keep: false, Deleting: false, Problems.Count: 0 }
            || resource.Spec.Node != node)
        {
            return stored;
        }

        var ns = resource.Metadata.NamespaceProperty ?? "default";
        var name = resource.Metadata.Name;
        var key = $"{ns}/{name}";
        var context = build.Context ?? Defaults.BuildContext;
        string treeId;
        try
        {
            treeId = await git.Checkout.TreeIdAsync(commit, context, ct);
        }
        catch (GitException)
        {
            return stored with { Failure = new SourceFailure(Reasons.BuildFailed, $"spec.app.build.context: commit {Short(commit)} has no folder {context}: give a folder of the repository, relative to its root") };
        }

        var inputs = InputsHash(ns, name, treeId, build);
        if (failed.TryGetValue(key, out var failure) && failure.Commit == commit && failure.Inputs == inputs)
        {
            // Not again for the same commit: it would fail the same way. The next commit is built.
            return stored with { Failure = new SourceFailure(Reasons.BuildFailed, failure.Message) };
        }

        var image = (await builder.FindTaggedAsync(Repository(ns, name), InputsLabel, inputs, ct)).FirstOrDefault();
        if (image is null)
        {
            await one.WaitAsync(ct);
            try
            {
                image = (await builder.FindTaggedAsync(Repository(ns, name), InputsLabel, inputs, ct)).FirstOrDefault()
                    ?? await BuildAsync(key, Tag(ns, name, commit), commit, context, inputs, build, ct);
            }
            finally
            {
                one.Release();
            }

            if (image is null)
            {
                return stored with { Failure = new SourceFailure(Reasons.BuildFailed, failed[key].Message) };
            }
        }

        failed.TryRemove(key, out _);
        return stored with { Resource = WithImage(resource, image) };
    }

    /// <summary>Builds the image; returns its tag, or null when the build failed (then <see cref="failed"/> says why).</summary>
    private async Task<string?> BuildAsync(string key, string tag, string commit, string context, string inputs, BuildSpec build, CancellationToken ct)
    {
        var dockerfile = build.Dockerfile ?? Defaults.BuildDockerfile;
        logger.LogInformation("{Stack}: building {Image} from commit {Commit} (context {Context}, Dockerfile {Dockerfile})", key, tag, Short(commit), context, dockerfile);
        var started = TimeProvider.System.GetTimestamp();
        var tar = Path.Combine(git.Checkout.Root, "builds", $"{key.Replace('/', '_')}.tar");
        System.IO.Directory.CreateDirectory(Path.GetDirectoryName(tar)!);
        try
        {
            await using (var file = new FileStream(tar, FileMode.Create, FileAccess.Write, FileShare.None))
            {
                await git.Checkout.ArchiveAsync(commit, context, file, ct);
            }

            await using var upload = new FileStream(tar, FileMode.Open, FileAccess.Read, FileShare.Read, 81920, FileOptions.DeleteOnClose | FileOptions.Asynchronous);
            var request = new ImageBuildRequest(
                tag,
                dockerfile,
                (build.Args ?? []).ToDictionary(a => a.Name, a => a.Value ?? "", StringComparer.Ordinal),
                new Dictionary<string, string>(StringComparer.Ordinal)
                {
                    [InputsLabel] = inputs,
                    [CommitLabel] = commit,
                    ["dev.skiff.managed-by"] = "skiff",
                });
            await builder.BuildAsync(request, upload, line => Progress(key, tag, line), ct);
        }
        catch (Exception e) when (e is ImageBuildException or GitException or IOException or UnauthorizedAccessException)
        {
            var log = e is ImageBuildException b ? b.Log : "";
            var message = Masked($"building {tag} from commit {Short(commit)} failed: {e.Message.Trim()}; nothing is rolled out (a running revision keeps serving), and this commit is not built again"
                + (log.Length == 0 ? "" : "\n" + Tail(log)));
            failed[key] = new Failed(commit, inputs, message);
            logger.LogWarning("{Stack}: build of {Image} failed: {Error}", key, tag, Masked(e.Message.Trim()));
            return null;
        }
        finally
        {
            TryDelete(tar);
        }

        logger.LogInformation("{Stack}: built {Image} in {Seconds:0.0}s", key, tag, TimeProvider.System.GetElapsedTime(started).TotalSeconds);
        return tag;
    }

    /// <summary>One line per step (<c>Step 2/5 : COPY . .</c>) and the result at Information; the steps' own output at Debug (a failure's status has its tail).</summary>
    private void Progress(string key, string tag, string line)
    {
        var level = line.StartsWith("Step ", StringComparison.Ordinal) || line.StartsWith("Successfully ", StringComparison.Ordinal)
            ? LogLevel.Information
            : LogLevel.Debug;
        if (logger.IsEnabled(level))
        {
            logger.Log(level, "{Stack}: build {Image}: {Line}", key, tag, Masked(line));
        }
    }

    /// <summary>A copy of the resource whose spec runs <paramref name="image"/> instead of building: never pulled, it exists only here.</summary>
    private static AppDeployment WithImage(AppDeployment resource, string image)
    {
        var spec = ApiJson.Clone(resource.Spec);
        spec.App.Image = image;
        spec.App.Build = null;
        spec.App.ImagePullPolicy = PullPolicies.Never;
        return new AppDeployment
        {
            ApiVersion = resource.ApiVersion,
            Kind = resource.Kind,
            Metadata = resource.Metadata,
            Spec = spec,
            Status = resource.Status,
        };
    }

    /// <summary>The last lines of a build's output, each cut to a readable length.</summary>
    internal static string Tail(string log) =>
        string.Join("\n", log.Split('\n').Where(l => l.Trim().Length > 0).TakeLast(TailLines)
            .Select(l => l.Length > MaxLineLength ? l[..MaxLineLength] + "…" : l));

    private string Masked(string text) => SecretRedactor.Shared.Redact(git.Remote.Mask(text));

    private static string Short(string commit) => commit.Length > 12 ? commit[..12] : commit;

    private static void TryDelete(string file)
    {
        try
        {
            File.Delete(file);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The next build of the stack overwrites it.
        }
    }

    private sealed record Failed(string Commit, string Inputs, string Message);
}
