using System.Collections.Concurrent;
using Skiff.Reconcile;

namespace Skiff.Tests.Reconcile;

/// <summary>
/// A container engine in memory, for the rollout's transition tables: it keeps Docker's rules that matter to a
/// rollout (names are unique, a published host port has one running holder, create does not pull, an image in use
/// stays), and lets a test move the world (a health check passes, a migration exits, a container crashes).
/// </summary>
public sealed class InMemoryEngine : IContainerEngine
{
    private readonly object gate = new();
    private readonly Dictionary<string, Box> containers = [];
    private readonly Dictionary<string, IReadOnlyDictionary<string, string>> networks = [];
    private readonly Dictionary<string, IReadOnlyDictionary<string, string>> volumes = [];
    private readonly Dictionary<string, string> files = [];
    private readonly TimeProvider time;
    private int next;

    public InMemoryEngine(TimeProvider time)
    {
        this.time = time;
    }

    public string Endpoint => "memory://";

    /// <summary>Images on the engine, by reference.</summary>
    public HashSet<string> Images { get; } = new(StringComparer.Ordinal);

    /// <summary>What the registry answers for a reference: absent = not found; a message = refused.</summary>
    public Dictionary<string, string?> Registry { get; } = new(StringComparer.Ordinal);

    /// <summary>Every call, in order, as <c>operation name</c>.</summary>
    public ConcurrentQueue<string> Calls { get; } = new();

    /// <summary>The engine is down: every call throws <see cref="EngineUnreachableException"/>.</summary>
    public bool Down { get; set; }

    public IReadOnlyList<ObservedContainer> All
    {
        get
        {
            lock (gate)
            {
                return [.. containers.Values.Select(b => b.Observe()).OrderBy(c => c.Name, StringComparer.Ordinal)];
            }
        }
    }

    public ObservedContainer? Find(string name) => All.FirstOrDefault(c => c.Name == name);

    /// <summary>The spec a container was created from.</summary>
    public ContainerSpec SpecOf(string id)
    {
        lock (gate)
        {
            return containers[id].Spec;
        }
    }

    /// <summary>Sets a data container's Docker health (starting, healthy, unhealthy).</summary>
    public void SetHealth(string name, string health) => With(name, b => b.Health = health);

    /// <summary>A container's process ends with <paramref name="code"/> (a migration finishing, an app crashing).</summary>
    public void Exit(string name, long code, bool oomKilled = false) => With(name, b =>
    {
        b.State = "exited";
        b.ExitCode = code;
        b.OomKilled = oomKilled;
    });

    /// <summary>The engine restarts a crashed container (restart policy): one more restart counted.</summary>
    public void Crash(string name) => With(name, b => b.Restarts++);

    /// <summary>A file in a volume, as PG_VERSION in a data volume.</summary>
    public void PutFile(string volume, string path, string text) => files[volume + ":" + path] = text;

    public Task<(string Version, string ApiVersion)> VersionAsync(CancellationToken ct) => Call("version", () => ("memory", "1.41"));

    public Task<IReadOnlyList<ObservedContainer>> ListContainersAsync(IReadOnlyDictionary<string, string> labels, CancellationToken ct) =>
        Call("container_list", () => (IReadOnlyList<ObservedContainer>)[.. All.Where(c => labels.All(l => c.Label(l.Key) == l.Value))]);

    public Task<IReadOnlyList<IReadOnlyDictionary<string, string>>> ListContainerLabelsAsync(IReadOnlyDictionary<string, string> labels, CancellationToken ct) =>
        Call("container_list", () => (IReadOnlyList<IReadOnlyDictionary<string, string>>)[.. All.Where(c => labels.All(l => c.Label(l.Key) == l.Value)).Select(c => c.Labels)]);

    public Task<ObservedContainer?> InspectContainerAsync(string idOrName, CancellationToken ct) =>
        Call("container_inspect", () => All.FirstOrDefault(c => c.Id == idOrName || c.Name == idOrName));

    public Task<string> CreateContainerAsync(ContainerSpec spec, CancellationToken ct) => Call("container_create " + spec.Name, () =>
    {
        lock (gate)
        {
            if (containers.Values.Any(b => b.Spec.Name == spec.Name))
            {
                throw new InvalidOperationException($"Conflict. The container name \"/{spec.Name}\" is already in use");
            }

            if (!Images.Contains(spec.Image))
            {
                throw new InvalidOperationException($"No such image: {spec.Image}");
            }

            var id = "c" + (++next).ToString("D4", System.Globalization.CultureInfo.InvariantCulture);
            containers[id] = new Box(id, spec, time.GetUtcNow());
            return id;
        }
    });

    /// <summary>
    /// Ids of containers the runtime still holds an old task of (after an engine restart; a task has its container's
    /// id): starting them throws <see cref="ContainerStartStuckException"/>, as DockerEngine does once its retries are spent.
    /// </summary>
    public HashSet<string> StuckTasks { get; } = new(StringComparer.Ordinal);

    public Task StartContainerAsync(string id, CancellationToken ct) => Call("container_start " + NameOf(id), () =>
    {
        lock (gate)
        {
            var box = containers[id];
            if (StuckTasks.Contains(id))
            {
                throw new ContainerStartStuckException(id, new InvalidOperationException($"task {id}: already exists"));
            }

            foreach (var port in box.Spec.Ports.Where(p => p.HostPort is not null))
            {
                var holder = containers.Values.FirstOrDefault(b => b != box && b.State == "running"
                    && b.Spec.Ports.Any(q => q.HostPort == port.HostPort && (q.HostIp ?? "0.0.0.0") == (port.HostIp ?? "0.0.0.0")));
                if (holder is not null)
                {
                    throw new InvalidOperationException($"Bind for {port.HostIp ?? "0.0.0.0"}:{port.HostPort} failed: port is already allocated (held by {holder.Spec.Name})");
                }
            }

            box.State = "running";
            box.StartedAt = time.GetUtcNow();
            box.Health = box.Spec.Healthcheck is null ? null : "starting";
            return true;
        }
    });

    public Task StopContainerAsync(string id, TimeSpan timeout, CancellationToken ct) => Call("container_stop " + NameOf(id), () =>
    {
        lock (gate)
        {
            if (containers.TryGetValue(id, out var box) && box.State == "running")
            {
                box.State = "exited";
                box.ExitCode = 143;
            }

            return true;
        }
    });

    public Task RemoveContainerAsync(string id, CancellationToken ct) => Call("container_remove " + NameOf(id), () =>
    {
        lock (gate)
        {
            return containers.Remove(id);
        }
    });

    public Task RenameContainerAsync(string id, string name, CancellationToken ct) => Call("container_rename " + NameOf(id) + " " + name, () =>
    {
        lock (gate)
        {
            if (containers.Values.Any(b => b.Spec.Name == name))
            {
                throw new InvalidOperationException($"Conflict. The container name \"/{name}\" is already in use");
            }

            containers[id].Spec = containers[id].Spec with { Name = name };
            return true;
        }
    });

    /// <summary>What a container's log holds, by container name (the node proxy's upgrade reads it).</summary>
    public Func<string, string> Logs { get; set; } = name => $"log of {name}";

    public Task<string> LogsAsync(string id, int tail, CancellationToken ct) => Call("container_logs", () => Logs(NameOf(id)));

    public Task<string?> ReadFileAsync(string id, string path, CancellationToken ct) => Call("container_archive", () =>
    {
        lock (gate)
        {
            var mount = containers[id].Spec.Mounts.FirstOrDefault(m => path.StartsWith(m.Target, StringComparison.Ordinal));
            return mount is null ? null : files.GetValueOrDefault(mount.Volume + ":" + path[mount.Target.Length..].TrimStart('/'));
        }
    });

    /// <summary>What a command run in a container answers (<see cref="ExecAsync"/>); by default exit 0, no output.</summary>
    public Func<string, IReadOnlyList<string>, ExecResult> Exec { get; set; } = (_, _) => new ExecResult(0, "", "");

    /// <summary>Containers whose health command passes when run by hand before Docker's own check has (it runs every 10 s).</summary>
    public HashSet<string> HealthCommandPasses { get; } = [];

    /// <summary>
    /// Runs <see cref="Exec"/>, except a container's own health command, which answers as its health says (exit 0 only
    /// when it is healthy): tests set health with <see cref="SetHealth"/>, and a probe by hand must agree with it.
    /// </summary>
    public Task<ExecResult> ExecAsync(string id, IReadOnlyList<string> command, CancellationToken ct) =>
        Call("container_exec", () =>
        {
            var box = containers.TryGetValue(id, out var byId) ? byId : containers.Values.FirstOrDefault(b => b.Spec.Name == id);
            if (box?.Spec.Healthcheck is { } check && DesiredStack.HealthCommand(check) is { } health && health.SequenceEqual(command))
            {
                return new ExecResult(box.Health == "healthy" || HealthCommandPasses.Contains(box.Spec.Name) ? 0 : 1, "", "");
            }

            return Exec(id, command);
        });

    public Task<IReadOnlyDictionary<string, string>?> InspectNetworkAsync(string name, CancellationToken ct) =>
        Call("network_inspect", () => networks.GetValueOrDefault(name));

    /// <summary>How many networks the node's network pool has subnets for (null: no limit); one more is <see cref="NetworkPoolExhaustedException"/>.</summary>
    public int? NetworkCapacity { get; set; }

    public Task CreateNetworkAsync(string name, IReadOnlyDictionary<string, string> labels, CancellationToken ct) =>
        Call("network_create " + name, () => networks.ContainsKey(name) || networks.Count < (NetworkCapacity ?? int.MaxValue)
            ? networks.TryAdd(name, labels)
            : throw new NetworkPoolExhaustedException($"no free subnet in the network pool: {networks.Count} of its {NetworkCapacity} subnets are in use (--network-pool, --network-prefix)"));

    public Task RemoveNetworkAsync(string name, CancellationToken ct) => Call("network_remove " + name, () => networks.Remove(name));

    public Task<IReadOnlyList<(string Name, IReadOnlyDictionary<string, string> Labels)>> ListNetworksAsync(IReadOnlyDictionary<string, string> labels, CancellationToken ct) =>
        Call("network_list", () => (IReadOnlyList<(string, IReadOnlyDictionary<string, string>)>)[.. networks
            .Where(n => labels.All(l => n.Value.TryGetValue(l.Key, out var v) && v == l.Value)).Select(n => (n.Key, n.Value))]);

    public Task<IReadOnlyDictionary<string, string>?> InspectVolumeAsync(string name, CancellationToken ct) => Call("volume_inspect", () => volumes.GetValueOrDefault(name));

    public Task<IReadOnlyList<(string Name, IReadOnlyDictionary<string, string> Labels)>> ListVolumesAsync(IReadOnlyDictionary<string, string> labels, CancellationToken ct) =>
        Call("volume_list", () => (IReadOnlyList<(string, IReadOnlyDictionary<string, string>)>)[.. volumes
            .Where(v => labels.All(l => v.Value.TryGetValue(l.Key, out var x) && x == l.Value)).Select(v => (v.Key, v.Value))]);

    public Task CreateVolumeAsync(string name, IReadOnlyDictionary<string, string> labels, CancellationToken ct) =>
        Call("volume_create " + name, () => volumes.TryAdd(name, labels));

    public Task RemoveVolumeAsync(string name, CancellationToken ct) => Call("volume_remove " + name, () => volumes.Remove(name));

    public Task<ObservedImage?> InspectImageAsync(string reference, CancellationToken ct) => Call("image_inspect", () =>
        Images.Contains(reference) ? new ObservedImage("sha256:" + reference, [reference], [], 1000, DateTimeOffset.UnixEpoch, []) : null);

    public Task<long> PullImageAsync(string reference, RegistryAuth? auth, IProgress<PullProgress>? progress, CancellationToken ct) => Call("image_pull " + reference, () =>
    {
        if (!Registry.TryGetValue(reference, out var refusal))
        {
            throw new ImageUnavailableException(reference, $"pulling {reference} failed: manifest unknown", notFound: true);
        }

        if (refusal is not null)
        {
            throw new ImageUnavailableException(reference, $"pulling {reference} failed: {refusal}", notFound: false);
        }

        progress?.Report(new PullProgress(reference, 1000, 1000, 1, 1));
        lock (gate)
        {
            Images.Add(reference);
        }

        return 1000L;
    });

    private string NameOf(string id)
    {
        lock (gate)
        {
            return containers.TryGetValue(id, out var b) ? b.Spec.Name : id;
        }
    }

    private void With(string name, Action<Box> change)
    {
        lock (gate)
        {
            change(containers.Values.Single(b => b.Spec.Name == name));
        }
    }

    private Task<T> Call<T>(string what, Func<T> call)
    {
        if (Down)
        {
            return Task.FromException<T>(new EngineUnreachableException(Endpoint, new IOException("connection refused")));
        }

        Calls.Enqueue(what);
        try
        {
            return Task.FromResult(call());
        }
        catch (Exception e)
        {
            return Task.FromException<T>(e);
        }
    }

    private sealed class Box(string id, ContainerSpec spec, DateTimeOffset created)
    {
        public ContainerSpec Spec { get; set; } = spec;

        public string State { get; set; } = "created";

        public string? Health { get; set; }

        public long ExitCode { get; set; }

        public bool OomKilled { get; set; }

        public long Restarts { get; set; }

        public DateTimeOffset? StartedAt { get; set; }

        public ObservedContainer Observe() => new(
            id, Spec.Name, Spec.Image, "sha256:" + Spec.Image, Spec.Labels, State, Health, ExitCode, Restarts, created, StartedAt,
            new Dictionary<string, string> { [Spec.Network] = "10.0.0." + id[1..].TrimStart('0') })
        {
            OomKilled = OomKilled,
        };
    }
}

/// <summary>The operator's health check in memory: the containers (by name) whose check passes.</summary>
public sealed class InMemoryProbe : IAppProbe
{
    public HashSet<string> Passing { get; } = new(StringComparer.Ordinal);

    public Task<bool> ProbeAsync(ObservedContainer container, int port, string path, CancellationToken ct) =>
        Task.FromResult(Passing.Contains(container.Name));
}

/// <summary>
/// The node proxy's routes table in memory: what the operator wrote, and whether the proxy has applied it yet
/// (<see cref="Applied"/>; it applies at once unless told otherwise).
/// </summary>
public sealed class InMemoryRoutes(TimeProvider time) : IRouteTable
{
    private readonly Dictionary<string, StackRoutes> table = new(StringComparer.Ordinal);

    public bool Applied { get; set; } = true;

    /// <summary>Every write, in order: the stack and the revision its routes go to (none: -1).</summary>
    public List<(string Stack, long Revision)> Writes { get; } = [];

    public StackRoutes Get(string stackKey) => table.GetValueOrDefault(stackKey) ?? StackRoutes.None;

    public Task SetAsync(string stackKey, IReadOnlyList<StackRoute> routes, CancellationToken ct)
    {
        if (routes.Count == 0)
        {
            table.Remove(stackKey);
        }
        else
        {
            table[stackKey] = new StackRoutes(routes, time.GetUtcNow());
        }

        Writes.Add((stackKey, routes.Count == 0 ? -1 : routes[0].Revision));
        return Task.CompletedTask;
    }

    public Task<bool> AppliedAsync(CancellationToken ct) => Task.FromResult(Applied);

    /// <summary>The routes file was lost (or edited by hand).</summary>
    public void Forget(string stackKey) => table.Remove(stackKey);
}
