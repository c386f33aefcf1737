using System.Diagnostics;
using System.Net;
using System.Text.RegularExpressions;
using k8s;
using k8s.Autorest;
using Skiff.Api;
using Skiff.Reconcile;
using Skiff.IntegrationTests.Infrastructure;

namespace Skiff.IntegrationTests.TwoHosts;

/// <summary>One Lease per node (<c>skiff-NODE</c>): two instances of one node never work at once (DESIGN §2).</summary>
[Collection(TwoHostsCollection.Name)]
public sealed class LeaderElectionTests
{
    private const string Lease = "skiff-vps-1";

    [Fact]
    public async Task A_second_instance_of_a_node_waits_and_takes_over_a_killed_leader_mid_rollout_without_duplicates()
    {
        await using var h = await TwoHostsHarness.StartAsync();
        var first = h.StartVps1();
        await h.UntilAsync("the first instance leads", () => Task.FromResult(first.Stderr.Contains("Acquired lease", StringComparison.Ordinal)));
        var second = h.StartVps1(metrics: "127.0.0.1:0");
        await h.UntilAsync("the second instance waits", () => Task.FromResult(second.Stderr.Contains("Waiting for lease", StringComparison.Ordinal)));
        var metrics = new Uri($"http://{Regex.Match(second.Stderr, @"Serving metrics on (127\.0\.0\.1:\d+)").Groups[1].Value}/metrics");
        await h.Kube.ApplyAsync(h.Kube.Stateless("web", "vps-1"));
        Assert.Equal(0, (await h.Kube.WaitReadyAsync("web", seconds: 60)).ExitCode);
        // A waiting instance does not even start its informer.
        Assert.DoesNotContain("Acquired lease", second.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Cache synced", second.Stderr, StringComparison.Ordinal);
        Assert.Equal("0", await LeaderStatusAsync(metrics));

        // Revision 2's health check passes only 8 s after it starts, so the kill below lands in the middle of its
        // rollout however fast this machine is.
        await h.Kube.ApplyAsync(h.Kube.Stateless("web", "vps-1", s =>
            (s.App.Image, s.App.Env) = (TestImages.App2, [new EnvVar { Name = "TESTAPP_HEALTHY_AFTER_SECONDS", Value = "8" }])));
        await h.UntilAsync("revision 2 is starting", async () => (await h.ContainersAsync(h.Vps1Engine, "web")).Any(c => c.Revision == 2));
        first.Kill();
        var killed = Stopwatch.StartNew();
        await first.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.DoesNotContain("mark revision 2 succeeded", first.Stderr, StringComparison.Ordinal);
        await h.UntilAsync("the second instance takes over", () => Task.FromResult(second.Stderr.Contains("Acquired lease", StringComparison.Ordinal)), seconds: 30);
        // The lease must expire first; the rest is slack for a loaded CI machine.
        Assert.True(killed.Elapsed < TwoHostsHarness.ShortLeaseDuration + TimeSpan.FromSeconds(6), $"took over {killed.Elapsed.TotalSeconds:0.0} s after the kill");
        Assert.Equal("1", await LeaderStatusAsync(metrics));

        await h.UntilAsync("revision 2 Ready", async () =>
        {
            var r = await h.Kube.GetAsync("web");
            return r?.Status?.Revision == 2 && r.Status.ObservedGeneration == r.Metadata.Generation && Conditions.IsTrue(r.Status, ConditionTypes.Ready);
        });
        var app = Assert.Single(await h.ContainersAsync(h.Vps1Engine, "web"));
        Assert.Equal((2L, "skiff-test/app:2"), (app.Revision, app.Image));
        var history = (await h.Kube.GetAsync("web"))!.Status!.History!.Select(r => r.Revision).ToArray();
        Assert.Equal([1L, 2L], history);
    }

    /// <summary>The value of <c>leader_election_master_status{name="skiff-vps-1"}</c> on an instance's /metrics.</summary>
    private static async Task<string> LeaderStatusAsync(Uri metrics)
    {
        using var http = new HttpClient();
        var text = await http.GetStringAsync(metrics);
        return Regex.Match(text, $@"^leader_election_master_status\{{name=""{Lease}""\}} (\S+)$", RegexOptions.Multiline).Groups[1].Value;
    }

    [Fact]
    public async Task An_instance_whose_lease_is_taken_away_exits_with_1_and_says_so()
    {
        await using var h = await TwoHostsHarness.StartAsync();
        var op = h.StartVps1();
        await h.UntilAsync("the instance leads", () => Task.FromResult(op.Stderr.Contains("Acquired lease", StringComparison.Ordinal)));

        // Another identity takes the lease (as a partitioned leader would see it happen): the holder cannot renew.
        for (var attempt = 0; ; attempt++)
        {
            var lease = await h.Kube.Client.CoordinationV1.ReadNamespacedLeaseAsync(Lease, h.Namespace);
            lease.Spec.HolderIdentity = "another-instance";
            lease.Spec.AcquireTime = lease.Spec.RenewTime = DateTime.UtcNow;
            lease.Spec.LeaseDurationSeconds = 60;
            try
            {
                await h.Kube.Client.CoordinationV1.ReplaceNamespacedLeaseAsync(lease, Lease, h.Namespace);
                break;
            }
            catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.Conflict && attempt < 10)
            {
                // The holder renewed meanwhile.
            }
        }

        var exit = await op.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.True(exit == 1, $"exit {exit}\n{h.Logs()}");
        Assert.Contains($"Lost lease {h.Namespace}/{Lease}", op.Stderr, StringComparison.Ordinal);
    }
}
