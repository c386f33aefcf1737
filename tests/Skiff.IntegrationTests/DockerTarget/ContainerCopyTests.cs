using System.Collections.Concurrent;
using Docker.DotNet.Models;
using Microsoft.Extensions.Logging.Abstractions;
using Skiff.Docker;
using Skiff.IntegrationTests.Infrastructure;
using Skiff.Reconcile;

namespace Skiff.IntegrationTests.DockerTarget;

/// <summary>
/// The copy of Skiff's containers that the stacks read (<see cref="CachedContainerEngine"/>) on the real engine: its
/// event stream (filters, replay from the engine's clock) is Docker's, which no in-memory engine can stand in for.
/// </summary>
[Collection(DockerCollection.Name)]
public sealed class ContainerCopyTests(DockerFixture docker)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task The_copy_follows_changes_made_outside_it_and_wakes_the_stack_whose_container_died()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var ct = cts.Token;
        var stack = $"{docker.Prefix}/copy";
        var labels = new Dictionary<string, string> { [SkiffLabels.ManagedBy] = SkiffLabels.ManagedByValue, [SkiffLabels.App] = stack };
        var network = await docker.CreateNetworkAsync("copy", ct);
        // One container before the copy starts (the list finds it), one after (only an event can tell).
        var before = await docker.StartContainerAsync(Sleeper(network, labels), ct);

        using var engine = new DockerEngine(docker.DockerHost.ToString());
        var copy = new CachedContainerEngine(engine, engine, NullLogger.Instance);
        var woken = new ConcurrentQueue<string>();
        copy.StackChanged = woken.Enqueue;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var running = copy.RunAsync(stop.Token);
        try
        {
            await Eventually.UntilAsync("the copy is live", () => Task.FromResult(copy.Live), live => live, Wait);
            Assert.Equal("running", Assert.Single(await copy.ListContainersAsync(labels, ct)).State);

            var after = await docker.StartContainerAsync(Sleeper(network, labels), ct);
            await Eventually.UntilAsync("the copy has the container started outside it", () => copy.ListContainersAsync(labels, ct),
                seen => seen.Count == 2 && seen.All(c => c.State == "running"), Wait);

            // Killed outside Skiff: the copy says so without a list, and the stack is woken.
            await docker.Client.Containers.KillContainerAsync(before, new ContainerKillParameters(), ct);
            await Eventually.UntilAsync("the copy has the killed container exited", () => copy.ListContainersAsync(labels, ct),
                seen => seen.Single(c => c.Id == before).State == "exited", Wait);
            await Eventually.UntilAsync("the stack is woken", () => Task.FromResult(woken.Contains(stack)), w => w, Wait);
            Assert.Equal(1, copy.Syncs);

            // Written through the copy: read back at once, without waiting for the event.
            await copy.RemoveContainerAsync(after, ct);
            Assert.Equal([before], (await copy.ListContainersAsync(labels, ct)).Select(c => c.Id));
        }
        finally
        {
            await stop.CancelAsync();
            await running;
            await docker.RemoveContainerAsync(before, CancellationToken.None);
        }
    }

    [Fact]
    public async Task The_copy_follows_networks_and_volumes_made_and_removed_outside_it()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var ct = cts.Token;
        var managed = new Dictionary<string, string>(docker.Labels) { [SkiffLabels.ManagedBy] = SkiffLabels.ManagedByValue };
        var network = docker.Name("copy-net");
        var volume = docker.Name("copy-vol");
        await docker.Client.Networks.CreateNetworkAsync(new NetworksCreateParameters { Name = network, Driver = "bridge", Labels = managed }, ct);

        using var engine = new DockerEngine(docker.DockerHost.ToString());
        var copy = new CachedContainerEngine(engine, engine, NullLogger.Instance);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var running = copy.RunAsync(stop.Token);
        try
        {
            await Eventually.UntilAsync("the copy is live", () => Task.FromResult(copy.Live), live => live, Wait);
            Assert.True(await copy.NetworkExistsAsync(network, ct));
            Assert.Null(await copy.InspectVolumeAsync(volume, ct));

            // Outside Skiff (docker volume create, docker network rm): only the event stream can tell the copy.
            await docker.Client.Volumes.CreateAsync(new VolumesCreateParameters { Name = volume, Labels = managed }, ct);
            await docker.Client.Networks.DeleteNetworkAsync(network, ct);
            await Eventually.UntilAsync("the copy has the volume created outside it", () => copy.InspectVolumeAsync(volume, ct),
                labels => labels is not null && labels.ContainsKey(SkiffLabels.ManagedBy), Wait);
            await Eventually.UntilAsync("the copy has the network removed outside it", () => copy.NetworkExistsAsync(network, ct),
                exists => !exists, Wait);
            Assert.Equal(1, copy.Syncs);
        }
        finally
        {
            await stop.CancelAsync();
            await running;
            try
            {
                await docker.Client.Volumes.RemoveAsync(volume, force: true, CancellationToken.None);
            }
            catch (global::Docker.DotNet.DockerApiException)
            {
            }
        }
    }

    [Fact]
    public async Task A_once_runs_wait_ends_when_a_container_of_its_stack_exits_and_only_then()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var ct = cts.Token;
        var stack = $"{docker.Prefix}/wake";
        var other = $"{docker.Prefix}/other";
        var network = await docker.CreateNetworkAsync("wake", ct);
        var mine = await docker.StartContainerAsync(Sleeper(network, Labels(stack)), ct);
        var theirs = new List<string>();

        using var engine = new DockerEngine(docker.DockerHost.ToString());
        using var follow = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var wake = Skiff.Hosting.StackWake.Follow(engine, NullLogger.Instance, follow.Token);
        try
        {
            // The stream is up once an event gets through (it follows from when it connects): another stack's
            // container is started and killed until its exit ends that stack's wait.
            var waitOther = wake.WaitAsync(Skiff.Runtime.ObjectKey.Parse(other), TimeSpan.FromMinutes(5), ct);
            await Eventually.UntilAsync("another stack's exit ends its wait", async () =>
            {
                var id = await docker.StartContainerAsync(Sleeper(network, Labels(other)), ct);
                theirs.Add(id);
                await docker.Client.Containers.KillContainerAsync(id, new ContainerKillParameters(), ct);
                return await Task.WhenAny(waitOther, Task.Delay(TimeSpan.FromSeconds(2), ct)) == waitOther;
            }, woken => woken, Wait);

            // That exit did not end this stack's wait; its own container's exit does, long before the wait's interval.
            var key = Skiff.Runtime.ObjectKey.Parse(stack);
            var waiting = wake.WaitAsync(key, TimeSpan.FromMinutes(5), ct);
            await Task.Delay(200, ct);
            Assert.False(waiting.IsCompleted);
            await docker.Client.Containers.KillContainerAsync(mine, new ContainerKillParameters(), ct);
            Assert.Same(waiting, await Task.WhenAny(waiting, Task.Delay(Wait, ct)));
        }
        finally
        {
            await follow.CancelAsync();
            foreach (var id in theirs.Append(mine))
            {
                await docker.RemoveContainerAsync(id, CancellationToken.None);
            }
        }
    }

    private static Dictionary<string, string> Labels(string stack) =>
        new() { [SkiffLabels.ManagedBy] = SkiffLabels.ManagedByValue, [SkiffLabels.App] = stack };

    private static CreateContainerParameters Sleeper(string network, Dictionary<string, string> labels) => new()
    {
        Image = TestImages.Busybox,
        Cmd = ["sleep", "300"],
        Labels = new Dictionary<string, string>(labels),
        HostConfig = new HostConfig { NetworkMode = network },
    };
}
