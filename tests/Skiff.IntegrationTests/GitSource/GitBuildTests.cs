using System.Text.Json;
using System.Text.Json.Nodes;
using Docker.DotNet.Models;
using Skiff.Api;
using Skiff.IntegrationTests.FolderSource;
using Skiff.IntegrationTests.Infrastructure;
using Skiff.Reconcile;
using Skiff.Sources.Git;
using Skiff.State;

namespace Skiff.IntegrationTests.GitSource;

/// <summary>
/// <c>spec.app.build</c> end to end: a real repository with a Dockerfile (<c>FROM skiff-test/app:1</c>), a real skiff
/// process building it through the real engine's build API from the commit's tree, rolling it out, and image GC's plan
/// for the built images.
/// </summary>
public sealed class GitBuildTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(3);

    private static StatusRecord? Record(FolderWorkspace w) => new StateStore(w.StateDir).Read(w.Namespace, "web");

    private static string Dump(FolderWorkspace w) => JsonSerializer.Serialize(Record(w)?.Status);

    /// <summary>The web stack built from the repository's <c>app/</c> folder, published on 127.0.0.1:<paramref name="port"/>.</summary>
    private static string Web(FolderWorkspace w, int port) => Stacks.Yaml(Stacks.Stateless("web", w.Namespace).With(s =>
    {
        s.App.Image = "";
        s.App.ImagePullPolicy = null;
        s.App.Build = new BuildSpec { Context = "app", Args = [new BuildArg { Name = "FLAVOUR", Value = "plain" }] };
        s.App.Ports = [new PortSpec { Name = "http", ContainerPort = 8080, HostPort = port, HostIP = "127.0.0.1" }];
        s.Rollout = new RolloutSpec { RevisionHistoryLimit = 1 };
    }));

    private static string Dockerfile(string version) => $"FROM {TestImages.App1}\nARG FLAVOUR\nENV APP_VERSION={version}-$FLAVOUR\n";

    private static async Task<string> VersionAsync(int port)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        return JsonNode.Parse(await http.GetStringAsync(new Uri($"http://127.0.0.1:{port}/")))!["version"]!.ToString();
    }

    [Fact]
    public async Task A_commit_is_built_and_rolled_out_rebuilt_on_a_change_skipped_without_one_and_a_broken_build_keeps_the_old_revision()
    {
        await using var w = new FolderWorkspace();
        using var repo = new LocalRepository(Path.Combine(w.Root, "git"));
        var port = DockerFixture.FreeTcpPort();
        var repository = GitBuilds.Repository(w.Namespace, "web");
        string[] args = ["run", "--source", "git", "--url", repo.FileUrl, "--path", "deploy", "--once", "--node", "local", "--state-dir", w.StateDir,
            "--metrics-bind-address", "0", "--health-probe-bind-address", "0"];
        try
        {
            // The first commit: built from app/, tagged with the commit, rolled out; each step of the build is logged.
            repo.Write("app/Dockerfile", Dockerfile("built-1"));
            repo.Write("deploy/web.yaml", Web(w, port));
            var c1 = repo.Commit("web built from app/");
            var (exit, stdout, stderr) = await SkiffProcess.RunAsync(Timeout, args);
            Assert.True(exit == 0, stdout + stderr);
            var tag1 = $"{repository}:{c1[..12]}";
            Assert.Equal(tag1, Record(w)!.Status!.Image);
            Assert.Equal("built-1-plain", await VersionAsync(port));
            Assert.True(stderr.Contains($"build {tag1}: Step 3/6 : ENV APP_VERSION=built-1-$FLAVOUR", StringComparison.Ordinal), stderr);
            var image1 = await w.Engine.Client.Images.InspectImageAsync(tag1);
            Assert.Equal(c1, image1.Config!.Labels![GitBuilds.CommitLabel]);

            // A change to the Dockerfile: built again under the new commit, a new revision.
            repo.Write("app/Dockerfile", Dockerfile("built-2"));
            var c2 = repo.Commit("version 2");
            (exit, stdout, stderr) = await SkiffProcess.RunAsync(Timeout, args);
            Assert.True(exit == 0, stdout + stderr);
            var tag2 = $"{repository}:{c2[..12]}";
            Assert.Equal(tag2, Record(w)!.Status!.Image);
            Assert.Equal(2, Record(w)!.Status!.Revision);
            Assert.Equal("built-2-plain", await VersionAsync(port));

            // A commit that leaves app/ and the build's args alone: nothing is built, nothing rolls out.
            repo.Write("README.md", "the deploy repository\n");
            var c3 = repo.Commit("docs only");
            (exit, stdout, stderr) = await SkiffProcess.RunAsync(Timeout, args);
            Assert.True(exit == 0, stdout + stderr);
            Assert.DoesNotContain("building", stderr, StringComparison.Ordinal);
            Assert.Equal(tag2, Record(w)!.Status!.Image);
            Assert.Equal(2, Record(w)!.Status!.Revision);
            Assert.Equal($"git:{repo.FileUrl}@{c3}", Record(w)!.Status!.Source);
            await Assert.ThrowsAsync<global::Docker.DotNet.DockerImageNotFoundException>(() => w.Engine.Client.Images.InspectImageAsync($"{repository}:{c3[..12]}"));

            // A broken Dockerfile: BuildFailed with the build's output, a Warning Event, and revision 2 keeps serving.
            repo.Write("app/Dockerfile", $"FROM {TestImages.App1}\nCOPY missing.txt /missing.txt\n");
            var c4 = repo.Commit("broken");
            (exit, stdout, stderr) = await SkiffProcess.RunAsync(Timeout, args);
            Assert.True(exit == 1, stdout + stderr);
            var failed = Record(w)!.Status!;
            var stalled = Conditions.Get(failed, ConditionTypes.Stalled);
            var message = stalled?.Message ?? "";
            Assert.True(stalled is { Status: "True", Reason: Reasons.BuildFailed }, Dump(w));
            Assert.Contains($"building {repository}:{c4[..12]} from commit {c4[..12]} failed", message, StringComparison.Ordinal);
            Assert.Contains("Step 2/5 : COPY missing.txt /missing.txt", message, StringComparison.Ordinal);
            Assert.Contains("missing.txt", message.Split('\n')[0], StringComparison.Ordinal);
            Assert.Equal(tag2, failed.Image);
            Assert.Equal(2, failed.Revision);
            Assert.Equal("built-2-plain", await VersionAsync(port));
            Assert.Contains(new StateStore(w.StateDir).ReadEvents(w.Namespace, "web"), e => e.Reason == Reasons.BuildFailed && e.Type == "Warning");

            // Fixed: built and rolled out (revision 3).
            repo.Write("app/Dockerfile", Dockerfile("built-3"));
            var c5 = repo.Commit("fixed");
            (exit, stdout, stderr) = await SkiffProcess.RunAsync(Timeout, args);
            Assert.True(exit == 0, stdout + stderr);
            var tag5 = $"{repository}:{c5[..12]}";
            Assert.Equal(tag5, Record(w)!.Status!.Image);
            Assert.Equal(3, Record(w)!.Status!.Revision);
            Assert.Equal("built-3-plain", await VersionAsync(port));

            // Image GC with a policy that would remove every unused image: of the three builds, the running one and the
            // last revisionHistoryLimit (1) before it are protected (the rollback target), the oldest goes.
            var policy = Path.Combine(w.Root, "gc-policy.yaml");
            await File.WriteAllTextAsync(policy, """
                apiVersion: skiff.dev/v1alpha1
                kind: ImageGCPolicy
                metadata: { name: everything }
                spec:
                  retainPerRepository: 0
                  minimumAge: 0s
                """);
            var gc = await SkiffProcess.RunAsync(Timeout, "gc", "--node", "local", "--state-dir", w.StateDir, "--policy", policy, "--dry-run", "-o", "json");
            Assert.True(gc.Exit is 0 or 1, gc.Stderr);
            var decisions = JsonNode.Parse(gc.Stdout)!["images"]!.AsArray();
            string Action(string reference) => (string?)decisions.Single(d => (string?)d!["reference"] == reference)!["action"] ?? "";
            Assert.True(Action(tag1) == "delete", gc.Stdout);
            string Reason(string reference) => (string?)decisions.Single(d => (string?)d!["reference"] == reference)!["reason"] ?? "";
            Assert.Equal("protect", Action(tag2));
            Assert.Equal("DeploymentHistory", Reason(tag2));
            Assert.Equal("protect", Action(tag5));
        }
        finally
        {
            await FolderWorkspace.RemoveNamespaceAsync(w.Engine, w.Namespace);
            var built = await w.Engine.Client.Images.ListImagesAsync(new ImagesListParameters
            {
                Filters = new Dictionary<string, IDictionary<string, bool>> { ["reference"] = new Dictionary<string, bool> { [repository] = true } },
            });
            foreach (var image in built)
            {
                await w.Engine.Client.Images.DeleteImageAsync(image.ID, new ImageDeleteParameters { Force = true });
            }
        }
    }

    [Fact]
    public async Task The_folder_source_and_plan_refuse_a_build_naming_the_field_and_the_fix_and_build_nothing()
    {
        await using var w = new FolderWorkspace();
        w.Write("web.yaml", Web(w, DockerFixture.FreeTcpPort()));
        var (exit, stdout, stderr) = await SkiffProcess.RunAsync(Timeout, w.RunOnceArgs());
        Assert.True(exit == 1, stdout + stderr);
        var stalled = Conditions.Get(Record(w)!.Status!, ConditionTypes.Stalled);
        Assert.True(stalled is { Status: "True", Reason: Reasons.InvalidSpec }, Dump(w));
        Assert.StartsWith("spec.app.build: builds need the Git source (skiff run --source git --url URL)", stalled!.Message, StringComparison.Ordinal);
        Assert.Empty(await w.ContainersAsync("web"));

        // skiff plan reads a folder too: the same problem, with the document's place.
        var plan = await SkiffProcess.RunAsync(Timeout, "plan", "--path", w.Resources, "--node", "local", "--state-dir", w.StateDir);
        Assert.True(plan.Exit == 1, plan.Stdout + plan.Stderr);
        Assert.Contains("web.yaml:1: spec.app.build: builds need the Git source", plan.Stdout, StringComparison.Ordinal);
        Assert.Empty(await w.Engine.Client.Images.ListImagesAsync(new ImagesListParameters
        {
            Filters = new Dictionary<string, IDictionary<string, bool>> { ["reference"] = new Dictionary<string, bool> { [GitBuilds.Repository(w.Namespace, "web")] = true } },
        }));
    }
}
