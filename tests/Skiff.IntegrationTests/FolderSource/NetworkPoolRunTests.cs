using Skiff.Api;
using Skiff.Docker;
using Skiff.IntegrationTests.Infrastructure;
using Skiff.Reconcile;

namespace Skiff.IntegrationTests.FolderSource;

/// <summary><c>skiff run --network-pool --network-prefix</c> through the real process and engine.</summary>
public sealed class NetworkPoolRunTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(3);

    [Fact]
    public async Task A_pool_of_two_subnets_serves_two_stacks_and_the_third_stalls_with_NetworkPoolExhausted_alone()
    {
        await using var w = new FolderWorkspace();
        string[] pool = ["--network-pool", "10.231.96.0/28", "--network-prefix", "29"];
        w.Write("one.yaml", Stacks.Yaml(Stacks.Stateless("one", w.Namespace)));
        w.Write("two.yaml", Stacks.Yaml(Stacks.Stateless("two", w.Namespace)));
        var (exit, stdout, stderr) = await SkiffProcess.RunAsync(Timeout, [.. w.RunOnceArgs(), .. pool]);
        Assert.True(exit == 0, $"exit {exit}\n{stdout}\n{stderr}");
        var running = (await w.ContainersAsync()).Select(c => c.Id).Order().ToList();

        w.Write("three.yaml", Stacks.Yaml(Stacks.Stateless("three", w.Namespace)));
        (exit, stdout, stderr) = await SkiffProcess.RunAsync(Timeout, [.. w.RunOnceArgs(), .. pool]);

        Assert.True(exit == 1, $"exit {exit}\n{stdout}\n{stderr}");
        Assert.Matches($@"{w.Namespace}\s+one\s+local\s+True\s+Ready", stdout);
        Assert.Matches($@"{w.Namespace}\s+two\s+local\s+True\s+Ready", stdout);
        Assert.Contains("NetworkPoolExhausted", stdout, StringComparison.Ordinal);
        var store = new Skiff.State.StateStore(w.StateDir);
        var stalled = store.Read(w.Namespace, "three")!.Status!.Conditions!.Single(c => c.Type == ConditionTypes.Stalled);
        Assert.Equal(("True", Reasons.NetworkPoolExhausted), (stalled.Status, stalled.Reason));
        Assert.StartsWith(
            $"network skiff_{w.Namespace}_three: no free subnet in the network pool: 2 of its 2 /29 subnets (--network-pool 10.231.96.0/28 --network-prefix 29) are in use, 2 by Skiff stack networks",
            stalled.Message, StringComparison.Ordinal);
        Assert.Contains(store.ReadEvents(w.Namespace, "three"), e => e is { Type: "Warning", Reason: Reasons.NetworkPoolExhausted });
        // The first two are untouched (same containers), on the pool's two subnets; the third has nothing.
        Assert.Equal(running, (await w.ContainersAsync()).Select(c => c.Id).Order().ToList());
        Assert.Empty(await w.ContainersAsync("three"));
        Assert.False(await w.Engine.NetworkExistsAsync($"skiff_{w.Namespace}_three", CancellationToken.None));
        var subnets = (await w.Engine.ListNetworksAsync(new Dictionary<string, string> { [SkiffLabels.ManagedBy] = SkiffLabels.ManagedByValue }, CancellationToken.None))
            .Where(n => n.Name.StartsWith($"skiff_{w.Namespace}_", StringComparison.Ordinal))
            .Select(n => n.Labels[DockerEngine.SubnetLabel])
            .Order();
        Assert.Equal(["10.231.96.0/29", "10.231.96.8/29"], subnets);
    }
}
