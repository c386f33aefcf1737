using System.Text.Json;
using k8s;
using Skiff.Api;
using Skiff.IntegrationTests.FolderSource;
using Skiff.IntegrationTests.KubernetesSource;
using Skiff.IntegrationTests.Infrastructure;

namespace Skiff.IntegrationTests.ImageGC;

/// <summary>
/// An ImageGCPolicy's <c>status.nodes</c> and Events as the real skiff process writes them through the test API server.
/// The engine is shared and holds the skiff-test/* images every test needs: each policy here keeps every image
/// (<c>keep: ["*"]</c>) and only dry-runs, which still reports.
/// </summary>
public sealed class GcPolicyStatusTests
{
    private const string PolicyName = "status-test";

    private static string Policy() => $"""
        apiVersion: skiff.dev/v1alpha1
        kind: ImageGCPolicy
        metadata:
          name: {PolicyName}
        spec:
          nodes: []
          keep: ["*"]
          dryRun: true
          interval: 10s
        """;

    private static async Task<ImageGCPolicy> GetPolicyAsync(KubeHarness h)
    {
        var raw = await h.Client.CustomObjects.GetClusterCustomObjectAsync(SkiffApi.Group, SkiffApi.Version, ImageGCPolicy.Plural, PolicyName);
        return JsonSerializer.SerializeToElement(raw).Deserialize<ImageGCPolicy>()!;
    }

    private static Task UntilAsync(string what, Func<Task<bool>> condition, Func<string> diagnostics, int seconds = 60) =>
        Eventually.TrueAsync(what, condition, TimeSpan.FromSeconds(seconds), diagnostics, TimeSpan.FromMilliseconds(250));

    private static string Logs(params SkiffProcess[] operators) => string.Join("\n---\n", operators.Select(o => o.Stderr));

    [Fact]
    public async Task A_node_reports_its_run_in_the_policy_status_and_a_Normal_Event()
    {
        await using var h = await KubeHarness.StartAsync();
        await h.ApplyAsync(Policy());
        var op = h.StartOperator("local", leaderElect: true);

        NodeGCStatus? entry = null;
        await UntilAsync("status.nodes has local's entry", async () =>
        {
            entry = (await GetPolicyAsync(h)).Status?.Nodes?.SingleOrDefault(n => n.Node == "local");
            return entry is not null;
        }, () => Logs(op));

        var nodes = (await GetPolicyAsync(h)).Status!.Nodes!;
        var only = Assert.Single(nodes);
        Assert.Equal("local", only.Node);
        Assert.NotNull(only.LastRun);
        Assert.InRange(only.LastRun!.Value, DateTimeOffset.UtcNow.AddMinutes(-2), DateTimeOffset.UtcNow.AddMinutes(1));
        Assert.NotNull(only.DiskUsagePercent);
        Assert.InRange(only.DiskUsagePercent!.Value, 0, 100);
        Assert.Equal(0, only.ImagesRemoved);
        Assert.NotNull(only.NextRun);
        Assert.StartsWith("dry run: would remove 0 images", only.Message, StringComparison.Ordinal);

        // A cluster-scoped object's Events are written in "default" (as kubectl describe looks for them there).
        await UntilAsync("a Normal Event on the policy exists", async () =>
        {
            var events = await h.Client.CoreV1.ListNamespacedEventAsync("default");
            return events.Items.Any(e => e.InvolvedObject.Kind == ImageGCPolicy.KindName && e.InvolvedObject.Name == PolicyName
                && e.InvolvedObject.ApiVersion == SkiffApi.ApiVersion && e.Type == "Normal" && e.Reason == "ImageGCDryRun"
                && e.Message.StartsWith("node local: ", StringComparison.Ordinal));
        }, () => Logs(op), seconds: 30);

        // The status went through the status subresource, never the main resource.
        var writes = h.Server.RequestLog.Where(r => r.Resource == ImageGCPolicy.Plural && r.Method is "PATCH" or "PUT" or "POST" && r.Name == PolicyName).ToList();
        Assert.NotEmpty(writes);
        Assert.All(writes.Where(w => w.Method == "PATCH"), w => Assert.Equal("status", w.Subresource));
    }

    [Fact]
    public async Task Two_policies_that_tie_for_a_node_give_a_Warning_Event_on_the_one_in_effect()
    {
        await using var h = await KubeHarness.StartAsync();
        await h.ApplyAsync(Policy());
        // Same tier (empty nodes: every node), so the first by name wins, with a Warning: "status-test" < "tie-b".
        await h.ApplyAsync(Policy().Replace($"name: {PolicyName}", "name: tie-b", StringComparison.Ordinal));
        var op = h.StartOperator("local", leaderElect: true);

        await UntilAsync("a Warning Event PolicyConflict on the policy in effect", async () =>
        {
            var events = await h.Client.CoreV1.ListNamespacedEventAsync("default");
            return events.Items.Any(e => e.InvolvedObject.Kind == ImageGCPolicy.KindName && e.InvolvedObject.Name == PolicyName
                && e.Type == "Warning" && e.Reason == "PolicyConflict" && e.Message.Contains("tie-b", StringComparison.Ordinal));
        }, () => Logs(op), seconds: 60);

        // Said once, not at every pass (the interval is 10 s): a later pass adds no second Event.
        await Task.Delay(TimeSpan.FromSeconds(12));
        var conflicts = (await h.Client.CoreV1.ListNamespacedEventAsync("default")).Items
            .Where(e => e.Reason == "PolicyConflict").Sum(e => e.Count ?? 1);
        Assert.Equal(1, conflicts);
    }

    [Theory]
    [InlineData(409)] // a stale resourceVersion on an update
    [InlineData(422)] // the JSON patch's resourceVersion test failed: the policy changed since it was read
    public async Task A_conflicting_status_write_is_retried_on_a_fresh_read_and_the_entry_lands(int refusal)
    {
        await using var h = await KubeHarness.StartAsync();
        await h.ApplyAsync(Policy());
        // Another writer got in first, three times running.
        h.Server.Faults.FailNext(3, "PATCH", $"imagegcpolicies/{PolicyName}/status", refusal);
        var op = h.StartOperator("local", leaderElect: true);

        await UntilAsync("status.nodes has local's entry", async () =>
            (await GetPolicyAsync(h)).Status?.Nodes?.Any(n => n.Node == "local") == true, () => Logs(op));

        var patches = h.Server.RequestLog
            .Where(r => r.Resource == ImageGCPolicy.Plural && r.Name == PolicyName && r.Method == "PATCH")
            .Select(r => r.StatusCode).ToList();
        // The three refused writes, each followed by a fresh read and another try, then the one that landed.
        Assert.True(patches.Count >= 4 && patches.Take(3).All(c => c == refusal) && patches[3] == 200, string.Join(", ", patches));
        var reads = h.Server.RequestLog.Count(r => r.Resource == ImageGCPolicy.Plural && r.Name == PolicyName && r.Method == "GET");
        Assert.True(reads >= 4, $"{reads} reads of the policy for {patches.Count} writes");
    }

    [Fact]
    public async Task Two_nodes_write_only_their_own_entries_and_neither_drops_the_others()
    {
        await using var h = await KubeHarness.StartAsync();
        await h.ApplyAsync(Policy());
        // Two nodes on the one engine (different node names and state folders): both only dry-run and keep every image.
        var a = h.StartOperator("local-a", leaderElect: true);
        var b = h.StartOperator("local-b", leaderElect: true);

        // Every state of status.nodes seen from the moment both entries are there: none may lack either.
        var seen = new List<(string Rv, string[] Nodes, DateTimeOffset? A, DateTimeOffset? B)>();
        async Task<(string[] Nodes, DateTimeOffset? A, DateTimeOffset? B)> SnapshotAsync()
        {
            var p = await GetPolicyAsync(h);
            var nodes = p.Status?.Nodes ?? [];
            var snap = (nodes.Select(n => n.Node).ToArray(), nodes.FirstOrDefault(n => n.Node == "local-a")?.LastRun,
                nodes.FirstOrDefault(n => n.Node == "local-b")?.LastRun);
            if (seen.Count == 0 || seen[^1].Rv != p.Metadata.ResourceVersion)
            {
                seen.Add((p.Metadata.ResourceVersion, snap.Item1, snap.Item2, snap.Item3));
            }

            return snap;
        }

        string History() => string.Join("\n", seen.Select(s => $"rv {s.Rv}: [{string.Join(", ", s.Nodes)}] a={s.A:O} b={s.B:O}"));

        await UntilAsync("both entries are there", async () => (await SnapshotAsync()).Nodes.Length == 2, () => History() + "\n" + Logs(a, b));
        var first = await SnapshotAsync();
        var bothFrom = seen.Count - 1;

        // Each node writes again (interval 10 s): each new write by one must leave the other's entry in place.
        await UntilAsync("both nodes have written again", async () =>
        {
            var now = await SnapshotAsync();
            return now.A > first.A && now.B > first.B;
        }, () => History() + "\n" + Logs(a, b), seconds: 45);

        foreach (var s in seen.Skip(bothFrom))
        {
            Assert.True(s.Nodes.SequenceEqual(["local-a", "local-b"]), $"an entry was dropped or duplicated:\n{History()}");
        }

        // Once written, an entry is in every later state seen.
        var withA = seen.Where(s => s.A is not null).ToList();
        var withB = seen.Where(s => s.B is not null).ToList();
        Assert.Equal(seen.Count - seen.FindIndex(s => s.A is not null), withA.Count);
        Assert.Equal(seen.Count - seen.FindIndex(s => s.B is not null), withB.Count);

        // Both instances share the one address, so the request log cannot tell their PATCHes apart; it does show that
        // every status write went through the status subresource, and that the conflicts (if any) were retried.
        var patches = h.Server.RequestLog.Where(r => r.Resource == ImageGCPolicy.Plural && r.Name == PolicyName && r.Method == "PATCH").ToList();
        Assert.All(patches, p => Assert.Equal("status", p.Subresource));
        Assert.True(patches.Count(p => p.StatusCode == 200) >= 4, string.Join("\n", patches));
    }
}
