using System.Globalization;
using System.Text.Json.Serialization;
using Skiff.Api;
using Skiff.Validation;

namespace Skiff.Reconcile;

/// <summary>A database or cache container the stack wants, with the volume behind it.</summary>
/// <param name="Component">database or cache.</param>
/// <param name="Container">The container to run.</param>
/// <param name="ConfigHash">Hash of the component's spec: a change recreates the container (the volume stays).</param>
/// <param name="Volume">The data volume, or null for a cache without persistence.</param>
/// <param name="Adopted">The volume was adopted through database.volume: used, never created or deleted.</param>
/// <param name="PostgresMajor">For PostgreSQL: the image's major version, for the PG_VERSION guard.</param>
public sealed record DataComponent(string Component, ContainerSpec Container, string ConfigHash, string? Volume, bool Adopted, string? PostgresMajor);

/// <summary>
/// Everything the stack should be, computed purely from the resource, its resolved inputs and the
/// context. The planner compares it with what the engine shows.
/// </summary>
public sealed class DesiredStack
{
    private readonly ResolvedInputs inputs;

    private DesiredStack(AppDeployment resource, AppDeploymentSpec spec, ResolvedInputs inputs, StackContext context)
    {
        this.inputs = inputs;
        Resource = resource;
        Spec = spec;
        Context = context;
        Names = new StackNames(resource.Metadata.NamespaceProperty ?? "default", resource.Metadata.Name);
        Hash = SpecHash.Compute(spec) + RolloutRequests.HashSuffix(resource);
    }

    public AppDeployment Resource { get; }

    /// <summary>The defaulted spec.</summary>
    public AppDeploymentSpec Spec { get; }

    public StackContext Context { get; }

    public StackNames Names { get; }

    public string Hash { get; }

    public DataComponent? Database { get; private set; }

    public DataComponent? Cache { get; private set; }

    public string Image => Spec.App.Image;

    public string PullPolicy => Spec.App.ImagePullPolicy!;

    /// <summary>The imagePullSecret's login for the image's registry, if it has one: it applies to every image of the stack.</summary>
    public RegistryAuth? PullAuthFor(string image) => inputs.PullAuths.GetValueOrDefault(ImageReference.Registry(image));

    /// <summary>The app has ports published on the node.</summary>
    public bool HasHostPorts => Spec.App.Ports?.Any(p => p.HostPort is not null) == true;

    /// <summary>The app has ports served by domain on the node's shared HTTP and HTTPS ports (only through the node proxy).</summary>
    public bool HasDomains => Spec.App.Ports?.Any(p => p.Domains is { Count: > 0 }) == true;

    /// <summary>The node proxy publishes the app's host ports and domains and routes them to the live revision (DESIGN §7).</summary>
    public bool Proxied => Context.Proxy && (HasHostPorts || HasDomains);

    /// <summary>
    /// Without the node proxy, an app that publishes a host port is replaced stop-first: Docker cannot move a published
    /// port between running containers. With it, every rollout is start-first.
    /// </summary>
    public bool StopFirst => HasHostPorts && !Proxied;

    /// <summary>Who publishes the app's host ports (<see cref="SkiffLabels.Routing"/>), or null without host ports.</summary>
    public string? Routing => Proxied ? SkiffLabels.RoutingProxy : HasHostPorts ? SkiffLabels.RoutingDirect : null;

    /// <summary>Whether an app container publishes its ports the way this spec wants (a container without the label published them itself).</summary>
    public bool RoutedAsWanted(ObservedContainer app) =>
        Routing is null || (app.Label(SkiffLabels.Routing) ?? SkiffLabels.RoutingDirect) == Routing;

    /// <summary>How long an old revision drains after the route switched away from it (rollout.drainSeconds).</summary>
    public TimeSpan Drain => TimeSpan.FromSeconds(Spec.Rollout?.DrainSeconds ?? Defaults.DrainSeconds);

    /// <summary>
    /// The proxy routes of the stack's host ports to an app container, or null while the container has no address on
    /// the stack network yet.
    /// </summary>
    public IReadOnlyList<StackRoute>? RoutesTo(ObservedContainer app)
    {
        if (!app.NetworkIps.TryGetValue(Names.Network, out var ip) || string.IsNullOrEmpty(ip) || app.Revision is not { } revision)
        {
            return null;
        }

        var host = ip.Contains(':', StringComparison.Ordinal) ? $"[{ip}]" : ip;
        var ports = Spec.App.Ports ?? [];
        var published = ports.Where(p => p.HostPort is not null).Select(p =>
        {
            var bind = p.HostIP ?? "0.0.0.0";
            bind = bind.Contains(':', StringComparison.Ordinal) ? $"[{bind}]" : bind;
            return new StackRoute(
                $"{bind}:{p.HostPort!.Value.ToString(CultureInfo.InvariantCulture)}",
                p.Protocol ?? Defaults.PortProtocol,
                p.Name ?? p.ContainerPort.ToString(CultureInfo.InvariantCulture),
                revision,
                $"{host}:{p.ContainerPort.ToString(CultureInfo.InvariantCulture)}");
        });

        // Domains switch with the host ports, in the same route switch: start-first, then the old revision drains.
        var byDomain = ports.SelectMany(p => (p.Domains ?? []).Select(domain => new StackRoute(
            "",
            PortProtocols.Http,
            p.Name ?? p.ContainerPort.ToString(CultureInfo.InvariantCulture),
            revision,
            $"{host}:{p.ContainerPort.ToString(CultureInfo.InvariantCulture)}",
            domain,
            p.Tls ?? Defaults.PortTls)));
        return [.. published, .. byDomain];
    }

    public TimeSpan ProgressDeadline => TimeSpan.FromSeconds(Spec.Rollout!.ProgressDeadlineSeconds!.Value);

    public TimeSpan MinReady => TimeSpan.FromSeconds(Spec.Rollout!.MinReadySeconds!.Value);

    public bool AutoRollback => Spec.Rollout!.AutoRollback!.Value;

    public int RevisionHistoryLimit => Spec.Rollout!.RevisionHistoryLimit!.Value;

    public TimeSpan MigrationTimeout => TimeSpan.FromSeconds(Spec.App.Migrate?.TimeoutSeconds ?? Defaults.MigrateTimeoutSeconds);

    /// <summary>The container port and path the operator probes, or null without a health check.</summary>
    public (int Port, string Path, TimeSpan Period, int FailureThreshold)? Health
    {
        get
        {
            if (HealthTarget(Spec) is not { } target)
            {
                return null;
            }

            var hc = Spec.App.HealthCheck!;
            return (target.Port, target.Path, TimeSpan.FromSeconds(hc.PeriodSeconds!.Value), hc.FailureThreshold!.Value);
        }
    }

    /// <summary>The container port (a named port resolved; 0 when unknown) and path of a defaulted spec's health check, or null.</summary>
    public static (int Port, string Path)? HealthTarget(AppDeploymentSpec spec)
    {
        if (spec.App.HealthCheck is not { } hc)
        {
            return null;
        }

        var port = hc.Http.Port.IntValue
            ?? spec.App.Ports?.FirstOrDefault(p => p.Name == hc.Http.Port.StringValue)?.ContainerPort
            ?? 0;
        return (port, hc.Http.Path!);
    }

    /// <summary>https://DOMAIN (http:// without tls) from the first domain when the proxy serves it, else http://NODE:PORT from the node name and the first published port.</summary>
    public string? Endpoint =>
        Proxied && Spec.App.Ports?.FirstOrDefault(p => p.Domains is { Count: > 0 }) is { } d
            ? $"{((d.Tls ?? Defaults.PortTls) ? "https" : "http")}://{d.Domains![0]}"
            : Spec.App.Ports?.FirstOrDefault(p => p.HostPort is not null) is { } p
                ? $"http://{Context.Node}:{p.HostPort!.Value.ToString(CultureInfo.InvariantCulture)}"
                : null;

    /// <summary>Every secret value the stack knows, for masking log excerpts.</summary>
    public IEnumerable<string> SecretValues
    {
        get
        {
            foreach (var v in inputs.SecretEnv.Values)
            {
                yield return v;
            }

            if (inputs.Database is { } db)
            {
                yield return db.Password;
                yield return db.Url;
                yield return Uri.EscapeDataString(db.Password);
            }

            foreach (var auth in inputs.PullAuths.Values)
            {
                if (auth.Password is { } pw)
                {
                    yield return pw;
                }

                if (auth.IdentityToken is { } token)
                {
                    yield return token;
                }
            }
        }
    }

    public static DesiredStack Build(AppDeployment resource, ResolvedInputs inputs, StackContext context)
    {
        var stack = new DesiredStack(resource, Defaults.Apply(resource.Spec), inputs, context);
        stack.Database = stack.BuildDatabase();
        stack.Cache = stack.BuildCache();
        return stack;
    }

    /// <summary>
    /// How often Docker checks a database's or cache's health: every check is an exec in the container (a process, a
    /// runc start), and at 1 s 50 caches kept 2 cores busy on their own (bench/stacks). A failure is seen after
    /// 3 checks (30 s), as a Kubernetes probe with its default period would; while a component starts, the
    /// reconciler runs the same command itself (StackReconciler.ProbeStartingDataAsync), so a rollout does not wait
    /// for Docker's first check.
    /// </summary>
    public static readonly TimeSpan DataHealthInterval = TimeSpan.FromSeconds(10);

    /// <summary>The command of a Docker health check as an exec runs it (<c>CMD</c> or <c>CMD-SHELL</c>), or null for another kind.</summary>
    public static IReadOnlyList<string>? HealthCommand(HealthProbe probe) => probe.Test switch
    {
        [var kind, _, ..] when kind == "CMD" => [.. probe.Test.Skip(1)],
        ["CMD-SHELL", var shell] => ["/bin/sh", "-c", shell],
        _ => null,
    };

    /// <summary>Labels every object of the stack carries.</summary>
    public Dictionary<string, string> Labels(string component) => new()
    {
        [SkiffLabels.ManagedBy] = SkiffLabels.ManagedByValue,
        [SkiffLabels.App] = Names.Key,
        [SkiffLabels.Component] = component,
        [SkiffLabels.Node] = Context.Node,
        [SkiffLabels.Source] = Context.SourceId,
    };

    /// <summary>The app container of a revision; a rollback runs the last good image under the current settings.</summary>
    public ContainerSpec AppContainer(long revision, string image, bool rollback)
    {
        var labels = Labels(StackNames.AppComponent);
        labels[SkiffLabels.Revision] = revision.ToString(CultureInfo.InvariantCulture);
        labels[SkiffLabels.SpecHash] = rollback ? "rollback" : Hash;
        labels[SkiffLabels.ImageRef] = image;
        if (Routing is { } routing)
        {
            labels[SkiffLabels.Routing] = routing;
        }

        if (rollback)
        {
            labels[SkiffLabels.Rollback] = "true";
        }

        return new ContainerSpec
        {
            Name = Names.AppContainer(revision),
            Image = image,
            Entrypoint = Spec.App.Command,
            Cmd = Spec.App.Args,
            Env = AppEnv(),
            Labels = labels,
            // With the node proxy the container publishes nothing: the proxy listens and forwards on the stack network.
            Ports = Spec.App.Ports?.Select(p => Proxied ? new PortBinding(p.ContainerPort, null, null) : new PortBinding(p.ContainerPort, p.HostPort, p.HostIP)).ToList() ?? [],
            MemoryBytes = Quantity.MemoryBytes(Spec.App.Resources?.Memory),
            NanoCpus = Quantity.NanoCpus(Spec.App.Resources?.Cpu),
            Network = Names.Network,
            NetworkAliases = [StackNames.AppComponent],
        };
    }

    /// <summary>The one-off migration container of a revision: the new image, the app's environment, the migrate command.</summary>
    public ContainerSpec? MigrateContainer(long revision, int attempt = 1)
    {
        if (Spec.App.Migrate is not { } migrate)
        {
            return null;
        }

        var labels = Labels(StackNames.MigrateComponent);
        labels[SkiffLabels.Revision] = revision.ToString(CultureInfo.InvariantCulture);
        labels[SkiffLabels.SpecHash] = Hash;
        labels[SkiffLabels.Attempt] = attempt.ToString(CultureInfo.InvariantCulture);
        return new ContainerSpec
        {
            Name = Names.MigrateContainer(revision),
            Image = Image,
            Entrypoint = migrate.Command,
            Cmd = [],
            Env = AppEnv(),
            Labels = labels,
            MemoryBytes = Quantity.MemoryBytes(Spec.App.Resources?.Memory),
            NanoCpus = Quantity.NanoCpus(Spec.App.Resources?.Cpu),
            Network = Names.Network,
            RestartPolicy = "no",
        };
    }

    private List<string> AppEnv()
    {
        var env = new List<string>();
        var userNames = new HashSet<string>(Spec.App.Env?.Select(e => e.Name) ?? [], StringComparer.Ordinal);
        if (inputs.Database is { } db && !userNames.Contains("DATABASE_URL"))
        {
            env.Add("DATABASE_URL=" + db.Url);
        }

        if (Cache is not null && !userNames.Contains("REDIS_URL"))
        {
            env.Add($"REDIS_URL=redis://{StackNames.CacheHost}:6379/0");
        }

        foreach (var e in Spec.App.Env ?? [])
        {
            var value = e.ValueFrom is not null
                ? inputs.SecretEnv.GetValueOrDefault(e.Name, "")
                : e.Value ?? "";
            env.Add($"{e.Name}={value}");
        }

        return env;
    }

    private DataComponent? BuildDatabase()
    {
        if (Spec.Database is not { } db)
        {
            return null;
        }

        var creds = inputs.Database ?? throw new InvalidOperationException("database credentials must be resolved before building the stack");
        var adopted = !string.IsNullOrEmpty(db.Volume);
        var volume = adopted ? db.Volume! : Names.DatabaseVolume;
        var configHash = SpecHash.Compute(new DatabaseConfigHash(db.Engine, db.Image, db.Name, db.User, volume, db.Resources, Layout: 1));
        var labels = Labels(StackNames.DatabaseComponent);
        labels[SkiffLabels.SpecHash] = configHash;
        var container = new ContainerSpec
        {
            Name = Names.DatabaseContainer,
            Image = db.Image!,
            Env =
            [
                "POSTGRES_USER=" + creds.Username,
                "POSTGRES_PASSWORD=" + creds.Password,
                "POSTGRES_DB=" + creds.Database,
                "PGDATA=/var/lib/postgresql/data",
            ],
            Labels = labels,
            Healthcheck = new HealthProbe(
                ["CMD", "pg_isready", "-h", "127.0.0.1", "-U", creds.Username, "-d", creds.Database],
                DataHealthInterval,
                TimeSpan.FromSeconds(5),
                3,
                TimeSpan.FromSeconds(60)),
            // PostgreSQL's fast shutdown is SIGINT; give it a minute to checkpoint before Docker kills it.
            StopSignal = "SIGINT",
            StopTimeout = TimeSpan.FromSeconds(60),
            MemoryBytes = Quantity.MemoryBytes(db.Resources?.Memory),
            NanoCpus = Quantity.NanoCpus(db.Resources?.Cpu),
            Mounts = [new VolumeMount(volume, "/var/lib/postgresql/data")],
            Network = Names.Network,
            NetworkAliases = [StackNames.DatabaseHost],
        };
        return new DataComponent(StackNames.DatabaseComponent, container, configHash, volume, adopted, null);
    }

    /// <summary>The redis-server command line of a cache (persistence, memory cap): the same on Docker and on Kubernetes.</summary>
    public static List<string> RedisCommand(CacheSpec cache)
    {
        var cmd = new List<string> { "redis-server", "--protected-mode", "no" };
        cmd.AddRange(cache.Persistence switch
        {
            PersistenceModes.Aof => ["--appendonly", "yes", "--dir", "/data"],
            PersistenceModes.Rdb => ["--appendonly", "no", "--save", "60 1", "--dir", "/data"],
            _ => ["--appendonly", "no", "--save", ""],
        });
        if (Quantity.MaxMemoryBytes(cache.MaxMemory) is { } maxMemory)
        {
            cmd.AddRange(["--maxmemory", maxMemory.ToString(CultureInfo.InvariantCulture), "--maxmemory-policy", "allkeys-lru"]);
        }

        return cmd;
    }

    private DataComponent? BuildCache()
    {
        if (Spec.Cache is not { } cache)
        {
            return null;
        }

        var persistent = cache.Persistence is PersistenceModes.Aof or PersistenceModes.Rdb;
        var cmd = RedisCommand(cache);

        var configHash = SpecHash.Compute(new CacheConfigHash(cache.Engine, cache.Image, cache.Persistence, cache.MaxMemory, cache.Resources, Layout: 1));
        var labels = Labels(StackNames.CacheComponent);
        labels[SkiffLabels.SpecHash] = configHash;
        var container = new ContainerSpec
        {
            Name = Names.CacheContainer,
            Image = cache.Image!,
            Cmd = cmd,
            Labels = labels,
            Healthcheck = new HealthProbe(["CMD", "redis-cli", "ping"], DataHealthInterval, TimeSpan.FromSeconds(5), 3, TimeSpan.FromSeconds(30)),
            MemoryBytes = Quantity.MemoryBytes(cache.Resources?.Memory),
            NanoCpus = Quantity.NanoCpus(cache.Resources?.Cpu),
            Mounts = persistent ? [new VolumeMount(Names.CacheVolume, "/data")] : [],
            Network = Names.Network,
            NetworkAliases = [StackNames.CacheHost],
        };
        return new DataComponent(StackNames.CacheComponent, container, configHash, persistent ? Names.CacheVolume : null, false, null);
    }
}

/// <summary>
/// What a database container's configuration hash covers. The JSON names are the hash's own, unchanged since it was
/// first computed (then from an anonymous object): renaming one would replace every database container on upgrade.
/// </summary>
internal sealed record DatabaseConfigHash(
    string? Engine,
    string? Image,
    string? Name,
    string? User,
    [property: JsonPropertyName("volume")] string Volume,
    ResourceLimits? Resources,
    [property: JsonPropertyName("layout")] int Layout);

/// <summary>What a cache container's configuration hash covers; the JSON names are fixed as <see cref="DatabaseConfigHash"/>'s.</summary>
internal sealed record CacheConfigHash(
    string? Engine,
    string? Image,
    string? Persistence,
    string? MaxMemory,
    ResourceLimits? Resources,
    [property: JsonPropertyName("layout")] int Layout);

/// <summary>What the node proxy container's configuration hash covers; the JSON names are fixed (see <see cref="DatabaseConfigHash"/>).</summary>
internal sealed record ProxyConfigHash(
    [property: JsonPropertyName("image")] string Image,
    [property: JsonPropertyName("cmd")] IReadOnlyList<string> Cmd,
    [property: JsonPropertyName("folder")] string Folder);
