using System.Text.Json.Nodes;
using Skiff.IntegrationTests.FolderSource;
using Skiff.IntegrationTests.Infrastructure;

namespace Skiff.IntegrationTests.KubernetesSource;

/// <summary>
/// On a node served by the Kubernetes source, commands that run without the API (<c>skiff gc</c>, <c>skiff status</c>)
/// know its AppDeployments through the records it keeps in the state folder: a manual GC keeps the rollback images.
/// </summary>
public sealed class StateMirrorTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(2);

    [Fact]
    public async Task A_manual_gc_on_a_kubernetes_node_keeps_the_rollback_image_and_status_lists_the_resource()
    {
        await using var h = await KubeHarness.StartAsync();
        var state = Path.Combine(h.Workspace.Root, "state-mirror");
        h.StartOperator(stateDir: state);

        // Two images of their own (distinct ids), so nothing else on the shared engine uses or protects them.
        var tag = h.Namespace.ToLowerInvariant();
        var first = await BuildAsync($"skiff-test/app:{tag}-1");
        var second = await BuildAsync($"skiff-test/app:{tag}-2");
        try
        {
            await h.ApplyAsync(h.Stateless("web", "local").Replace("skiff-test/app:1", first, StringComparison.Ordinal));
            Assert.Equal(0, (await h.WaitReadyAsync("web", seconds: 90)).ExitCode);
            await h.ApplyAsync(h.Stateless("web", "local").Replace("skiff-test/app:1", second, StringComparison.Ordinal));
            await Eventually.UntilAsync("web's revision 2", () => h.GetAsync("web"), r => r?.Status?.Revision == 2, Timeout);
            Assert.Equal(0, (await h.WaitReadyAsync("web", seconds: 90)).ExitCode);

            // skiff status reads the same state folder the operator writes (-o json: the records).
            await Eventually.ValueAsync("skiff status shows web's revision 2", async _ =>
            {
                var status = await SkiffProcess.RunAsync(Timeout, "status", "--state-dir", state, "-o", "json");
                var web = status.Exit == 0
                    ? JsonNode.Parse(status.Stdout)!.AsArray().SingleOrDefault(r => (string?)r!["name"] == "web" && (string?)r["namespace"] == h.Namespace)
                    : null;
                return (web?["status"]?["revision"] is { } revision && (long)revision == 2 ? web : null, $"exit {status.Exit}\n{status.Stdout}{status.Stderr}");
            }, Timeout);
            var table = await SkiffProcess.RunAsync(Timeout, "status", "--state-dir", state);
            Assert.Matches($@"{h.Namespace}\s+web\s+local\s+True\s+Ready\s+{System.Text.RegularExpressions.Regex.Escape(second)}\s+2", table.Stdout);

            // A policy that would remove every unused image at once: revision 1's image is unused now, and kept only
            // because it is the rollback target recorded in the resource's history.
            var policy = Path.Combine(h.Workspace.Root, "gc-policy.yaml");
            await File.WriteAllTextAsync(policy, """
                apiVersion: skiff.dev/v1alpha1
                kind: ImageGCPolicy
                metadata: { name: everything }
                spec:
                  retainPerRepository: 0
                  minimumAge: 0s
                """);
            var gc = await SkiffProcess.RunAsync(Timeout, "gc", "--node", "local", "--state-dir", state, "--policy", policy, "--dry-run", "-o", "json");
            Assert.True(gc.Exit is 0 or 1, gc.Stderr);
            var decision = JsonNode.Parse(gc.Stdout)!["images"]!.AsArray().Single(d => (string?)d!["reference"] == first)!;
            Assert.Equal("protect", (string?)decision["action"]);
            Assert.Equal("DeploymentHistory", (string?)decision["reason"]);
        }
        finally
        {
            await h.KubectlAsync("delete", "appdeployment", "web", "--wait=true", "--timeout=60s");
            foreach (var image in new[] { first, second })
            {
                await Command.RunAsync("docker", ["rmi", image]);
            }
        }
    }

    /// <summary>An image of its own from skiff-test/app:1 (the legacy builder needs no registry).</summary>
    private static async Task<string> BuildAsync(string tag)
    {
        var dir = Directory.CreateTempSubdirectory("skiff-build-");
        try
        {
            await File.WriteAllTextAsync(Path.Combine(dir.FullName, "Dockerfile"), $"FROM skiff-test/app:1\nLABEL dev.skiff.test=\"{tag}\"\n");
            await Command.MustAsync($"docker build {tag}", "docker", ["build", "-q", "-t", tag, dir.FullName],
                new Dictionary<string, string> { ["DOCKER_BUILDKIT"] = "0" });
            return tag;
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
