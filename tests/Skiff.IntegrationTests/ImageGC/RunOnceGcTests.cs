using System.Text.Json.Nodes;
using Skiff.Docker;
using Skiff.IntegrationTests.DockerTarget;
using Skiff.IntegrationTests.FolderSource;
using Skiff.IntegrationTests.Infrastructure;

namespace Skiff.IntegrationTests.ImageGC;

/// <summary>
/// A node deployed only by <c>skiff run --once</c> (from CI, as the team's old scripts did) collects its old
/// images too: the disk that filled up with one image per deploy. On a private engine: this test deletes images.
/// </summary>
public sealed class RunOnceGcTests
{
    private const string Repository = "acme/old";

    [Fact]
    public async Task Run_once_ends_with_a_gc_pass_under_the_folders_policy()
    {
        await using var dockerd = new ThrowawayEngine("gconce");
        await dockerd.StartAsync();
        await dockerd.ResetAsync();
        await dockerd.LoadImagesAsync("skiff-test/busybox:latest");
        using var engine = new DockerEngine(dockerd.Endpoint);
        foreach (var old in (await engine.ListImagesAsync(CancellationToken.None)).Where(i => i.RepoTags.Any(t => t.StartsWith(Repository + ":", StringComparison.Ordinal))))
        {
            await engine.Client.Images.DeleteImageAsync(old.Id, new() { Force = true });
        }

        // Five builds of one app left behind by earlier deploys, oldest first.
        for (var i = 1; i <= 5; i++)
        {
            await ImportAsync(dockerd.Endpoint, $"{Repository}:{i}", $"build {i} {Guid.NewGuid()}");
        }

        await using var w = new FolderWorkspace();
        w.Write("app.yaml", $"""
            apiVersion: skiff.dev/v1alpha1
            kind: AppDeployment
            metadata: {"{"} name: sleeper, namespace: {w.Namespace} {"}"}
            spec:
              node: local
              app:
                image: skiff-test/busybox:latest
                imagePullPolicy: Never
                command: ["sleep", "3600"]
              rollout: {"{"} minReadySeconds: 1 {"}"}
            ---
            apiVersion: skiff.dev/v1alpha1
            kind: ImageGCPolicy
            metadata: {"{"} name: two-builds {"}"}
            spec:
              retainPerRepository: 2
              minimumAge: 0s
              keep: ["skiff-test/*"]
            """);

        var (exit, stdout, stderr) = await SkiffProcess.RunAsync(TimeSpan.FromMinutes(2), [.. w.RunOnceArgs(), "--docker-host", dockerd.Endpoint]);

        Assert.True(exit == 0, $"exit {exit}\n{stdout}\n{stderr}");
        var left = (await engine.ListImagesAsync(CancellationToken.None)).SelectMany(i => i.RepoTags).Where(t => t.StartsWith(Repository + ":", StringComparison.Ordinal)).Order();
        Assert.Equal([$"{Repository}:4", $"{Repository}:5"], left);
        Assert.NotNull(await engine.InspectImageAsync("skiff-test/busybox:latest", CancellationToken.None));
        var report = JsonNode.Parse(await File.ReadAllTextAsync(new Skiff.State.StateStore(w.StateDir).GcReportPath("local")))!;
        Assert.Equal("skiff run --once", (string?)report["trigger"]);
        Assert.Equal(3, (int)report["imagesRemoved"]!);
        Assert.Equal("two-builds", (string?)report["policy"]);
    }

    /// <summary>A small image of its own: a tarball holding one file, imported with a tag.</summary>
    private static async Task ImportAsync(string endpoint, string tag, string content)
    {
        var dir = Directory.CreateTempSubdirectory("skiff-import-");
        try
        {
            await File.WriteAllTextAsync(Path.Combine(dir.FullName, "build.txt"), content);
            await Command.MustAsync($"docker import {tag}", "sh", ["-c", $"tar -C '{dir.FullName}' -cf - . | docker -H {endpoint} import - {tag}"]);
        }
        finally
        {
            dir.Delete(recursive: true);
        }

        // Distinct creation times, so "the newest two" is well defined.
        await Task.Delay(1100);
    }
}
