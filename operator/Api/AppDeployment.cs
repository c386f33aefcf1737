using System.Text.Json.Serialization;

namespace Skiff.Api;

/// <summary>One application stack (an app, an optional PostgreSQL and an optional Redis) on one node.</summary>
public sealed class AppDeployment : CustomResource<AppDeploymentSpec, AppDeploymentStatus>
{
    public const string KindName = "AppDeployment";
    public const string Plural = "appdeployments";
    public const string Singular = "appdeployment";
    public const string ShortName = "appdep";

    public AppDeployment()
    {
        Kind = KindName;
    }
}

/// <summary>The desired application stack.</summary>
// Transition rule: the API server evaluates it only on update (oldSelf exists), never on create.
[CelRule("(has(self.node) ? self.node : '') == (has(oldSelf.node) ? oldSelf.node : '') || (!has(oldSelf.database) && (!has(oldSelf.cache) || !has(oldSelf.cache.persistence) || oldSelf.cache.persistence == 'none'))",
    "spec.node is immutable while the stack has a database or a persistent cache: back up the data, delete the stack, recreate it on the new node and restore",
    FieldPath = ".node", Reason = "FieldValueForbidden", Twin = CelTwins.NodeImmutableWithData)]
[CelRule("has(self.node) || (has(self.runtime) && self.runtime == 'kubernetes')",
    "spec.node is required for the docker runtime: name the node that runs the stack",
    FieldPath = ".node", Reason = "FieldValueRequired", Twin = CelTwins.NodeRequiredForDocker)]
public sealed class AppDeploymentSpec
{
    /// <summary>The node (host) that runs the stack; required for the docker runtime. Immutable while the stack holds data.</summary>
    [JsonPropertyName("node")]
    [SchemaMaxLength(253)]
    [SchemaPattern(Patterns.Dns1123Subdomain, Patterns.Dns1123SubdomainText)]
    public string? Node { get; set; }

    /// <summary>Where the stack runs: docker (containers on the node's Docker engine) or kubernetes (native workloads on the cluster, reconciled by the instance holding the Lease skiff-cluster).</summary>
    [JsonPropertyName("runtime")]
    [SchemaEnum(Runtimes.Docker, Runtimes.Kubernetes)]
    [SchemaDefault(Defaults.Runtime)]
    public string? Runtime { get; set; }

    /// <summary>The application container.</summary>
    [JsonPropertyName("app")]
    [SchemaRequired]
    public AppSpec App { get; set; } = new();

    /// <summary>An optional PostgreSQL database for the app; its URL reaches the app as DATABASE_URL.</summary>
    [JsonPropertyName("database")]
    public DatabaseSpec? Database { get; set; }

    /// <summary>An optional Redis cache for the app; its URL reaches the app as REDIS_URL.</summary>
    [JsonPropertyName("cache")]
    public CacheSpec? Cache { get; set; }

    /// <summary>How new revisions are rolled out and rolled back.</summary>
    [JsonPropertyName("rollout")]
    public RolloutSpec? Rollout { get; set; }
}

/// <summary>Where a stack runs.</summary>
public static class Runtimes
{
    public const string Docker = "docker";
    public const string Kubernetes = "kubernetes";
}

/// <summary>The application container.</summary>
[CelRule("!has(self.ports) || self.ports.all(p, !has(p.hostPort) || self.ports.exists_one(q, has(q.hostPort) && q.hostPort == p.hostPort && (has(q.hostIP) ? q.hostIP : '0.0.0.0') == (has(p.hostIP) ? p.hostIP : '0.0.0.0')))",
    "host ports must be unique per hostIP: two ports cannot publish the same hostIP:hostPort",
    FieldPath = ".ports", Reason = "FieldValueDuplicate", Twin = CelTwins.HostPortsUnique)]
[CelRule("!has(self.ports) || self.ports.all(p, !has(p.name) || self.ports.exists_one(q, has(q.name) && q.name == p.name))",
    "port names must be unique",
    FieldPath = ".ports", Reason = "FieldValueDuplicate", Twin = CelTwins.PortNamesUnique)]
[CelRule("!has(self.healthCheck) || type(self.healthCheck.http.port) == int || (has(self.ports) && self.ports.exists(p, has(p.name) && p.name == self.healthCheck.http.port))",
    "healthCheck.http.port must be a port number or the name of one of the app's ports",
    FieldPath = ".healthCheck.http.port", Reason = "FieldValueInvalid", Twin = CelTwins.HealthCheckPortExists)]
[CelRule("has(self.image) != has(self.build)",
    "set exactly one of image (an image from a registry) and build (an image built on the node from the Git source's commit)",
    Reason = "FieldValueInvalid", Twin = CelTwins.ImageXorBuild)]
public sealed class AppSpec
{
    /// <summary>The image, by tag (registry/repo:tag) or digest (registry/repo@sha256:...). Exactly one of image and build.</summary>
    [JsonPropertyName("image")]
    [SchemaMaxLength(512)]
    public string Image { get; set; } = "";

    /// <summary>
    /// Instead of image, with the Git source only (skiff run --source git): the node builds the image from the served
    /// commit's tree through the Docker engine and runs it, tagged skiff.local/NAMESPACE/NAME:COMMIT12.
    /// </summary>
    [JsonPropertyName("build")]
    public BuildSpec? Build { get; set; }

    /// <summary>When to pull the image: IfNotPresent (default), Always or Never.</summary>
    [JsonPropertyName("imagePullPolicy")]
    [SchemaEnum(PullPolicies.IfNotPresent, PullPolicies.Always, PullPolicies.Never)]
    [SchemaDefault(Defaults.ImagePullPolicy)]
    public string? ImagePullPolicy { get; set; }

    /// <summary>Name of a Secret of type kubernetes.io/dockerconfigjson in the same namespace, for private registries.</summary>
    [JsonPropertyName("imagePullSecret")]
    [SchemaMaxLength(253)]
    [SchemaPattern(Patterns.Dns1123Subdomain, Patterns.Dns1123SubdomainText)]
    public string? ImagePullSecret { get; set; }

    /// <summary>Replaces the image's ENTRYPOINT (Kubernetes semantics).</summary>
    [JsonPropertyName("command")]
    [SchemaMaxItems(64)]
    public List<string>? Command { get; set; }

    /// <summary>Replaces the image's CMD (Kubernetes semantics).</summary>
    [JsonPropertyName("args")]
    [SchemaMaxItems(256)]
    public List<string>? Args { get; set; }

    /// <summary>Environment variables, literal or read from a Secret.</summary>
    [JsonPropertyName("env")]
    [ListMap("name")]
    [SchemaMaxItems(256)]
    public List<EnvVar>? Env { get; set; }

    /// <summary>Ports the app listens on; a hostPort publishes one on the node.</summary>
    [JsonPropertyName("ports")]
    [SchemaMaxItems(32)]
    public List<PortSpec>? Ports { get; set; }

    /// <summary>An HTTP health check probed by the operator; gates rollouts and keeps being watched after.</summary>
    [JsonPropertyName("healthCheck")]
    public HealthCheckSpec? HealthCheck { get; set; }

    /// <summary>A command run in a one-off container of the new image before it goes live; it must exit 0.</summary>
    [JsonPropertyName("migrate")]
    public MigrateSpec? Migrate { get; set; }

    /// <summary>Memory and CPU limits.</summary>
    [JsonPropertyName("resources")]
    public ResourceLimits? Resources { get; set; }
}

/// <summary>An image built on the node from the Git source's commit (<c>docker build</c> through the engine's API).</summary>
public sealed class BuildSpec
{
    /// <summary>The build context: a folder of the repository, relative to its root (not to --path); default the whole tree.</summary>
    [JsonPropertyName("context")]
    [SchemaMaxLength(512)]
    [SchemaDefault(Defaults.BuildContext)]
    public string? Context { get; set; }

    /// <summary>The Dockerfile, relative to the context.</summary>
    [JsonPropertyName("dockerfile")]
    [SchemaMaxLength(512)]
    [SchemaDefault(Defaults.BuildDockerfile)]
    public string? Dockerfile { get; set; }

    /// <summary>Build arguments (ARG), each a name and a value. Not for secrets: they are kept in the image's history.</summary>
    [JsonPropertyName("args")]
    [ListMap("name")]
    [SchemaMaxItems(64)]
    public List<BuildArg>? Args { get; set; }
}

/// <summary>A build argument (<c>--build-arg NAME=VALUE</c>).</summary>
public sealed class BuildArg
{
    /// <summary>The ARG's name.</summary>
    [JsonPropertyName("name")]
    [SchemaRequired]
    [SchemaMaxLength(128)]
    [SchemaPattern(Patterns.EnvVarName, Patterns.EnvVarNameText)]
    public string Name { get; set; } = "";

    /// <summary>Its value.</summary>
    [JsonPropertyName("value")]
    [SchemaMaxLength(4096)]
    public string? Value { get; set; }
}

/// <summary>Image pull policies.</summary>
public static class PullPolicies
{
    public const string IfNotPresent = "IfNotPresent";
    public const string Always = "Always";
    public const string Never = "Never";
}

/// <summary>An environment variable.</summary>
// Neither is allowed, as in Kubernetes: the variable is then set to the empty string.
[CelRule("!(has(self.value) && has(self.valueFrom))",
    "set either value or valueFrom, not both", Reason = "FieldValueInvalid", Twin = CelTwins.EnvValueXorValueFrom)]
public sealed class EnvVar
{
    /// <summary>The variable's name (letters, digits and underscores, not starting with a digit).</summary>
    [JsonPropertyName("name")]
    [SchemaRequired]
    [SchemaMaxLength(256)]
    [SchemaPattern(Patterns.EnvVarName, Patterns.EnvVarNameText)]
    public string Name { get; set; } = "";

    /// <summary>A literal value.</summary>
    [JsonPropertyName("value")]
    public string? Value { get; set; }

    /// <summary>Where to read the value from instead.</summary>
    [JsonPropertyName("valueFrom")]
    public EnvVarSource? ValueFrom { get; set; }
}

/// <summary>The source of an environment variable's value.</summary>
public sealed class EnvVarSource
{
    /// <summary>A key of a Secret in the resource's namespace.</summary>
    [JsonPropertyName("secretKeyRef")]
    [SchemaRequired]
    public SecretKeySelector SecretKeyRef { get; set; } = new();
}

/// <summary>Selects a key of a Secret.</summary>
public sealed class SecretKeySelector
{
    /// <summary>The Secret's name.</summary>
    [JsonPropertyName("name")]
    [SchemaRequired]
    [SchemaMaxLength(253)]
    [SchemaPattern(Patterns.Dns1123Subdomain, Patterns.Dns1123SubdomainText)]
    public string Name { get; set; } = "";

    /// <summary>The key within the Secret.</summary>
    [JsonPropertyName("key")]
    [SchemaRequired]
    [SchemaMaxLength(253)]
    [SchemaPattern(Patterns.SecretKey, Patterns.SecretKeyText)]
    public string Key { get; set; } = "";
}

/// <summary>A port the app listens on.</summary>
public sealed class PortSpec
{
    /// <summary>An optional name (DNS-1123 label, at most 15 characters) that a health check can refer to.</summary>
    [JsonPropertyName("name")]
    [SchemaMaxLength(15)]
    [SchemaPattern(Patterns.PortName, Patterns.PortNameText)]
    public string? Name { get; set; }

    /// <summary>The port inside the container.</summary>
    [JsonPropertyName("containerPort")]
    [SchemaRequired]
    [SchemaRange(1, 65535)]
    public int ContainerPort { get; set; }

    /// <summary>Publishes the port on the node. Docker's published ports bypass host firewalls such as ufw.</summary>
    [JsonPropertyName("hostPort")]
    [SchemaRange(1, 65535)]
    public int? HostPort { get; set; }

    /// <summary>The node address the host port binds to (default 0.0.0.0: every address).</summary>
    [JsonPropertyName("hostIP")]
    [SchemaMaxLength(45)]
    [SchemaPattern(Patterns.IPAddress, Patterns.IPAddressText)]
    public string? HostIP { get; set; }

    /// <summary>
    /// How the node proxy forwards the host port: http (default; request by request, with X-Forwarded-* headers) or
    /// tcp (connection by connection). Used when the operator runs the node proxy (--proxy-image).
    /// </summary>
    [JsonPropertyName("protocol")]
    [SchemaEnum(PortProtocols.Http, PortProtocols.Tcp)]
    public string? Protocol { get; set; }

    /// <summary>
    /// Domain names (lowercase DNS names such as api.example.com; no wildcards) the node proxy serves this port on,
    /// by Host header and TLS SNI on the node's shared HTTP and HTTPS ports (skiff run --proxy-http-port, default 80,
    /// and --proxy-https-port, default 443). Only on protocol http; no hostPort needed. One domain belongs to one stack per node.
    /// </summary>
    [JsonPropertyName("domains")]
    [SchemaMaxItems(16)]
    [SchemaItemsMaxLength(253)]
    [ListSet]
    public List<string>? Domains { get; set; }

    /// <summary>
    /// Serve the domains over HTTPS with a certificate from the state folder (proxy/certs), HTTP redirecting to it once
    /// one is there; false serves them over HTTP only. Default true when domains are set.
    /// </summary>
    [JsonPropertyName("tls")]
    public bool? Tls { get; set; }

    /// <summary>
    /// A Secret of type kubernetes.io/tls (keys tls.crt and tls.key) in the stack's namespace whose certificate the node
    /// proxy serves for this port's domains, instead of one from the ACME CA: for your own CA. It must cover every domain
    /// of the port; a change of the Secret is served without a restart. Needs domains, and tls not false.
    /// </summary>
    [JsonPropertyName("tlsSecret")]
    [SchemaMaxLength(253)]
    [SchemaPattern(Patterns.Dns1123Subdomain, Patterns.Dns1123SubdomainText)]
    public string? TlsSecret { get; set; }
}

/// <summary>How the node proxy forwards a published port.</summary>
public static class PortProtocols
{
    public const string Http = "http";
    public const string Tcp = "tcp";
}

/// <summary>An HTTP health check.</summary>
public sealed class HealthCheckSpec
{
    /// <summary>The HTTP GET to probe: 2xx and 3xx answers are healthy.</summary>
    [JsonPropertyName("http")]
    [SchemaRequired]
    public HttpCheck Http { get; set; } = new();

    /// <summary>Seconds between probes.</summary>
    [JsonPropertyName("periodSeconds")]
    [SchemaRange(1, 3600)]
    [SchemaDefault(Defaults.PeriodSeconds)]
    public int? PeriodSeconds { get; set; }

    /// <summary>Consecutive failures after which the app counts as unhealthy.</summary>
    [JsonPropertyName("failureThreshold")]
    [SchemaRange(1, 100)]
    [SchemaDefault(Defaults.FailureThreshold)]
    public int? FailureThreshold { get; set; }
}

/// <summary>An HTTP GET probe.</summary>
public sealed class HttpCheck
{
    /// <summary>The path to request, starting with /.</summary>
    [JsonPropertyName("path")]
    [SchemaDefault(Defaults.HealthCheckPath)]
    [SchemaMaxLength(1024)]
    [SchemaPattern("^/", "an absolute path starting with /")]
    public string? Path { get; set; }

    /// <summary>A container port number or the name of one of the app's ports.</summary>
    [JsonPropertyName("port")]
    [SchemaRequired]
    public IntOrString Port { get; set; }
}

/// <summary>A migration run before a new revision goes live.</summary>
public sealed class MigrateSpec
{
    /// <summary>The command, run in a one-off container of the new image with the app's environment.</summary>
    [JsonPropertyName("command")]
    [SchemaRequired]
    [SchemaMinItems(1)]
    [SchemaMaxItems(64)]
    public List<string> Command { get; set; } = [];

    /// <summary>How long the migration may run.</summary>
    [JsonPropertyName("timeoutSeconds")]
    [SchemaRange(1, 86400)]
    [SchemaDefault(Defaults.MigrateTimeoutSeconds)]
    public int? TimeoutSeconds { get; set; }
}

/// <summary>Memory and CPU limits.</summary>
public sealed class ResourceLimits
{
    /// <summary>Memory limit, a quantity such as 512Mi or 1Gi.</summary>
    [JsonPropertyName("memory")]
    [Quantity]
    public string? Memory { get; set; }

    /// <summary>CPU limit, a quantity such as 500m or 2.</summary>
    [JsonPropertyName("cpu")]
    [Quantity]
    public string? Cpu { get; set; }
}

/// <summary>A PostgreSQL database.</summary>
public sealed class DatabaseSpec
{
    /// <summary>The database engine; only postgres for now.</summary>
    [JsonPropertyName("engine")]
    [SchemaEnum(Engines.Postgres)]
    [SchemaDefault(Defaults.DatabaseEngine)]
    public string? Engine { get; set; }

    /// <summary>The image (default postgres:16); it must follow the official image's conventions.</summary>
    [JsonPropertyName("image")]
    [SchemaMaxLength(512)]
    public string? Image { get; set; }

    /// <summary>The database name (default app).</summary>
    [JsonPropertyName("name")]
    [SchemaDefault(Defaults.DatabaseName)]
    [SchemaMaxLength(63)]
    [SchemaPattern(Patterns.SqlIdentifier, Patterns.SqlIdentifierText)]
    public string? Name { get; set; }

    /// <summary>The database user (default app); the password is generated once and kept in the Secret NAME-db.</summary>
    [JsonPropertyName("user")]
    [SchemaDefault(Defaults.DatabaseUser)]
    [SchemaMaxLength(63)]
    [SchemaPattern(Patterns.SqlIdentifier, Patterns.SqlIdentifierText)]
    public string? User { get; set; }

    /// <summary>An existing Docker volume to adopt for the data; Skiff uses it and never deletes it.</summary>
    [JsonPropertyName("volume")]
    [SchemaMaxLength(255)]
    [SchemaPattern(Patterns.DockerVolumeOrEmpty, Patterns.DockerVolumeText)]
    public string? Volume { get; set; }

    /// <summary>Storage size and what happens to the data when the stack is deleted.</summary>
    [JsonPropertyName("storage")]
    public StorageSpec? Storage { get; set; }

    /// <summary>Memory and CPU limits.</summary>
    [JsonPropertyName("resources")]
    public ResourceLimits? Resources { get; set; }

    /// <summary>Scheduled backups of the database (pg_dump, verified by a restore) into a folder on the node; default off.</summary>
    [JsonPropertyName("backup")]
    public BackupSpec? Backup { get; set; }
}

/// <summary>
/// Scheduled, verified backups into a folder on the node. Changing it never restarts anything: it is left out of the
/// spec hash. No field has a schema default (the spec hash is computed over defaulted specs): defaults are read where used.
/// </summary>
public sealed class BackupSpec
{
    /// <summary>When to back up, in cron syntax (UTC): five fields (minute hour day-of-month month day-of-week, e.g. "0 3 * * *"), or six with seconds first.</summary>
    [JsonPropertyName("schedule")]
    [SchemaRequired]
    [SchemaMaxLength(128)]
    public string Schedule { get; set; } = "";

    /// <summary>How many verified backups to keep, newest first (default 7).</summary>
    [JsonPropertyName("retain")]
    [SchemaRange(1, 1000)]
    public int? Retain { get; set; }

    /// <summary>The node-local folder the backups go to (default /var/backups/skiff); an absolute path.</summary>
    [JsonPropertyName("path")]
    [SchemaMaxLength(1024)]
    [SchemaPattern("^/", "an absolute path starting with /")]
    public string? Path { get; set; }
}

/// <summary>Supported engines.</summary>
public static class Engines
{
    public const string Postgres = "postgres";
    public const string Redis = "redis";
}

/// <summary>Storage of a data volume.</summary>
public sealed class StorageSpec
{
    /// <summary>The size, a quantity; advisory on Docker, enforced on Kubernetes.</summary>
    [JsonPropertyName("size")]
    [Quantity]
    public string? Size { get; set; }

    /// <summary>Retain (default) keeps the volume and its Secret when the stack is deleted; Delete removes them.</summary>
    [JsonPropertyName("reclaimPolicy")]
    [SchemaEnum(ReclaimPolicies.Retain, ReclaimPolicies.Delete)]
    [SchemaDefault(Defaults.ReclaimPolicy)]
    public string? ReclaimPolicy { get; set; }
}

/// <summary>What happens to data when a stack is deleted.</summary>
public static class ReclaimPolicies
{
    public const string Retain = "Retain";
    public const string Delete = "Delete";
}

/// <summary>A Redis cache.</summary>
public sealed class CacheSpec
{
    /// <summary>The cache engine; only redis for now.</summary>
    [JsonPropertyName("engine")]
    [SchemaEnum(Engines.Redis)]
    [SchemaDefault(Defaults.CacheEngine)]
    public string? Engine { get; set; }

    /// <summary>The image (default redis:7).</summary>
    [JsonPropertyName("image")]
    [SchemaMaxLength(512)]
    public string? Image { get; set; }

    /// <summary>none keeps data in memory only; aof and rdb persist it in a volume.</summary>
    [JsonPropertyName("persistence")]
    [SchemaEnum(PersistenceModes.None, PersistenceModes.Aof, PersistenceModes.Rdb)]
    [SchemaDefault(Defaults.CachePersistence)]
    public string? Persistence { get; set; }

    /// <summary>Redis maxmemory, a quantity such as 256Mi.</summary>
    [JsonPropertyName("maxMemory")]
    [Quantity]
    public string? MaxMemory { get; set; }

    /// <summary>Storage of the cache volume when persistence is on.</summary>
    [JsonPropertyName("storage")]
    public StorageSpec? Storage { get; set; }

    /// <summary>Memory and CPU limits.</summary>
    [JsonPropertyName("resources")]
    public ResourceLimits? Resources { get; set; }
}

/// <summary>Redis persistence modes.</summary>
public static class PersistenceModes
{
    public const string None = "none";
    public const string Aof = "aof";
    public const string Rdb = "rdb";
}

/// <summary>Rollout settings.</summary>
[CelRule("!has(self.revisionHistoryLimit) || self.revisionHistoryLimit >= 1", "revisionHistoryLimit must be at least 1: the running revision is always kept",
    FieldPath = ".revisionHistoryLimit", Reason = "FieldValueInvalid", Twin = CelTwins.RevisionHistoryLimitAtLeastOne)]
public sealed class RolloutSpec
{
    /// <summary>Seconds a new revision has to become healthy before it counts as failed.</summary>
    [JsonPropertyName("progressDeadlineSeconds")]
    [SchemaRange(1, 86400)]
    [SchemaDefault(Defaults.ProgressDeadlineSeconds)]
    public int? ProgressDeadlineSeconds { get; set; }

    /// <summary>An app without a health check is Ready after running this long.</summary>
    [JsonPropertyName("minReadySeconds")]
    [SchemaRange(0, 3600)]
    [SchemaDefault(Defaults.MinReadySeconds)]
    public int? MinReadySeconds { get; set; }

    /// <summary>Restore the last good image when a revision fails.</summary>
    [JsonPropertyName("autoRollback")]
    [SchemaDefault(Defaults.AutoRollback)]
    public bool? AutoRollback { get; set; }

    /// <summary>Revisions (and their images) kept for rollback; at least 1.</summary>
    [JsonPropertyName("revisionHistoryLimit")]
    [SchemaRange(1, 100)]
    [SchemaDefault(Defaults.RevisionHistoryLimit)]
    public int? RevisionHistoryLimit { get; set; }

    /// <summary>
    /// With the node proxy: seconds the old revision keeps its in-flight requests and connections after the route
    /// switched to the new one, before it is stopped (default 30).
    /// </summary>
    [JsonPropertyName("drainSeconds")]
    [SchemaRange(0, 3600)]
    public int? DrainSeconds { get; set; }
}
