namespace Skiff.Reconcile;

/// <summary>
/// Every reason Skiff writes into a condition or an Event, once. docs/TROUBLESHOOTING.md explains each one that a
/// user can meet (a test reads this class); <see cref="Internal"/> are the steps of a healthy rollout.
/// </summary>
public static class Reasons
{
    // Ready and healthy.
    public const string Ready = "Ready";
    public const string Healthy = "Healthy";

    // Steps of a rollout under way (Reconciling=True): not faults.
    public const string RolloutInProgress = "RolloutInProgress";
    public const string Replacing = "Replacing";
    public const string Migrating = "Migrating";
    public const string MigrationSucceeded = "MigrationSucceeded";
    public const string NotHealthy = "NotHealthy";
    public const string ServingLastGood = "ServingLastGood";
    public const string NoRevisionServing = "NoRevisionServing";

    // The spec or its inputs: nothing moves until someone changes something (Stalled=True).
    public const string InvalidSpec = "InvalidSpec";
    public const string SecretNotFound = "SecretNotFound";
    public const string SecretNotDecrypted = "SecretNotDecrypted";
    public const string InvalidPullSecret = "InvalidPullSecret";
    public const string RuntimeNotSupported = "RuntimeNotSupported";
    public const string VolumeNotFound = "VolumeNotFound";
    public const string OwnedByAnotherSource = "OwnedByAnotherSource";
    public const string DatabaseVersionMismatch = "DatabaseVersionMismatch";
    public const string DatabaseNotReady = "DatabaseNotReady";
    public const string CacheNotReady = "CacheNotReady";
    public const string ImagePullFailed = "ImagePullFailed";
    public const string BuildFailed = "BuildFailed";

    // runtime: kubernetes: server-side apply refused because another field manager owns fields Skiff sets (Stalled=True).
    public const string FieldConflict = "FieldConflict";

    // The node: no subnet left in the operator's network pool (--network-pool, --network-prefix) for the stack's network.
    public const string NetworkPoolExhausted = "NetworkPoolExhausted";

    // A revision that failed (and was rolled back when it could be).
    public const string ImageNotFound = "ImageNotFound";
    public const string MigrationFailed = "MigrationFailed";
    public const string HealthCheckFailed = "HealthCheckFailed";
    public const string ContainerExited = "ContainerExited";
    public const string ProgressDeadlineExceeded = "ProgressDeadlineExceeded";
    public const string RolloutFailed = "RolloutFailed";

    // A live app after its rollout, or its engine.
    public const string CrashLooping = "CrashLooping";
    public const string AppNotRunning = "AppNotRunning";
    public const string EngineUnreachable = "EngineUnreachable";

    // The node's disk.
    public const string DiskPressure = "DiskPressure";
    public const string DiskSpaceAvailable = "DiskSpaceAvailable";

    // Backups (spec.database.backup): the condition BackupFailed and its Events.
    public const string BackupFailed = "BackupFailed";
    public const string BackupSucceeded = "BackupSucceeded";

    // Certificates of spec.app.ports[].domains (the node proxy's ACME): the condition CertificateNotReady and its Events.
    public const string CertificateNotReady = "CertificateNotReady";
    public const string CertificatesReady = "CertificatesReady";

    // spec.app.ports[].domains on a node whose operator runs no node proxy: the condition DomainsNotServed and its Event.
    public const string ProxyRequired = "ProxyRequired";

    // Events that are not a condition's reason.
    public const string RolloutStarted = "RolloutStarted";
    public const string RolloutSucceeded = "RolloutSucceeded";
    public const string RolledBack = "RolledBack";
    public const string Pulling = "Pulling";
    public const string Pulled = "Pulled";
    public const string VolumeCreated = "VolumeCreated";
    public const string DatabaseStarted = "DatabaseStarted";
    public const string CacheStarted = "CacheStarted";

    // Day-two requests (skiff restart, skiff rollback, or their annotations): Events when the operator takes one.
    public const string RestartRequested = "RestartRequested";
    public const string RollbackRequested = "RollbackRequested";

    /// <summary>Reasons of a healthy rollout's steps: shown while it runs, never a problem to troubleshoot.</summary>
    public static readonly IReadOnlySet<string> Internal = new HashSet<string>(StringComparer.Ordinal)
    {
        RolloutInProgress, Migrating, MigrationSucceeded, NotHealthy, ServingLastGood, NoRevisionServing, Healthy,
    };
}
