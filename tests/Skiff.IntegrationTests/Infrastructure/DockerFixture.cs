using System.Net;
using System.Net.Sockets;
using Docker.DotNet;
using Docker.DotNet.Models;
using Skiff.Docker;

namespace Skiff.IntegrationTests.Infrastructure;

/// <summary>
/// The real Docker engine, shared by the tests of <see cref="DockerCollection"/>.
/// </summary>
/// <remarks>
/// # Guarantees
/// Everything created through the helpers carries the label <c>dev.skiff.test.run=&lt;RunId&gt;</c>
/// and a name starting with <see cref="Prefix"/>; disposing the fixture removes every container,
/// network and volume with that label, and nothing else (other people share the engine).
///
/// # Caveats
/// Objects a test creates with <see cref="Client"/> directly must carry <see cref="Labels"/> to be
/// cleaned up. The test images must exist: build them with scripts/build-test-images.sh.
/// </remarks>
public sealed class DockerFixture : IAsyncLifetime
{
    public const string RunLabel = "dev.skiff.test.run";

    public DockerFixture()
    {
        var host = Environment.GetEnvironmentVariable("DOCKER_HOST");
        DockerHost = new Uri(string.IsNullOrEmpty(host) ? "unix:///var/run/docker.sock" : host);
        Client = new DockerClientBuilder().WithEndpoint(DockerHost).WithTransportOptions(new global::Docker.DotNet.NativeHttp.NativeHttpTransportOptions()).Build();
        RunId = $"{TestRun.Id}-{Guid.NewGuid().ToString("N")[..6]}";
    }

    public Uri DockerHost { get; }

    public DockerClient Client { get; }

    /// <summary>
    /// <see cref="TestRun.Id"/>, a dash and a random part (one per fixture): the value of <see cref="RunLabel"/>
    /// on everything this fixture creates, by which scripts/test.sh also finds what an interrupted run left.
    /// </summary>
    public string RunId { get; }

    /// <summary><c>skifftest-&lt;RunId&gt;</c>: the start of every name this run gives to Docker objects.</summary>
    public string Prefix => $"skifftest-{RunId}";

    /// <summary>A fresh copy of the labels that mark an object as this run's.</summary>
    public Dictionary<string, string> Labels => new() { [RunLabel] = RunId };

    /// <summary>A name unique to this run and to the call: <c>skifftest-&lt;RunId&gt;-&lt;what&gt;-&lt;n&gt;</c>.</summary>
    public string Name(string what) => $"{Prefix}-{what}-{Interlocked.Increment(ref _names)}";

    private int _names;

    public async Task InitializeAsync()
    {
        try
        {
            await Client.System.PingAsync();
        }
        catch (Exception e) when (e is HttpRequestException or SocketException or IOException or DockerApiException or TimeoutException)
        {
            throw new InvalidOperationException(
                $"The Docker engine at {DockerHost} does not answer ({e.Message}). Start it with: sudo scripts/ensure-docker.sh", e);
        }

        var missing = new List<string>();
        foreach (var image in TestImages.All)
        {
            try
            {
                await Client.Images.InspectImageAsync(image);
            }
            catch (DockerImageNotFoundException)
            {
                missing.Add(image);
            }
        }

        if (missing.Count > 0)
        {
            throw new InvalidOperationException(
                $"Test images missing from the Docker engine: {string.Join(", ", missing)}. Build them with: sudo scripts/build-test-images.sh");
        }
    }

    public async Task DisposeAsync()
    {
        await CleanupAsync(CancellationToken.None);
        Client.Dispose();
    }

    /// <summary>Removes every container, network and volume labelled with this run (and only those).</summary>
    public async Task CleanupAsync(CancellationToken ct)
    {
        var filter = new Dictionary<string, IDictionary<string, bool>>
        {
            ["label"] = new Dictionary<string, bool> { [$"{RunLabel}={RunId}"] = true },
        };
        var containers = await Client.Containers.ListContainersAsync(new ContainersListParameters { All = true, Filters = filter }, ct);
        await Task.WhenAll(containers.Select(c => RemoveContainerAsync(c.ID, ct)));
        foreach (var network in await Client.Networks.ListNetworksAsync(new NetworksListParameters { Filters = filter }, ct))
        {
            await IgnoreNotFoundAsync(() => Client.Networks.DeleteNetworkAsync(network.ID, ct));
        }

        var volumes = await Client.Volumes.ListAsync(new VolumesListParameters { Filters = filter }, ct);
        foreach (var volume in volumes.Volumes ?? [])
        {
            await IgnoreNotFoundAsync(() => Client.Volumes.RemoveAsync(volume.Name, force: true, ct));
        }
    }

    /// <summary>Creates a labelled user-defined bridge network; returns its name.</summary>
    public async Task<string> CreateNetworkAsync(string what, CancellationToken ct)
    {
        var name = Name(what);
        await Client.Networks.CreateNetworkAsync(new NetworksCreateParameters { Name = name, Driver = "bridge", Labels = Labels }, ct);
        return name;
    }

    /// <summary>
    /// Creates and starts a container: adds this run's labels, a unique name when none is set, and
    /// <c>Init</c> (containers without an init ignore SIGTERM). Returns the container id.
    /// </summary>
    public async Task<string> StartContainerAsync(CreateContainerParameters parameters, CancellationToken ct)
    {
        var id = await CreateContainerAsync(parameters, ct);
        await Client.Containers.StartContainerAsync(id, new ContainerStartParameters(), ct);
        return id;
    }

    /// <summary>Runs a one-off container to its end (bounded by <paramref name="timeout"/>), returns exit code and logs, and removes it.</summary>
    public async Task<ContainerRun> RunToCompletionAsync(CreateContainerParameters parameters, TimeSpan timeout, CancellationToken ct)
    {
        var id = await CreateContainerAsync(parameters, ct);
        try
        {
            await Client.Containers.StartContainerAsync(id, new ContainerStartParameters(), ct);
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
            deadline.CancelAfter(timeout);
            ContainerWaitResponse exit;
            try
            {
                exit = await Client.Containers.WaitContainerAsync(id, deadline.Token);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                throw new TimeoutException($"{parameters.Image} {string.Join(' ', parameters.Cmd ?? [])} did not exit within {timeout}: {await LogsAsync(id, ct)}");
            }

            return new ContainerRun(exit.StatusCode, await LogsAsync(id, ct));
        }
        finally
        {
            await RemoveContainerAsync(id, CancellationToken.None);
        }
    }

    /// <summary>Runs <c>skiff-test/app:1 migrate</c> on <paramref name="network"/> against <paramref name="databaseUrl"/>.</summary>
    public Task<ContainerRun> RunTestAppMigrateAsync(string network, string databaseUrl, CancellationToken ct) =>
        RunToCompletionAsync(
            new CreateContainerParameters
            {
                Image = TestImages.App1,
                Cmd = ["migrate"],
                Env = [$"DATABASE_URL={databaseUrl}"],
                HostConfig = new HostConfig { NetworkMode = network },
            },
            TimeSpan.FromSeconds(60),
            ct);

    /// <summary>Runs a command in a running container; returns its exit code and output.</summary>
    public async Task<ContainerRun> ExecAsync(string containerId, IList<string> command, CancellationToken ct)
    {
        var exec = await Client.Exec.CreateContainerExecAsync(
            containerId,
            new ContainerExecCreateParameters { Cmd = command, AttachStdout = true, AttachStderr = true },
            ct);
        using var stream = await Client.Exec.StartContainerExecAsync(exec.ID, new ContainerExecStartParameters(), ct);
        var (stdout, stderr) = await stream.ReadOutputToEndAsync(ct);
        return new ContainerRun(await DockerEngine.ExecExitCodeAsync(Client, exec.ID, ct), stdout + stderr);
    }

    /// <summary>A container's logs so far (stdout, then stderr).</summary>
    public async Task<string> LogsAsync(string containerId, CancellationToken ct)
    {
        using var stream = await Client.Containers.GetContainerLogsAsync(
            containerId, new ContainerLogsParameters { ShowStdout = true, ShowStderr = true }, ct);
        var (stdout, stderr) = await stream.ReadOutputToEndAsync(ct);
        return stdout + stderr;
    }

    public async Task RemoveContainerAsync(string id, CancellationToken ct) =>
        await IgnoreNotFoundAsync(() => Client.Containers.RemoveContainerAsync(
            id, new ContainerRemoveParameters { Force = true, RemoveVolumes = true }, ct));

    private const int FirstTestPort = 20000;
    private const int TestPorts = 12000;
    private static int portsGiven = Random.Shared.Next(TestPorts);

    /// <summary>
    /// A TCP port on 127.0.0.1 that is free now and was never given out before in this run (for publishing container
    /// ports and proxy listeners).
    /// </summary>
    /// <remarks>
    /// The ports come from 20000-31999, below the kernel's ephemeral range (32768-60999): the kernel never gives one of
    /// them to a bind(0) or to an outgoing connection, so a port a test was handed cannot be taken by another test's
    /// client between the moment it is handed out and the moment it is bound. The proxy binds with SO_REUSEPORT: a
    /// second listener on the same port would join its group silently rather than fail.
    /// </remarks>
    public static int FreeTcpPort()
    {
        for (var i = 0; i < TestPorts; i++)
        {
            var port = FirstTestPort + (Interlocked.Increment(ref portsGiven) % TestPorts);
            try
            {
                using var listener = new TcpListener(IPAddress.Loopback, port);
                listener.Start();
                return port;
            }
            catch (SocketException)
            {
                // In use (by something outside the tests): the next one.
            }
        }

        throw new InvalidOperationException($"no free TCP port in {FirstTestPort}-{FirstTestPort + TestPorts - 1}");
    }

    /// <summary>How often to retry what starts a container or a process per try (docker exec, docker run): less often than <see cref="Eventually.DefaultInterval"/>.</summary>
    public static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(500);

    private async Task<string> CreateContainerAsync(CreateContainerParameters parameters, CancellationToken ct)
    {
        parameters.Name ??= Name(ShortName(parameters.Image));
        parameters.Labels ??= new Dictionary<string, string>();
        foreach (var (key, value) in Labels)
        {
            parameters.Labels[key] = value;
        }

        parameters.HostConfig ??= new HostConfig();
        parameters.HostConfig.Init ??= true;
        var created = await Client.Containers.CreateContainerAsync(parameters, ct);
        return created.ID;
    }

    /// <summary>"skiff-test/postgres:15" → "postgres".</summary>
    private static string ShortName(string image)
    {
        var last = image[(image.LastIndexOf('/') + 1)..];
        var end = last.IndexOfAny([':', '@']);
        return end < 0 ? last : last[..end];
    }

    private static async Task IgnoreNotFoundAsync(Func<Task> remove)
    {
        try
        {
            await remove();
        }
        catch (DockerApiException e) when (e.StatusCode == HttpStatusCode.NotFound)
        {
        }
    }
}
