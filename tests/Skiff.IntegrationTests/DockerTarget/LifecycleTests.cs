using Docker.DotNet.Models;
using Skiff.Api;
using Skiff.Reconcile;
using Skiff.IntegrationTests.Infrastructure;

namespace Skiff.IntegrationTests.DockerTarget;

/// <summary>Deletion, data safety, isolation and ownership on the real engine.</summary>
public sealed class LifecycleTests
{
    [Fact]
    public async Task Deletion_keeps_the_volume_and_credentials_and_a_new_stack_finds_the_rows_again()
    {
        await using var h = new StackHarness();
        var api = StackHarness.ApiWithDatabase(h.Namespace, "api");
        await h.ReconcileAsync(api);
        await h.GetAppJsonAsync(api);
        var visits = (await h.GetAppJsonAsync(api))["visits"]!.GetValue<long>();
        var names = new StackNames(h.Namespace, "api");

        await h.Reconciler.DeleteAsync(names, api.Spec, CancellationToken.None);

        Assert.Empty(await h.ContainersAsync(api));
        Assert.False(await h.Engine.NetworkExistsAsync(names.Network, CancellationToken.None));
        Assert.NotNull(await h.Engine.InspectVolumeAsync(names.DatabaseVolume, CancellationToken.None));
        Assert.True(h.Secrets.Secrets.ContainsKey($"{h.Namespace}/api-db"));

        var again = StackHarness.ApiWithDatabase(h.Namespace, "api");
        await h.ReconcileAsync(again);
        Assert.Equal(Phases.Ready, again.Status!.Phase);
        Assert.Equal(visits + 1, (await h.GetAppJsonAsync(again))["visits"]!.GetValue<long>());
    }

    [Fact]
    public async Task ReclaimPolicy_Delete_removes_volume_and_credentials_but_never_an_adopted_volume()
    {
        await using var h = new StackHarness();
        var owned = StackHarness.ApiWithDatabase(h.Namespace, "owned");
        owned.Spec.Database!.Storage = new StorageSpec { ReclaimPolicy = ReclaimPolicies.Delete };
        var adoptedVolume = $"legacy_pgdata_{h.Namespace}";
        await h.Engine.Client.Volumes.CreateAsync(new VolumesCreateParameters { Name = adoptedVolume });
        try
        {
            var adopted = StackHarness.ApiWithDatabase(h.Namespace, "adopted");
            adopted.Spec.Database!.Volume = adoptedVolume;
            adopted.Spec.Database.Storage = new StorageSpec { ReclaimPolicy = ReclaimPolicies.Delete };
            await Task.WhenAll(h.ReconcileAsync(owned), h.ReconcileAsync(adopted));
            Assert.Equal(Phases.Ready, owned.Status!.Phase);
            Assert.Equal(Phases.Ready, adopted.Status!.Phase);

            await h.Reconciler.DeleteAsync(new StackNames(h.Namespace, "owned"), owned.Spec, CancellationToken.None);
            await h.Reconciler.DeleteAsync(new StackNames(h.Namespace, "adopted"), adopted.Spec, CancellationToken.None);

            Assert.Null(await h.Engine.InspectVolumeAsync(new StackNames(h.Namespace, "owned").DatabaseVolume, CancellationToken.None));
            Assert.False(h.Secrets.Secrets.ContainsKey($"{h.Namespace}/owned-db"));
            Assert.NotNull(await h.Engine.InspectVolumeAsync(adoptedVolume, CancellationToken.None));
        }
        finally
        {
            await h.Engine.Client.Volumes.RemoveAsync(adoptedVolume, force: true);
        }
    }

    [Fact]
    public async Task Cleanup_of_a_stack_that_never_existed_succeeds()
    {
        await using var h = new StackHarness();
        await h.Reconciler.DeleteAsync(new StackNames(h.Namespace, "never"), StackHarness.ApiWithDatabase(h.Namespace, "never").Spec, CancellationToken.None);
        await h.Reconciler.DeleteAsync(new StackNames(h.Namespace, "never"), null, CancellationToken.None);
    }

    [Fact]
    public async Task Database_and_cache_publish_no_port_and_are_unreachable_from_another_stack()
    {
        await using var h = new StackHarness();
        var api = StackHarness.ApiWithDatabase(h.Namespace, "api");
        var bot = h.BotWithRedis("bot");
        await Task.WhenAll(h.ReconcileAsync(api), h.ReconcileAsync(bot));

        var database = (await h.ContainersAsync(api)).Single(c => c.Component == StackNames.DatabaseComponent);
        var inspect = await h.Engine.Client.Containers.InspectContainerAsync(database.Id);
        Assert.True(inspect.HostConfig!.PortBindings is null || inspect.HostConfig.PortBindings.Count == 0);
        Assert.Equal("SIGINT", inspect.Config!.StopSignal);
        Assert.True(inspect.HostConfig.Init);
        Assert.Contains("no-new-privileges", inspect.HostConfig.SecurityOpt!);
        Assert.Equal("10m", inspect.HostConfig.LogConfig!.Config!["max-size"]);
        var cache = (await h.ContainersAsync(bot)).Single(c => c.Component == StackNames.CacheComponent);
        var cacheInspect = await h.Engine.Client.Containers.InspectContainerAsync(cache.Id);
        Assert.True(cacheInspect.HostConfig!.PortBindings is null || cacheInspect.HostConfig.PortBindings.Count == 0);

        // From the bot's network, the api's database does not answer; from the api's own network it does.
        var dbIp = database.NetworkIps.Values.Single();
        Assert.NotEqual(0, await ProbeTcpAsync(h, new StackNames(h.Namespace, "bot").Network, dbIp, 5432));
        Assert.Equal(0, await ProbeTcpAsync(h, new StackNames(h.Namespace, "api").Network, dbIp, 5432));
    }

    [Fact]
    public async Task Objects_without_skiffs_labels_are_never_touched()
    {
        await using var h = new StackHarness();
        var names = new StackNames(h.Namespace, "api");
        var client = h.Engine.Client;
        // Look-alikes: same names a stack would use, but no Skiff labels.
        await client.Volumes.CreateAsync(new VolumesCreateParameters { Name = names.CacheVolume });
        var stranger = await client.Containers.CreateContainerAsync(new CreateContainerParameters
        {
            Name = $"skiff_{h.Namespace}_api_app_r7",
            Image = "skiff-test/busybox:latest",
            Cmd = ["sleep", "300"],
        });
        try
        {
            var api = StackHarness.ApiWithDatabase(h.Namespace, "api");
            await h.ReconcileAsync(api);
            Assert.Equal(Phases.Ready, api.Status!.Phase);
            await h.Reconciler.DeleteAsync(names, api.Spec, CancellationToken.None);

            Assert.NotNull(await h.Engine.InspectContainerAsync(stranger.ID, CancellationToken.None));
            Assert.NotNull(await h.Engine.InspectVolumeAsync(names.CacheVolume, CancellationToken.None));
        }
        finally
        {
            await client.Containers.RemoveContainerAsync(stranger.ID, new ContainerRemoveParameters { Force = true, RemoveVolumes = true });
            await client.Volumes.RemoveAsync(names.CacheVolume, force: true);
        }
    }

    [Fact]
    public async Task A_data_volume_of_another_postgres_major_version_is_refused()
    {
        await using var h = new StackHarness();
        var volume = $"old_pgdata_{h.Namespace}";
        await h.Engine.Client.Volumes.CreateAsync(new VolumesCreateParameters { Name = volume });
        try
        {
            await RunBusyboxAsync(h, null, ["sh", "-c", "echo 14 > /data/PG_VERSION"], new Mount { Type = "volume", Source = volume, Target = "/data" });
            var api = StackHarness.ApiWithDatabase(h.Namespace, "api");
            api.Spec.Database!.Volume = volume;

            await h.ReconcileAsync(api);

            var stalled = Conditions.Get(api.Status, ConditionTypes.Stalled)!;
            Assert.Equal("True", stalled.Status);
            Assert.Equal("DatabaseVersionMismatch", stalled.Reason);
            Assert.Contains("PostgreSQL 14", stalled.Message);
            Assert.DoesNotContain(await h.ContainersAsync(api), c => c.Component == StackNames.DatabaseComponent);
            Assert.Equal("14", (await ReadVersionAsync(h, volume)).Trim());
        }
        finally
        {
            await h.Engine.Client.Volumes.RemoveAsync(volume, force: true);
        }
    }

    private static async Task<string> ReadVersionAsync(StackHarness h, string volume) =>
        (await RunBusyboxAsync(h, null, ["cat", "/data/PG_VERSION"], new Mount { Type = "volume", Source = volume, Target = "/data" })).Output;

    private static async Task<long> ProbeTcpAsync(StackHarness h, string network, string ip, int port) =>
                // Busybox's nc has no -z: connecting with stdin at EOF exits 0 once the connection opened.
        (await RunBusyboxAsync(h, network, ["sh", "-c", $"nc -w 2 {ip} {port.ToString(System.Globalization.CultureInfo.InvariantCulture)} </dev/null"], null)).Exit;

    private static async Task<(long Exit, string Output)> RunBusyboxAsync(StackHarness h, string? network, IList<string> cmd, Mount? mount)
    {
        var client = h.Engine.Client;
        var created = await client.Containers.CreateContainerAsync(new CreateContainerParameters
        {
            Image = "skiff-test/busybox:latest",
            Cmd = cmd,
            Labels = new Dictionary<string, string> { [SkiffLabels.Source] = h.SourceId },
            HostConfig = new HostConfig { NetworkMode = network ?? "", Mounts = mount is { } m ? [m] : [] },
        });
        try
        {
            await client.Containers.StartContainerAsync(created.ID, new ContainerStartParameters());
            var exit = (await client.Containers.WaitContainerAsync(created.ID)).StatusCode;
            var output = await h.Engine.LogsAsync(created.ID, 50, CancellationToken.None);
            return (exit, output);
        }
        finally
        {
            await client.Containers.RemoveContainerAsync(created.ID, new ContainerRemoveParameters { Force = true, RemoveVolumes = true });
        }
    }
}
