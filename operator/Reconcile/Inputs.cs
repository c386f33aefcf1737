using Skiff.Api;

namespace Skiff.Reconcile;

/// <summary>Generated database credentials (kept in the Secret NAME-db).</summary>
public sealed record DatabaseCredentials(string Username, string Password, string Database)
{
    /// <summary>The URL the app gets as DATABASE_URL.</summary>
    public string Url => $"postgres://{Uri.EscapeDataString(Username)}:{Uri.EscapeDataString(Password)}@{StackNames.DatabaseHost}:5432/{Uri.EscapeDataString(Database)}";
}

/// <summary>
/// Where the reconciler reads Secrets and keeps generated credentials. The folder source and the
/// Kubernetes source each implement it, so the Docker target does not care where secrets live.
/// </summary>
public interface ISecretSource
{
    /// <summary>A Secret's data, or null when it does not exist.</summary>
    Task<IReadOnlyDictionary<string, byte[]>?> GetSecretAsync(string @namespace, string name, CancellationToken ct);

    /// <summary>A Secret's <c>type</c> (<c>kubernetes.io/tls</c>, <c>Opaque</c>…), or null when it does not exist or the source cannot tell.</summary>
    Task<string?> GetSecretTypeAsync(string @namespace, string name, CancellationToken ct) => Task.FromResult<string?>(null);

    /// <summary>Returns the stack's database credentials, generating and storing them the first time.</summary>
    Task<DatabaseCredentials> EnsureDatabaseCredentialsAsync(StackNames names, string database, string user, CancellationToken ct);

    /// <summary>Deletes the generated credentials (only with reclaimPolicy: Delete).</summary>
    Task DeleteDatabaseCredentialsAsync(StackNames names, CancellationToken ct);
}

/// <summary>
/// A Secret exists but its values cannot be read (the folder source: an <c>age</c> file without the key, a file it names
/// that is missing). <see cref="ISecretSource"/> throws it; the stacks that use the Secret are Stalled with
/// <see cref="Reason"/> and the message, which names the file and the fix and holds no value.
/// </summary>
public sealed class SecretUnreadableException(string reason, string message) : Exception(message)
{
    public string Reason { get; } = reason;
}

/// <summary>Where the stack is deployed from and to.</summary>
/// <param name="Node">This instance's node.</param>
/// <param name="SourceId">The value of the dev.skiff.source label: which source instance owns the objects.</param>
/// <param name="SourceDescription">Human-readable source (a folder path, or "kubernetes").</param>
public sealed record StackContext(string Node, string SourceId, string SourceDescription)
{
    /// <summary>How long one image pull may take before it counts as failed (<c>--pull-timeout</c>, default 10 minutes).</summary>
    public TimeSpan PullTimeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>The node proxy owns the published ports (<c>--proxy-image</c>): app containers publish none, rollouts are start-first.</summary>
    public bool Proxy { get; init; }
}

/// <summary>Values the desired stack needs from outside the spec, resolved before planning.</summary>
/// <param name="Database">The generated database credentials.</param>
/// <param name="SecretEnv">secretKeyRef values by variable name.</param>
/// <param name="PullAuths">The imagePullSecret's logins by registry host, for the registries of the stack's images.</param>
public sealed record ResolvedInputs(
    DatabaseCredentials? Database,
    IReadOnlyDictionary<string, string> SecretEnv,
    IReadOnlyDictionary<string, RegistryAuth> PullAuths)
{
    public static readonly ResolvedInputs None = new(null, new Dictionary<string, string>(), new Dictionary<string, RegistryAuth>());
}

/// <summary>
/// What a node's reconciler works with beside its engine, given once when it is made: the image lock and disk guard it
/// shares with image GC, who watches its pulls, how it probes apps, and who hears of rollouts and secrets.
/// </summary>
public sealed record StackServices
{
    /// <summary>Shared with image GC: a rollout holds a use lease on the images it pulls and starts.</summary>
    public ImageEngineLock EngineLock { get; init; } = new();

    /// <summary>Raised by image GC when the disk stays full: new rollouts wait. Null: never (skiff plan, tests).</summary>
    public DiskGuard? DiskGuard { get; init; }

    /// <summary>Who watches pulls (the log when null).</summary>
    public IPullListener? Pulls { get; init; }

    /// <summary>The node proxy's routes; required when <see cref="StackContext.Proxy"/> is set.</summary>
    public IRouteTable? Routes { get; init; }

    /// <summary>How apps are health-checked (HTTP when null).</summary>
    public IAppProbe? Probe { get; init; }

    /// <summary>A revision went live (metrics, and image GC's pass after each rollout).</summary>
    public Action<DesiredStack, RevisionRecord, TimeSpan>? RolloutCompleted { get; init; }

    /// <summary>A revision failed (metrics).</summary>
    public Action<DesiredStack, RevisionRecord, string>? RolloutFailed { get; init; }

    /// <summary>
    /// Backups (<c>Skiff.Backup</c>) write what they know of the stack into its status on every reconcile
    /// (<c>lastBackup</c>, the <c>BackupFailed</c> condition), as <see cref="DiskGuard"/> does for DiskPressure.
    /// </summary>
    public Action<StackNames, AppDeploymentStatus, long?>? ReportBackups { get; init; }

    /// <summary>Writes the certificate state of the stack's TLS domains into each status (the node proxy's ACME), when there is one.</summary>
    public Action<StackNames, AppDeploymentStatus, long?>? ReportCertificates { get; init; }

    /// <summary>
    /// Reads the certificates of the stack's <c>spec.app.ports[].tlsSecret</c>s for the node proxy, at the start of every
    /// reconcile (before any route is set); its problems go to <see cref="ReportCertificates"/>, never stall the stack.
    /// </summary>
    public Func<StackNames, AppDeploymentSpec, ISecretSource, CancellationToken, Task>? ProvideCertificates { get; init; }

    /// <summary>Every secret value a stack uses, before anything could log one (log redaction).</summary>
    public Action<IEnumerable<string>>? SecretsResolved { get; init; }
}
