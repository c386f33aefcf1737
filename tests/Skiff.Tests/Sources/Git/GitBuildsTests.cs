using System.Security.Cryptography;
using Microsoft.Extensions.Logging.Abstractions;
using Skiff.Api;
using Skiff.IntegrationTests.GitSource;
using Skiff.Observability;
using Skiff.Reconcile;
using Skiff.Runtime;
using Skiff.Sources;
using Skiff.Sources.Git;

namespace Skiff.Tests.Sources.Git;

/// <summary>
/// <see cref="GitBuilds"/> against a real repository (the <c>git</c> command over file://) and an in-memory build port:
/// tag names, which commits are built, which are not, and what a failed build reports.
/// </summary>
public sealed class GitBuildsTests : IDisposable
{
    private const string Commit40 = "0123456789abcdef0123456789abcdef01234567";
    private readonly string root = Path.Combine(Path.GetTempPath(), "skiff-build-ut-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4)));
    private readonly LocalRepository repo;
    private readonly FakeBuilder builder = new();

    public GitBuildsTests()
    {
        repo = new LocalRepository(Path.Combine(root, "repo"));
    }

    public void Dispose()
    {
        repo.Dispose();
        Directory.Delete(root, recursive: true);
    }

    private const string Document = "apiVersion: skiff.dev/v1alpha1\nkind: AppDeployment\nmetadata: { name: web, namespace: gb }\nspec:\n  node: local\n  app:\n    build: { context: app }\n";

    private async Task<(GitSource Git, GitBuilds Builds)> SourceAsync(string node = "local")
    {
        var remote = GitRemote.Parse(repo.FileUrl, GitCredentials.None, out var problem) ?? throw new InvalidOperationException(problem);
        var git = new GitSource(new GitSourceOptions(repo.FileUrl, "main", "deploy", TimeSpan.FromHours(1)), remote, Path.Combine(root, "state-" + node), NullLogger.Instance);
        Assert.True(await git.SyncAsync(CancellationToken.None));
        return (git, new GitBuilds(git, builder, node, NullLogger<GitBuilds>.Instance));
    }

    private static StoredStack Stack(Action<BuildSpec>? edit = null)
    {
        var build = new BuildSpec { Context = "app", Args = [new BuildArg { Name = "B", Value = "2" }, new BuildArg { Name = "A", Value = "1" }] };
        edit?.Invoke(build);
        return new StoredStack(new ObjectKey("gb", "web"))
        {
            Resource = new AppDeployment
            {
                Metadata = new() { Name = "web", NamespaceProperty = "gb" },
                Spec = new AppDeploymentSpec { Node = "local", App = new AppSpec { Build = build } },
            },
        };
    }

    private async Task<StoredStack> SyncAndResolveAsync(GitSource git, GitBuilds builds, StoredStack? stack = null)
    {
        await git.SyncAsync(CancellationToken.None);
        return await builds.ResolveAsync(stack ?? Stack(), git.Commit!, CancellationToken.None);
    }

    [Fact]
    public void Built_images_are_named_after_the_stack_and_the_commits_first_12_characters()
    {
        Assert.Equal("skiff.local/prod/api", GitBuilds.Repository("prod", "api"));
        Assert.Equal("skiff.local/prod/api:0123456789ab", GitBuilds.Tag("prod", "api", Commit40));
    }

    [Fact]
    public void The_inputs_hash_follows_the_tree_the_dockerfile_and_the_args_but_not_their_order()
    {
        var build = new BuildSpec { Args = [new BuildArg { Name = "A", Value = "1" }, new BuildArg { Name = "B", Value = "2" }] };
        var hash = GitBuilds.InputsHash("gb", "web", "tree1", build);
        Assert.Equal(hash, GitBuilds.InputsHash("gb", "web", "tree1", new BuildSpec { Dockerfile = "Dockerfile", Args = [build.Args[1], build.Args[0]] }));
        Assert.NotEqual(hash, GitBuilds.InputsHash("gb", "web", "tree2", build));
        Assert.NotEqual(hash, GitBuilds.InputsHash("gb", "other", "tree1", build));
        Assert.NotEqual(hash, GitBuilds.InputsHash("gb", "web", "tree1", new BuildSpec { Dockerfile = "Dockerfile.prod", Args = build.Args }));
        Assert.NotEqual(hash, GitBuilds.InputsHash("gb", "web", "tree1", new BuildSpec { Args = [build.Args[0], new BuildArg { Name = "B", Value = "3" }] }));
    }

    [Fact]
    public async Task A_commit_is_built_once_and_a_commit_outside_the_context_reuses_the_image()
    {
        repo.Write("deploy/web.yaml", Document);
        repo.Write("app/Dockerfile", "FROM skiff-test/app:1\n");
        repo.Write("app/index.html", "one\n");
        var c1 = repo.Commit("one");
        var (git, builds) = await SourceAsync();

        var stack = Stack();
        var resolved = await builds.ResolveAsync(stack, c1, CancellationToken.None);
        var build = Assert.Single(builder.Builds);
        Assert.Equal(GitBuilds.Tag("gb", "web", c1), build.Request.Tag);
        Assert.Equal("Dockerfile", build.Request.Dockerfile);
        Assert.Equal(new Dictionary<string, string> { ["A"] = "1", ["B"] = "2" }, build.Request.Args);
        Assert.Equal(c1, build.Request.Labels[GitBuilds.CommitLabel]);
        // The context is the app/ folder of the commit's tree, as its root.
        Assert.Equal(["Dockerfile", "index.html"], build.Files);
        Assert.Null(resolved.Failure);
        Assert.Equal(GitBuilds.Tag("gb", "web", c1), resolved.Resource!.Spec.App.Image);
        Assert.Null(resolved.Resource.Spec.App.Build);
        Assert.Equal(PullPolicies.Never, resolved.Resource.Spec.App.ImagePullPolicy);
        // The source's own resource is untouched: the next commit's read resolves it again.
        Assert.NotNull(stack.Resource!.Spec.App.Build);
        Assert.Equal("", stack.Resource.Spec.App.Image);

        // Again for the same commit (a requeue), then for a commit that changes nothing under app/: no build.
        Assert.Equal(GitBuilds.Tag("gb", "web", c1), (await builds.ResolveAsync(Stack(), c1, CancellationToken.None)).Resource!.Spec.App.Image);
        repo.Write("README.md", "docs\n");
        repo.Commit("docs");
        Assert.Equal(GitBuilds.Tag("gb", "web", c1), (await SyncAndResolveAsync(git, builds)).Resource!.Spec.App.Image);
        Assert.Single(builder.Builds);

        // Another arg value is another image, under the served commit.
        var c2 = git.Commit!;
        Assert.Equal(GitBuilds.Tag("gb", "web", c2), (await builds.ResolveAsync(Stack(b => b.Args![0].Value = "3"), c2, CancellationToken.None)).Resource!.Spec.App.Image);

        // A change under app/: built again.
        repo.Write("app/index.html", "two\n");
        var c3 = repo.Commit("two");
        Assert.Equal(GitBuilds.Tag("gb", "web", c3), (await SyncAndResolveAsync(git, builds)).Resource!.Spec.App.Image);
        Assert.Equal(3, builder.Builds.Count);
    }

    [Fact]
    public async Task A_failed_build_reports_its_masked_tail_and_is_not_retried_until_the_next_commit()
    {
        SecretRedactor.Shared.Register("s3cret-build-value");
        repo.Write("deploy/web.yaml", Document);
        repo.Write("app/Dockerfile", "FROM skiff-test/app:1\nCOPY missing /x\n");
        var c1 = repo.Commit("broken");
        var (git, builds) = await SourceAsync();
        builder.Fail = "COPY failed: file not found in build context";
        builder.Log = [.. Enumerable.Range(1, 30).Select(i => $"line {i}"), "token s3cret-build-value leaked"];

        var failed = await builds.ResolveAsync(Stack(), c1, CancellationToken.None);
        Assert.Equal(Reasons.BuildFailed, failed.Failure?.Reason);
        var lines = failed.Failure!.Message.Split('\n');
        Assert.Equal($"building {GitBuilds.Tag("gb", "web", c1)} from commit {c1[..12]} failed: COPY failed: file not found in build context; nothing is rolled out (a running revision keeps serving), and this commit is not built again", lines[0]);
        Assert.Equal(1 + GitBuilds.TailLines, lines.Length);
        Assert.Equal("line 12", lines[1]);
        Assert.Equal($"token {SecretMasker.Mask} leaked", lines[^1]);
        Assert.Equal("", failed.Resource!.Spec.App.Image);

        // The same commit again (a requeue, a restart of the reconcile): the same failure, no second build.
        Assert.Equal(failed.Failure, (await builds.ResolveAsync(Stack(), c1, CancellationToken.None)).Failure);
        Assert.Single(builder.Builds);

        // The next commit is built, and succeeds.
        builder.Fail = null;
        repo.Write("app/Dockerfile", "FROM skiff-test/app:1\n");
        var c2 = repo.Commit("fixed");
        var fixedStack = await SyncAndResolveAsync(git, builds);
        Assert.Null(fixedStack.Failure);
        Assert.Equal(GitBuilds.Tag("gb", "web", c2), fixedStack.Resource!.Spec.App.Image);
        Assert.Equal(2, builder.Builds.Count);
    }

    [Fact]
    public async Task A_context_the_commit_lacks_fails_the_build_naming_the_field()
    {
        repo.Write("deploy/web.yaml", Document);
        var c1 = repo.Commit("no app folder");
        var (_, builds) = await SourceAsync();
        var failed = await builds.ResolveAsync(Stack(), c1, CancellationToken.None);
        Assert.Equal(Reasons.BuildFailed, failed.Failure?.Reason);
        Assert.Equal($"spec.app.build.context: commit {c1[..12]} has no folder app: give a folder of the repository, relative to its root", failed.Failure!.Message);
        Assert.Empty(builder.Builds);
    }

    [Fact]
    public async Task Stacks_of_other_nodes_images_and_invalid_specs_are_left_as_they_are()
    {
        repo.Write("deploy/web.yaml", Document);
        repo.Write("app/Dockerfile", "FROM skiff-test/app:1\n");
        var c1 = repo.Commit("one");
        var (_, builds) = await SourceAsync(node: "vps-2");
        var stack = Stack();
        Assert.Same(stack, await builds.ResolveAsync(stack, c1, CancellationToken.None));
        var (_, local) = await SourceAsync();
        var invalid = Stack() with { Problems = ["web.yaml:1: spec.app.ports[0].containerPort: must be between 1 and 65535, got 0"] };
        Assert.Same(invalid, await local.ResolveAsync(invalid, c1, CancellationToken.None));
        var image = Stack();
        image.Resource!.Spec.App.Build = null;
        image.Resource.Spec.App.Image = "skiff-test/app:1";
        Assert.Same(image, await local.ResolveAsync(image, c1, CancellationToken.None));
        Assert.Empty(builder.Builds);
    }

    /// <summary>The build port in memory: images by label, the files of each context it was given, a failure on request.</summary>
    private sealed class FakeBuilder : IImageBuilder
    {
        private readonly List<(string Tag, IReadOnlyDictionary<string, string> Labels)> images = [];

        public List<(ImageBuildRequest Request, List<string> Files)> Builds { get; } = [];

        public string? Fail { get; set; }

        public List<string> Log { get; set; } = ["Step 1/1 : FROM skiff-test/app:1"];

        public Task<IReadOnlyList<string>> FindTaggedAsync(string repository, string key, string value, CancellationToken ct) =>
            Task.FromResult<IReadOnlyList<string>>([.. images.AsEnumerable().Reverse()
                .Where(i => i.Tag.StartsWith(repository + ":", StringComparison.Ordinal) && i.Labels.GetValueOrDefault(key) == value)
                .Select(i => i.Tag)]);

        public async Task BuildAsync(ImageBuildRequest request, Stream context, Action<string> progress, CancellationToken ct)
        {
            var files = new List<string>();
            using (var reader = new System.Formats.Tar.TarReader(context))
            {
                while (await reader.GetNextEntryAsync(cancellationToken: ct) is { } entry)
                {
                    if (entry.EntryType is System.Formats.Tar.TarEntryType.RegularFile or System.Formats.Tar.TarEntryType.V7RegularFile)
                    {
                        files.Add(entry.Name);
                    }
                }
            }

            files.Sort(StringComparer.Ordinal);
            Builds.Add((request, files));
            Log.ForEach(progress);
            if (Fail is not null)
            {
                throw new ImageBuildException(Fail, string.Join("\n", Log));
            }

            images.Add((request.Tag, request.Labels));
        }
    }
}
