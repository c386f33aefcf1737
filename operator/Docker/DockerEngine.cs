using System.Diagnostics;
using System.Formats.Tar;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Docker.DotNet;
using Docker.DotNet.Models;
using Docker.DotNet.NativeHttp;
using ContainerSpec = Skiff.Reconcile.ContainerSpec;
using Microsoft.Extensions.Logging;

using Skiff.ImageGC;
using Skiff.Observability;
using Skiff.Reconcile;
using Skiff.Validation;

namespace Skiff.Docker;

/// <summary>What became of removing one image reference.</summary>
public enum ImageRemoval
{
    Removed,

    /// <summary>404: the engine does not know it (removed by someone else).</summary>
    NotFound,

    /// <summary>409: a container uses it, or it has several tags and would need force.</summary>
    Conflict,
}

/// <summary>
/// A thin layer over Docker.DotNet (the maintained fork, Docker.DotNet.Enhanced, on System.Text.Json with source-generated
/// models and pooled keep-alive connections): our own models in and out, every call counted and traced, and
/// transport failures turned into <see cref="EngineUnreachableException"/> so callers can tell
/// "the engine is down" from "the engine said no".
/// </summary>
public sealed class DockerEngine : IContainerEngine, IImageEventSource, IEngineChanges, IDisposable
{
    public static readonly ActivitySource Activity = new("Skiff.Docker");
    private readonly DockerClient client;
    private readonly IDockerMetrics? metrics;
    private readonly SemaphoreSlim networkCreation = new(1, 1);

    public DockerEngine(string? endpoint, IDockerMetrics? metrics = null)
    {
        Endpoint = string.IsNullOrEmpty(endpoint) ? "unix:///var/run/docker.sock" : endpoint;
        // The native transport: SocketsHttpHandler over the socket, so requests reuse pooled keep-alive
        // connections instead of opening one per request.
        client = new DockerClientBuilder()
            .WithEndpoint(new Uri(Endpoint))
            .WithTimeout(TimeSpan.FromSeconds(100))
            .WithTransportOptions(new NativeHttpTransportOptions())
            .Build();
        this.metrics = metrics;
    }

    public string Endpoint { get; }

    public DockerClient Client => client;

    public void Dispose()
    {
        client.Dispose();
        networkCreation.Dispose();
    }

    /// <summary>Engine version and data root; also the cheapest reachability check.</summary>
    public Task<(string Version, string ApiVersion)> VersionAsync(CancellationToken ct) =>
        CallAsync("version", async () =>
        {
            var v = await client.System.GetVersionAsync(ct);
            return (v.Version, v.APIVersion);
        });

    public Task<string> DataRootAsync(CancellationToken ct) =>
        CallAsync("info", async () => (await client.System.GetSystemInfoAsync(ct)).DockerRootDir);

    public Task<IReadOnlyList<ObservedContainer>> ListContainersAsync(IReadOnlyDictionary<string, string> labels, CancellationToken ct) =>
        CallAsync("container_list", async () =>
        {
            var list = await client.Containers.ListContainersAsync(
                new ContainersListParameters { All = true, Filters = LabelFilter(labels) }, ct);
            var result = new System.Collections.Concurrent.ConcurrentBag<ObservedContainer>();
            // A few inspects at a time: each is a round trip on one of the pooled connections, and a node's
            // whole list (the container copy's) can be hundreds of containers.
            await Parallel.ForEachAsync(list, new ParallelOptions { MaxDegreeOfParallelism = 8, CancellationToken = ct }, async (c, token) =>
            {
                try
                {
                    result.Add(ToObserved(await client.Containers.InspectContainerAsync(c.ID, token)));
                }
                catch (DockerContainerNotFoundException)
                {
                    // Removed between list and inspect: it is gone, which is what the next plan will see.
                }
            });

            return (IReadOnlyList<ObservedContainer>)result.OrderBy(c => c.Name, StringComparer.Ordinal).ToList();
        });

    /// <summary>The labels of every container carrying the given labels: one call, no inspect per container.</summary>
    public Task<IReadOnlyList<IReadOnlyDictionary<string, string>>> ListContainerLabelsAsync(IReadOnlyDictionary<string, string> labels, CancellationToken ct) =>
        CallAsync("container_list", async () =>
        {
            var list = await client.Containers.ListContainersAsync(new ContainersListParameters { All = true, Filters = LabelFilter(labels) }, ct);
            return (IReadOnlyList<IReadOnlyDictionary<string, string>>)list
                .Select(c => (IReadOnlyDictionary<string, string>)(c.Labels ?? new Dictionary<string, string>()))
                .ToList();
        });

    public Task<ObservedContainer?> InspectContainerAsync(string idOrName, CancellationToken ct) =>
        CallAsync("container_inspect", async () =>
        {
            try
            {
                return ToObserved(await client.Containers.InspectContainerAsync(idOrName, ct));
            }
            catch (DockerContainerNotFoundException)
            {
                return null;
            }
        });

    public Task<string> CreateContainerAsync(ContainerSpec spec, CancellationToken ct) =>
        CallAsync("container_create", async () =>
        {
            var response = await client.Containers.CreateContainerAsync(ToParameters(spec), ct);
            return response.ID;
        });

    public Task StartContainerAsync(string id, CancellationToken ct) =>
        CallAsync("container_start", async () =>
        {
            for (var attempt = 1; ; attempt++)
            {
                try
                {
                    await client.Containers.StartContainerAsync(id, new ContainerStartParameters(), ct);
                    return true;
                }
                catch (DockerApiException e) when (StaleTask(e))
                {
                    if (attempt >= StaleTaskAttempts)
                    {
                        throw new ContainerStartStuckException(id, e);
                    }

                    await Task.Delay(StaleTaskPause, ct);
                }
            }
        });

    private const int StaleTaskAttempts = 20;

    private static readonly TimeSpan StaleTaskPause = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// The engine's answer to starting a container whose old task containerd still holds ("task ID: already exists"):
    /// right after dockerd restarted, the task of a container its shutdown killed lingers until dockerd's own restore
    /// has removed it, a moment later. Starting is tried again for up to 5 s; a task still there then is one the
    /// restore left behind, and the container is reported stuck (<see cref="ContainerStartStuckException"/>).
    /// </summary>
    internal static bool StaleTask(DockerApiException e) =>
        e.StatusCode == HttpStatusCode.InternalServerError
        && e.ResponseBody is { } body
        && body.Contains("task ", StringComparison.Ordinal)
        && body.Contains("already exists", StringComparison.Ordinal);

    public Task StopContainerAsync(string id, TimeSpan timeout, CancellationToken ct) =>
        CallAsync("container_stop", async () =>
        {
            try
            {
                await client.Containers.StopContainerAsync(id, new ContainerStopParameters { WaitBeforeKillSeconds = (uint)timeout.TotalSeconds }, ct);
            }
            catch (DockerContainerNotFoundException)
            {
            }

            return true;
        });

    public Task RemoveContainerAsync(string id, CancellationToken ct) =>
        CallAsync("container_remove", async () =>
        {
            try
            {
                await client.Containers.RemoveContainerAsync(id, new ContainerRemoveParameters { Force = true, RemoveVolumes = true }, ct);
            }
            catch (DockerContainerNotFoundException)
            {
            }

            return true;
        });

    public Task RenameContainerAsync(string id, string name, CancellationToken ct) =>
        CallAsync("container_rename", async () =>
        {
            await client.Containers.RenameContainerAsync(id, new ContainerRenameParameters { NewName = name }, ct);
            return true;
        });

    /// <summary>The last lines of a container's output (stdout and stderr, interleaved).</summary>
    public Task<string> LogsAsync(string id, int tail, CancellationToken ct) =>
        CallAsync("container_logs", async () =>
        {
            try
            {
                using var stream = await client.Containers.GetContainerLogsAsync(
                    id, new ContainerLogsParameters { ShowStdout = true, ShowStderr = true, Tail = tail.ToString(System.Globalization.CultureInfo.InvariantCulture) }, ct);
                var (stdout, stderr) = await stream.ReadOutputToEndAsync(ct);
                return stdout + stderr;
            }
            catch (DockerContainerNotFoundException)
            {
                return "";
            }
        });

    /// <summary>Reads one small file from a container's filesystem (including its volumes); null when absent.</summary>
    public Task<string?> ReadFileAsync(string id, string path, CancellationToken ct) =>
        CallAsync("container_archive", async () =>
        {
            try
            {
                var archive = await client.Containers.GetArchiveFromContainerAsync(id, new ContainerPathStatParameters { Path = path }, statOnly: false, ct);
                using var tar = new TarReader(archive.Stream ?? Stream.Null);
                while (await tar.GetNextEntryAsync(copyData: true, ct) is { } entry)
                {
                    if (entry.DataStream is { } data)
                    {
                        using var reader = new StreamReader(data, Encoding.UTF8);
                        return await reader.ReadToEndAsync(ct);
                    }
                }

                return null;
            }
            catch (DockerContainerNotFoundException)
            {
                return null;
            }
            catch (DockerApiException e) when (e.StatusCode == HttpStatusCode.NotFound)
            {
                return null;
            }
        });

    public Task<ExecResult> ExecAsync(string id, IReadOnlyList<string> command, CancellationToken ct) =>
        CallAsync("container_exec", async () =>
        {
            var exec = await client.Exec.CreateContainerExecAsync(
                id, new ContainerExecCreateParameters { Cmd = command.ToList(), AttachStdout = true, AttachStderr = true }, ct);
            using var stream = await client.Exec.StartContainerExecAsync(exec.ID, new ContainerExecStartParameters(), ct);
            var (stdout, stderr) = await stream.ReadOutputToEndAsync(ct);
            return new ExecResult(await ExecExitCodeAsync(client, exec.ID, ct), stdout, stderr);
        });

    /// <summary>
    /// The exit code of an exec whose output has ended. The engine records it a moment after the stream closes, so
    /// an answer without one (still running) is asked again for up to a second rather than taken as success.
    /// </summary>
    public static async Task<long> ExecExitCodeAsync(DockerClient client, string execId, CancellationToken ct)
    {
        for (var attempt = 0; ; attempt++)
        {
            var inspect = await client.Exec.InspectContainerExecAsync(execId, ct);
            if (inspect.ExitCode is { } code && inspect.Running != true)
            {
                return code;
            }

            if (attempt == 100)
            {
                throw new IOException($"the engine reports no exit code for exec {execId} a second after its output ended");
            }

            await Task.Delay(10, ct);
        }
    }

    public Task<IReadOnlyDictionary<string, string>?> InspectNetworkAsync(string name, CancellationToken ct) =>
        CallAsync("network_inspect", async () =>
        {
            // The name filter matches substrings: the exact name is picked from the answer.
            var list = await client.Networks.ListNetworksAsync(new NetworksListParameters { Filters = NameFilter(name) }, ct);
            return list.FirstOrDefault(n => n.Name == name) is { } network
                ? (IReadOnlyDictionary<string, string>)(network.Labels ?? new Dictionary<string, string>())
                : null;
        });

    /// <summary>
    /// Creates a bridge network with the first free subnet of <see cref="NetworkPool"/>, recorded on the label
    /// <see cref="SubnetLabel"/>. Free: used by no network of the engine (Skiff's or anyone's) and, for a local engine,
    /// by no route or interface of the host. One creation at a time per engine, so two stacks never pick the same one;
    /// when another client took it meanwhile (Docker: "Pool overlaps"), the next is tried. A network that exists
    /// already (an older Skiff's, on Docker's default pools) is left as it is.
    /// </summary>
    /// <exception cref="NetworkPoolExhaustedException">No subnet of the pool is free.</exception>
    public async Task CreateNetworkAsync(string name, IReadOnlyDictionary<string, string> labels, CancellationToken ct)
    {
        await networkCreation.WaitAsync(ct);
        try
        {
            var refused = new List<IPNetwork>();
            for (var attempt = 1; ; attempt++)
            {
                var networks = await CallAsync("network_list", () => client.Networks.ListNetworksAsync(new NetworksListParameters(), ct));
                if (networks.Any(n => n.Name == name))
                {
                    return;
                }

                var used = networks.SelectMany(Subnets).ToList();
                var taken = used.Concat(LocalEngine ? ReadHostNetworks() : []).Concat(refused).ToList();
                if (NetworkPool.FirstFree(taken) is not { } subnet)
                {
                    throw Exhausted(networks, taken);
                }

                try
                {
                    await CallAsync("network_create", () => client.Networks.CreateNetworkAsync(new NetworksCreateParameters
                    {
                        Name = name,
                        Driver = "bridge",
                        Labels = new Dictionary<string, string>(labels) { [SubnetLabel] = subnet.ToString() },
                        IPAM = new IPAM
                        {
                            Driver = "default",
                            Config = [new IPAMConfig { Subnet = subnet.ToString(), Gateway = NetworkPool.Gateway(subnet).ToString() }],
                        },
                    }, ct));
                    return;
                }
                catch (DockerApiException e) when (e.StatusCode == HttpStatusCode.Conflict && !Overlapping(e))
                {
                    // Created meanwhile (by an earlier, interrupted reconcile, or another client): what we wanted.
                    return;
                }
                catch (DockerApiException e) when (Overlapping(e) && attempt < 10)
                {
                    // Another client (another engine user, a network Docker does not list yet) took it between list and create.
                    refused.Add(subnet);
                }
            }
        }
        finally
        {
            networkCreation.Release();
        }
    }

    /// <summary>The label on a stack network that records the subnet Skiff gave it.</summary>
    public const string SubnetLabel = "dev.skiff.subnet";

    /// <summary>The pool stack networks get their subnets from (<c>--network-pool</c>, <c>--network-prefix</c>).</summary>
    public NetworkPool NetworkPool { get; init; } = NetworkPool.Default;

    /// <summary>The networks the host itself uses (routes, interfaces), for a local engine; a test can replace it.</summary>
    public Func<IReadOnlyList<IPNetwork>> ReadHostNetworks { get; init; } = HostNetworks.Read;

    /// <summary>The engine runs on this host (a unix socket or a named pipe), so the host's routes are its too.</summary>
    private bool LocalEngine => Endpoint.StartsWith("unix://", StringComparison.Ordinal) || Endpoint.StartsWith("npipe://", StringComparison.Ordinal);

    private static IEnumerable<IPNetwork> Subnets(NetworkResponse network) =>
        (network.IPAM?.Config ?? []).Select(c => NetworkPool.TryParseNetwork(c.Subnet, out var subnet) ? subnet : (IPNetwork?)null).OfType<IPNetwork>();

    private NetworkPoolExhaustedException Exhausted(IList<NetworkResponse> networks, IReadOnlyList<IPNetwork> taken)
    {
        string N(long n) => n.ToString(CultureInfo.InvariantCulture);
        var byStacks = NetworkPool.CountTaken(networks
            .Where(n => n.Labels is { } l && l.TryGetValue(SkiffLabels.ManagedBy, out var by) && by == SkiffLabels.ManagedByValue)
            .SelectMany(Subnets));
        var inUse = NetworkPool.CountTaken(taken);
        var longer = NetworkPool.Prefix < NetworkPool.LongestPrefix ? $" or a longer --network-prefix (up to {N(NetworkPool.LongestPrefix)})" : "";
        return new NetworkPoolExhaustedException(
            $"no free subnet in the network pool: {N(inUse)} of its {N(NetworkPool.Count)} /{N(NetworkPool.Prefix)} subnets " +
            $"(--network-pool {NetworkPool.Pool} --network-prefix {N(NetworkPool.Prefix)}) are in use, {N(byStacks)} by Skiff stack networks and " +
            $"{N(inUse - byStacks)} by other Docker networks or the host's routes; start skiff run with a larger --network-pool{longer}, " +
            "or remove stacks or Docker networks no longer used (Skiff tries again by itself)");
    }

    /// <summary>Docker refused the subnet because another network has it ("Pool overlaps with other one on this address space").</summary>
    private static bool Overlapping(DockerApiException e) =>
        e.ResponseBody?.Contains("overlap", StringComparison.OrdinalIgnoreCase) == true;

    public Task RemoveNetworkAsync(string name, CancellationToken ct) =>
        CallAsync("network_remove", async () =>
        {
            try
            {
                await client.Networks.DeleteNetworkAsync(name, ct);
            }
            catch (DockerNetworkNotFoundException)
            {
            }
            catch (DockerApiException e) when (e.StatusCode == HttpStatusCode.NotFound)
            {
            }

            return true;
        });

    /// <summary>Names of the networks carrying all the given labels.</summary>
    public Task<IReadOnlyList<(string Name, IReadOnlyDictionary<string, string> Labels)>> ListNetworksAsync(IReadOnlyDictionary<string, string> labels, CancellationToken ct) =>
        CallAsync("network_list", async () =>
        {
            var list = await client.Networks.ListNetworksAsync(new NetworksListParameters { Filters = LabelFilter(labels) }, ct);
            return (IReadOnlyList<(string, IReadOnlyDictionary<string, string>)>)list
                .Select(n => (n.Name, (IReadOnlyDictionary<string, string>)(n.Labels ?? new Dictionary<string, string>())))
                .ToList();
        });

    /// <summary>The volume's labels, or null when it does not exist.</summary>
    public Task<IReadOnlyDictionary<string, string>?> InspectVolumeAsync(string name, CancellationToken ct) =>
        CallAsync("volume_inspect", async () =>
        {
            try
            {
                var v = await client.Volumes.InspectAsync(name, ct);
                return (IReadOnlyDictionary<string, string>?)(v.Labels ?? new Dictionary<string, string>());
            }
            catch (DockerApiException e) when (e.StatusCode == HttpStatusCode.NotFound)
            {
                return null;
            }
        });

    public Task<IReadOnlyList<(string Name, IReadOnlyDictionary<string, string> Labels)>> ListVolumesAsync(IReadOnlyDictionary<string, string> labels, CancellationToken ct) =>
        CallAsync("volume_list", async () =>
        {
            var list = await client.Volumes.ListAsync(new VolumesListParameters { Filters = LabelFilter(labels) }, ct);
            return (IReadOnlyList<(string, IReadOnlyDictionary<string, string>)>)(list.Volumes ?? [])
                .Select(v => (v.Name, (IReadOnlyDictionary<string, string>)(v.Labels ?? new Dictionary<string, string>())))
                .ToList();
        });

    public Task CreateVolumeAsync(string name, IReadOnlyDictionary<string, string> labels, CancellationToken ct) =>
        CallAsync("volume_create", async () =>
        {
            await client.Volumes.CreateAsync(new VolumesCreateParameters { Name = name, Labels = new Dictionary<string, string>(labels) }, ct);
            return true;
        });

    public Task RemoveVolumeAsync(string name, CancellationToken ct) =>
        CallAsync("volume_remove", async () =>
        {
            try
            {
                await client.Volumes.RemoveAsync(name, force: false, ct);
            }
            catch (DockerApiException e) when (e.StatusCode == HttpStatusCode.NotFound)
            {
            }

            return true;
        });

    public Task<ObservedImage?> InspectImageAsync(string reference, CancellationToken ct) =>
        CallAsync("image_inspect", async () =>
        {
            try
            {
                var i = await client.Images.InspectImageAsync(reference, ct);
                return new ObservedImage(
                    i.ID,
                    (IReadOnlyList<string>?)i.RepoTags?.ToList() ?? [],
                    (IReadOnlyList<string>?)i.RepoDigests?.ToList() ?? [],
                    i.Size,
                    i.Created is { } created ? new DateTimeOffset(DateTime.SpecifyKind(created, DateTimeKind.Utc)) : DateTimeOffset.UnixEpoch,
                    (IReadOnlyList<string>?)i.Config?.Env?.ToList() ?? []);
            }
            catch (DockerImageNotFoundException)
            {
                return null;
            }
            catch (DockerApiException e) when (e.StatusCode == HttpStatusCode.NotFound)
            {
                return null;
            }
        });

    /// <summary>
    /// Pulls an image, reporting progress as it goes; a registry error (in the HTTP answer or in the progress
    /// stream) becomes an <see cref="ImageUnavailableException"/> saying whether the image does not exist.
    /// Returns the bytes downloaded.
    /// </summary>
    public Task<long> PullImageAsync(string reference, RegistryAuth? auth, IProgress<PullProgress>? progress, CancellationToken ct) =>
        CallAsync("image_pull", async () =>
        {
            var (repository, tag) = ImageReference.SplitForPull(reference);
            string? error = null;
            var layers = new PullLayers(reference);
            // Inline, not Progress<T>: that one posts to the thread pool, so an error message could arrive
            // after the pull returned and a failed pull pass for a good one.
            var messages = new InlineProgress<JSONMessage>(m =>
            {
                if (m.Error is { } e)
                {
                    error ??= e.Message;
                }
                else if (layers.Update(m.ID, m.Status, m.Progress?.Current, m.Progress?.Total))
                {
                    progress?.Report(layers.Snapshot());
                }
            });
            var authConfig = auth is null ? new AuthConfig() : new AuthConfig
            {
                Username = auth.Username,
                Password = auth.Password,
                Auth = auth.Auth,
                ServerAddress = auth.ServerAddress,
                IdentityToken = auth.IdentityToken,
            };
            try
            {
                await client.Images.CreateImageAsync(new ImagesCreateParameters { FromImage = repository, Tag = tag }, authConfig, messages, ct);
            }
            catch (DockerApiException e) when (!GoingAway(e))
            {
                var answer = Short(e.ResponseBody) ?? e.Message;
                throw new ImageUnavailableException(reference, $"pulling {reference} failed: {answer}",
                    e.StatusCode == HttpStatusCode.NotFound || ImageUnavailableException.SaysNotFound(answer));
            }

            if (error is not null)
            {
                throw new ImageUnavailableException(reference, $"pulling {reference} failed: {error}", ImageUnavailableException.SaysNotFound(error));
            }

            return layers.Snapshot().Done;
        });

    /// <summary>Adds up the per-layer progress messages of a pull, as <c>docker pull</c> draws them.</summary>
    private sealed class PullLayers(string image)
    {
        private readonly Dictionary<string, (long Done, long Total, bool Complete)> layers = new(StringComparer.Ordinal);

        public bool Update(string? id, string? status, long? current, long? total)
        {
            if (string.IsNullOrEmpty(id) || string.IsNullOrEmpty(status) || id == image || status.StartsWith("Pulling from", StringComparison.Ordinal))
            {
                return false;
            }

            var layer = layers.GetValueOrDefault(id);
            switch (status)
            {
                case "Downloading" when total is > 0:
                    layer = (current ?? 0, total.Value, false);
                    break;
                case "Verifying Checksum" or "Download complete" or "Extracting" or "Pull complete":
                    layer = (layer.Total, layer.Total, true);
                    break;
                case "Already exists":
                    layer = (0, 0, true);
                    break;
                default:
                    // "Pulling fs layer", "Waiting": a layer to come.
                    break;
            }

            var changed = !layers.TryGetValue(id, out var before) || before != layer;
            layers[id] = layer;
            return changed;
        }

        public PullProgress Snapshot() => new(
            image,
            layers.Values.Sum(l => l.Done),
            layers.Values.Sum(l => l.Total),
            layers.Count,
            layers.Values.Count(l => l.Complete));
    }

    /// <summary>Every image on the engine, with tags, digests, size and build time (for image GC).</summary>
    public Task<IReadOnlyList<ObservedImage>> ListImagesAsync(CancellationToken ct) =>
        CallAsync("image_list", async () =>
        {
            var list = await client.Images.ListImagesAsync(new ImagesListParameters { All = false }, ct);
            return (IReadOnlyList<ObservedImage>)list.Select(i => new ObservedImage(
                i.ID,
                (IReadOnlyList<string>?)i.RepoTags?.Where(t => t != "<none>:<none>").ToList() ?? [],
                (IReadOnlyList<string>?)i.RepoDigests?.Where(d => d != "<none>@<none>").ToList() ?? [],
                i.Size,
                i.Created is { } created ? new DateTimeOffset(DateTime.SpecifyKind(created, DateTimeKind.Utc)) : DateTimeOffset.UnixEpoch,
                [])).ToList();
        });

    /// <summary>Every container on the engine, running or not, whoever made it: the image id each one pins.</summary>
    public Task<IReadOnlyList<(string Id, string ImageId, bool Running)>> ListAllContainerImagesAsync(CancellationToken ct) =>
        CallAsync("container_list", async () =>
        {
            var list = await client.Containers.ListContainersAsync(new ContainersListParameters { All = true }, ct);
            return (IReadOnlyList<(string, string, bool)>)list
                .Select(c => (c.ID, c.ImageID, c.State is "running" or "restarting" or "paused"))
                .ToList();
        });

    /// <summary>
    /// Removes one image reference (a tag, or an id) WITHOUT force: the engine answers 409 when a
    /// container uses the image, and that refusal is the last line of defence for image GC. Untagged
    /// parents are pruned as <c>docker rmi</c> does.
    /// </summary>
    public Task<(ImageRemoval Outcome, string? Message)> RemoveImageAsync(string reference, CancellationToken ct) =>
        CallAsync("image_remove", async () =>
        {
            try
            {
                await client.Images.DeleteImageAsync(reference, new ImageDeleteParameters { Force = false, NoPrune = false }, ct);
                return (ImageRemoval.Removed, (string?)null);
            }
            catch (DockerImageNotFoundException e)
            {
                return (ImageRemoval.NotFound, Short(e.ResponseBody));
            }
            catch (DockerApiException e) when (e.StatusCode == HttpStatusCode.NotFound)
            {
                return (ImageRemoval.NotFound, Short(e.ResponseBody));
            }
            catch (DockerApiException e) when (e.StatusCode == HttpStatusCode.Conflict)
            {
                return (ImageRemoval.Conflict, Short(e.ResponseBody));
            }
        });

    /// <summary>
    /// Removes the build cache not used by a running build (<c>POST /build/prune</c>, which
    /// Docker.DotNet does not wrap); returns the bytes the engine says it reclaimed.
    /// </summary>
    public Task<long> PruneBuildCacheAsync(CancellationToken ct) =>
        CallAsync("build_prune", async () =>
        {
            using var http = RawHttp();
            using var response = await http.PostAsync(new Uri("http://docker/build/prune"), null, ct);
            var body = await response.Content.ReadAsStringAsync(ct);
            if (!response.IsSuccessStatusCode)
            {
                throw new DockerApiException(response.StatusCode, body);
            }

            using var json = System.Text.Json.JsonDocument.Parse(body);
            return json.RootElement.TryGetProperty("SpaceReclaimed", out var reclaimed) && reclaimed.TryGetInt64(out var bytes) ? bytes : 0L;
        });

    /// <summary>
    /// Streams the engine's events matching <paramref name="filters"/> (e.g. type=image, type=container)
    /// until <paramref name="ct"/> is cancelled or the connection drops (then it throws
    /// <see cref="EngineUnreachableException"/>, and the caller reconnects).
    /// </summary>
    public Task MonitorEventsAsync(IReadOnlyDictionary<string, string[]> filters, Action<EngineEvent> onEvent, CancellationToken ct) =>
        MonitorEventsAsync(filters, onEvent, ct, since: null);

    private async Task MonitorEventsAsync(IReadOnlyDictionary<string, string[]> filters, Action<EngineEvent> onEvent, CancellationToken ct, string? since)
    {
        var parameters = new ContainerEventsParameters
        {
            Filters = filters.ToDictionary(kv => kv.Key, kv => (IDictionary<string, bool>)kv.Value.ToDictionary(v => v, _ => true)),
            Since = since,
        };
        try
        {
            // A synchronous IProgress: Progress<T> would post to the thread pool and reorder events.
            await client.System.MonitorEventsAsync(parameters, new InlineProgress<Message>(m => onEvent(FromMessage(m))), ct);
        }
        catch (OperationCanceledException)
        {
            throw;
        }
        catch (Exception e) when (IsTransport(e))
        {
            metrics?.Request("events", "unreachable");
            throw new EngineUnreachableException(Endpoint, e);
        }
    }

    public Task<DateTimeOffset> EngineTimeAsync(CancellationToken ct) =>
        CallAsync("info", async () =>
        {
            var info = await client.System.GetSystemInfoAsync(ct);
            return DateTimeOffset.TryParse(info.SystemTime, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t) ? t : DateTimeOffset.UtcNow;
        });

    public Task WatchChangesAsync(DateTimeOffset since, Action<EngineChange> onChange, CancellationToken ct)
    {
        var filters = new Dictionary<string, string[]>
        {
            ["type"] = [EngineChange.Container, EngineChange.Network, EngineChange.Volume],
            // What changes a container's inspect, and a network's or volume's existence; not the exec events a health
            // check makes every few seconds. No label filter: Docker matches it against an event's attributes, and
            // network and volume events carry none of their labels; containers are matched on their labels here.
            ["event"] = ["create", "start", "restart", "die", "oom", "pause", "unpause", "rename", "update", "destroy", "health_status"],
        };
        var from = (since.ToUnixTimeMilliseconds() / 1000.0).ToString("0.000", CultureInfo.InvariantCulture);
        return MonitorEventsAsync(filters, e =>
        {
            switch (e.Type)
            {
                case EngineChange.Container when e.Attributes.GetValueOrDefault(SkiffLabels.ManagedBy) == SkiffLabels.ManagedByValue:
                    onChange(new EngineChange(EngineChange.Container, e.ActorId, e.Action, e.Attributes.GetValueOrDefault(SkiffLabels.App)));
                    break;
                case EngineChange.Network:
                    // A network event's actor is the network's id; Skiff knows networks by name.
                    onChange(new EngineChange(EngineChange.Network, e.Attributes.GetValueOrDefault("name") ?? e.ActorId, e.Action, null));
                    break;
                case EngineChange.Volume:
                    onChange(new EngineChange(EngineChange.Volume, e.ActorId, e.Action, null));
                    break;
            }
        }, ct, from);
    }

    /// <summary>
    /// The image an event is about: a container event's by inspecting the container (the image id it was created
    /// from), an image event's by its actor (an id already, or a reference to inspect); null when it is gone again.
    /// </summary>
    public async Task<string?> ResolveImageIdAsync(EngineEvent e, CancellationToken ct)
    {
        try
        {
            if (e.Type == "container")
            {
                return (await InspectContainerAsync(e.ActorId, ct))?.ImageId
                    ?? (e.Attributes.TryGetValue("image", out var image) ? (await InspectImageAsync(image, ct))?.Id : null);
            }

            return ImageReference.LooksLikeId(e.ActorId) ? ImageReference.NormalizeId(e.ActorId) : (await InspectImageAsync(e.ActorId, ct))?.Id;
        }
        catch (DockerApiException)
        {
            return null; // gone again already: nothing to record
        }
    }

    private static EngineEvent FromMessage(Message m)
    {
        var time = m.TimeNano is > 0 and { } nano ? DateTimeOffset.FromUnixTimeMilliseconds(nano / 1_000_000) : DateTimeOffset.FromUnixTimeSeconds(m.Time ?? 0);
        return new EngineEvent(
            m.Type ?? "",
            m.Action ?? "",
            m.Actor?.ID ?? "",
            (IReadOnlyDictionary<string, string>?)m.Actor?.Attributes ?? new Dictionary<string, string>(),
            time);
    }

    /// <summary>An HttpClient speaking to the engine's endpoint directly, for the few calls Docker.DotNet lacks.</summary>
    private HttpClient RawHttp()
    {
        var uri = new Uri(Endpoint);
        var handler = new SocketsHttpHandler();
        if (uri.Scheme == "unix")
        {
            var socketPath = uri.LocalPath;
            handler.ConnectCallback = async (_, token) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), token);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            };
            return new HttpClient(handler) { Timeout = TimeSpan.FromMinutes(5) };
        }

        var baseUri = new UriBuilder(uri) { Scheme = uri.Scheme == "tcp" ? "http" : uri.Scheme }.Uri;
        handler.ConnectCallback = async (_, token) =>
        {
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(baseUri.Host, baseUri.Port, token);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        };
        return new HttpClient(handler) { Timeout = TimeSpan.FromMinutes(5) };
    }

    /// <summary>The engine's error text: the <c>message</c> of its JSON error body, else the body itself.</summary>
    private static string? Short(string? body)
    {
        if (string.IsNullOrWhiteSpace(body))
        {
            return null;
        }

        try
        {
            if (System.Text.Json.Nodes.JsonNode.Parse(body) is System.Text.Json.Nodes.JsonObject o
                && o["message"] is System.Text.Json.Nodes.JsonValue v && v.TryGetValue<string>(out var message))
            {
                return message.Trim();
            }
        }
        catch (System.Text.Json.JsonException)
        {
        }

        return body.Trim();
    }

    private async Task<T> CallAsync<T>(string operation, Func<Task<T>> call)
    {
        using var activity = Activity.StartActivity("docker " + operation);
        try
        {
            var result = await call();
            metrics?.Request(operation, "success");
            return result;
        }
        catch (DockerApiException e) when (GoingAway(e))
        {
            metrics?.Request(operation, "unreachable");
            throw new EngineUnreachableException(Endpoint, e);
        }
        catch (DockerApiException)
        {
            metrics?.Request(operation, "error");
            throw;
        }
        catch (Exception e) when (e is ImageUnavailableException or ContainerStartStuckException)
        {
            metrics?.Request(operation, "error");
            throw;
        }
        catch (OperationCanceledException)
        {
            throw;
        }
        catch (Exception e) when (IsTransport(e))
        {
            metrics?.Request(operation, "unreachable");
            throw new EngineUnreachableException(Endpoint, e);
        }
    }

    /// <summary>
    /// A 5xx that says the engine itself is stopping or has lost containerd (dockerd still answers for a moment
    /// while it shuts down): the engine is unavailable, as when the socket refuses, not this request wrong.
    /// </summary>
    internal static bool GoingAway(DockerApiException e) =>
        (int)e.StatusCode >= 500
        && e.ResponseBody is { } body
        && (body.Contains("transport is closing", StringComparison.OrdinalIgnoreCase)
            || body.Contains("client connection is closing", StringComparison.OrdinalIgnoreCase)
            || body.Contains("containerd.sock", StringComparison.OrdinalIgnoreCase)
            || body.Contains("daemon is shutting down", StringComparison.OrdinalIgnoreCase)

            // Its stores closed (bolt's "database not open"), answered on a kept-alive connection while it stops.
            || body.Contains("database not open", StringComparison.OrdinalIgnoreCase));

    private static bool IsTransport(Exception e) =>
        e is HttpRequestException or SocketException or IOException or TimeoutException
        || (e.InnerException is { } inner && IsTransport(inner));

    private static Dictionary<string, IDictionary<string, bool>> LabelFilter(IReadOnlyDictionary<string, string> labels) =>
        new() { ["label"] = labels.ToDictionary(kv => $"{kv.Key}={kv.Value}", _ => true) };

    private static Dictionary<string, IDictionary<string, bool>> NameFilter(string name) =>
        new() { ["name"] = new Dictionary<string, bool> { [name] = true } };

    private static ObservedContainer ToObserved(ContainerInspectResponse c)
    {
        var ips = new Dictionary<string, string>();
        if (c.NetworkSettings?.Networks is { } nets)
        {
            foreach (var (name, endpoint) in nets)
            {
                if (!string.IsNullOrEmpty(endpoint.IPAddress))
                {
                    ips[name] = endpoint.IPAddress;
                }
            }
        }

        DateTimeOffset? started = DateTimeOffset.TryParse(c.State?.StartedAt, out var s) && s.Year > 1 ? s : null;
        return new ObservedContainer(
            c.ID,
            c.Name.TrimStart('/'),
            c.Config?.Image ?? "",
            c.Image,
            (IReadOnlyDictionary<string, string>?)c.Config?.Labels ?? new Dictionary<string, string>(),
            c.State?.Status ?? "unknown",
            c.State?.Health?.Status is { Length: > 0 } h && h != "none" ? h : null,
            c.State?.ExitCode ?? 0,
            c.RestartCount,
            new DateTimeOffset(DateTime.SpecifyKind(c.Created, DateTimeKind.Utc)),
            started,
            ips)
        {
            OomKilled = c.State?.OOMKilled ?? false,
        };
    }

    private static CreateContainerParameters ToParameters(ContainerSpec spec)
    {
        var exposed = new Dictionary<string, EmptyStruct>();
        var bindings = new Dictionary<string, IList<global::Docker.DotNet.Models.PortBinding>>();
        foreach (var p in spec.Ports)
        {
            var key = $"{p.ContainerPort}/tcp";
            exposed[key] = default;
            if (p.HostPort is { } hostPort)
            {
                if (!bindings.TryGetValue(key, out var list))
                {
                    bindings[key] = list = [];
                }

                list.Add(new global::Docker.DotNet.Models.PortBinding { HostIP = p.HostIp ?? "0.0.0.0", HostPort = hostPort.ToString(System.Globalization.CultureInfo.InvariantCulture) });
            }
        }

        return new CreateContainerParameters
        {
            Name = spec.Name,
            Image = spec.Image,
            Entrypoint = spec.Entrypoint?.ToList(),
            Cmd = spec.Cmd?.ToList(),
            Env = spec.Env.ToList(),
            Labels = new Dictionary<string, string>(spec.Labels),
            ExposedPorts = exposed,
            StopSignal = spec.StopSignal,
            StopTimeout = spec.StopTimeout,
            Healthcheck = spec.Healthcheck is { } hc
                ? new HealthcheckConfig
                {
                    Test = hc.Test.ToList(),
                    Interval = hc.Interval,
                    Timeout = hc.Timeout,
                    Retries = hc.Retries,
                    StartPeriod = hc.StartPeriod,
                }
                : null,
            HostConfig = new HostConfig
            {
                Init = true,
                SecurityOpt = ["no-new-privileges"],
                RestartPolicy = new RestartPolicy
                {
                    Name = spec.RestartPolicy == "no" ? RestartPolicyKind.No : RestartPolicyKind.UnlessStopped,
                },
                Memory = spec.MemoryBytes ?? 0,
                NanoCPUs = spec.NanoCpus ?? 0,
                LogConfig = new LogConfig
                {
                    Type = "json-file",
                    Config = new Dictionary<string, string> { ["max-size"] = "10m", ["max-file"] = "3" },
                },
                PortBindings = bindings,
                NetworkMode = spec.Network,
                Mounts = spec.Mounts.Select(m => new Mount { Type = m.Bind ? "bind" : "volume", Source = m.Volume, Target = m.Target, ReadOnly = m.ReadOnly }).ToList(),
            },
            NetworkingConfig = new NetworkingConfig
            {
                EndpointsConfig = new Dictionary<string, EndpointSettings>
                {
                    // Aliases exist only on user-defined networks (not on "host", where the node proxy runs).
                    [spec.Network] = new EndpointSettings { Aliases = spec.NetworkAliases.Count == 0 ? null : spec.NetworkAliases.ToList() },
                },
            },
        };
    }
}
