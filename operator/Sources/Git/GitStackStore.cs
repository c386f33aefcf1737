using System.Runtime.CompilerServices;
using Skiff.Api;
using Skiff.Runtime;

namespace Skiff.Sources.Git;

/// <summary>
/// The folder source's store (<see cref="Directory.FolderStackStore"/>) as the Git source serves it: the same specs,
/// state records and prune, with <c>status.source</c> saying which commit the spec was read from (<c>git:URL@COMMIT</c>).
/// </summary>
/// <remarks>With <paramref name="builds"/>, a stack's <c>spec.app.build</c> becomes the image built from its commit before the reconciler sees it (<see cref="GitBuilds"/>).</remarks>
public sealed class GitStackStore(IStackStore folder, GitSource git, GitBuilds? builds = null) : IStackStore
{
    private readonly ConditionalWeakTable<StoredStack, string> commits = [];

    public async Task<StoredStack> ReadAsync(ObjectKey key, CancellationToken ct)
    {
        // The commit first: a switch after it can only make the spec newer than the commit named, never older.
        var commit = git.Commit;
        var stack = await folder.ReadAsync(key, ct);
        if (builds is not null && git.Commit is { } now && now != commit)
        {
            // Switched while reading: read again, so that a build reads the tree of the commit the spec came from.
            commit = now;
            stack = await folder.ReadAsync(key, ct);
        }

        if (commit is not null)
        {
            if (builds is not null)
            {
                stack = await builds.ResolveAsync(stack, commit, ct);
            }

            commits.AddOrUpdate(stack, commit);
        }

        return stack;
    }

    public Task EnsureFinalizerAsync(StoredStack stack, CancellationToken ct) => folder.EnsureFinalizerAsync(stack, ct);

    public Task<bool> WriteStatusAsync(StoredStack stack, AppDeploymentStatus status, CancellationToken ct)
    {
        if (commits.TryGetValue(stack, out var commit))
        {
            status.Source = git.Describe(commit);
        }

        return folder.WriteStatusAsync(stack, status, ct);
    }

    public void Annotate(StoredStack stack, AppDeploymentStatus status) => folder.Annotate(stack, status);

    public Task ReleaseAsync(StoredStack stack, CancellationToken ct) => folder.ReleaseAsync(stack, ct);

    public void Forget(StoredStack stack) => folder.Forget(stack);
}
