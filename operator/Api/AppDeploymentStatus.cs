using System.Text.Json.Serialization;

namespace Skiff.Api;

/// <summary>What the operator observed and did.</summary>
public sealed class AppDeploymentStatus
{
    /// <summary>The metadata.generation this status describes.</summary>
    [JsonPropertyName("observedGeneration")]
    public long? ObservedGeneration { get; set; }

    /// <summary>Pending, Progressing, Ready, Degraded or Failed.</summary>
    [JsonPropertyName("phase")]
    [SchemaEnum(Phases.Pending, Phases.Progressing, Phases.Ready, Phases.Degraded, Phases.Failed)]
    public string? Phase { get; set; }

    /// <summary>kstatus conditions: Ready, Reconciling, Stalled, DatabaseReady, CacheReady, Migrated, AppReady, DiskPressure, BackupFailed, CertificateNotReady, DomainsNotServed.</summary>
    [JsonPropertyName("conditions")]
    [ListMap("type")]
    [SchemaMaxItems(16)]
    public List<Condition>? Conditions { get; set; }

    /// <summary>The revision that runs now (or is being rolled out).</summary>
    [JsonPropertyName("revision")]
    public long? Revision { get; set; }

    /// <summary>The image that runs now, by digest when known.</summary>
    [JsonPropertyName("image")]
    public string? Image { get; set; }

    /// <summary>The image id (sha256:...) that runs now.</summary>
    [JsonPropertyName("imageId")]
    public string? ImageId { get; set; }

    /// <summary>The last image that rolled out successfully; automatic rollbacks restore it.</summary>
    [JsonPropertyName("lastGoodImage")]
    public string? LastGoodImage { get; set; }

    /// <summary>Revisions attempted, newest last, bounded by revisionHistoryLimit plus failed ones still remembered.</summary>
    [JsonPropertyName("history")]
    [SchemaMaxItems(100)]
    public List<RevisionRecord>? History { get; set; }

    /// <summary>The stack's containers.</summary>
    [JsonPropertyName("components")]
    [ListMap("name")]
    [SchemaMaxItems(3)]
    public List<ComponentStatus>? Components { get; set; }

    /// <summary>Where the app is reachable: from the node name and the first published port.</summary>
    [JsonPropertyName("endpoint")]
    public string? Endpoint { get; set; }

    /// <summary>Where the spec came from (a folder path, or the cluster).</summary>
    [JsonPropertyName("source")]
    public string? Source { get; set; }

    /// <summary>The newest backup of the database (spec.database.backup).</summary>
    [JsonPropertyName("lastBackup")]
    public BackupRecord? LastBackup { get; set; }
}

/// <summary>One backup file.</summary>
public sealed class BackupRecord
{
    /// <summary>When the backup was taken.</summary>
    [JsonPropertyName("time")]
    public DateTimeOffset? Time { get; set; }

    /// <summary>The file's path on the node.</summary>
    [JsonPropertyName("file")]
    public string? File { get; set; }

    /// <summary>Its size in bytes.</summary>
    [JsonPropertyName("bytes")]
    public long? Bytes { get; set; }

    /// <summary>It was restored into a throw-away PostgreSQL and its tables counted.</summary>
    [JsonPropertyName("verified")]
    public bool? Verified { get; set; }
}

/// <summary>Resource phases.</summary>
public static class Phases
{
    public const string Pending = "Pending";
    public const string Progressing = "Progressing";
    public const string Ready = "Ready";
    public const string Degraded = "Degraded";
    public const string Failed = "Failed";
}

/// <summary>A condition, shaped like metav1.Condition.</summary>
public sealed class Condition
{
    /// <summary>The condition's type, e.g. Ready.</summary>
    [JsonPropertyName("type")]
    [SchemaRequired]
    public string Type { get; set; } = "";

    /// <summary>True, False or Unknown.</summary>
    [JsonPropertyName("status")]
    [SchemaRequired]
    [SchemaEnum("True", "False", "Unknown")]
    public string Status { get; set; } = "Unknown";

    /// <summary>The metadata.generation the condition was set for.</summary>
    [JsonPropertyName("observedGeneration")]
    public long? ObservedGeneration { get; set; }

    /// <summary>When the status last changed.</summary>
    [JsonPropertyName("lastTransitionTime")]
    public DateTimeOffset? LastTransitionTime { get; set; }

    /// <summary>A PascalCase reason.</summary>
    [JsonPropertyName("reason")]
    public string? Reason { get; set; }

    /// <summary>A human-readable message.</summary>
    [JsonPropertyName("message")]
    public string? Message { get; set; }
}

/// <summary>One revision attempted.</summary>
public sealed class RevisionRecord
{
    /// <summary>The revision number.</summary>
    [JsonPropertyName("revision")]
    public long Revision { get; set; }

    /// <summary>SHA-256 of the defaulted spec.</summary>
    [JsonPropertyName("specHash")]
    public string SpecHash { get; set; } = "";

    /// <summary>The app image reference.</summary>
    [JsonPropertyName("image")]
    public string? Image { get; set; }

    /// <summary>The app image id.</summary>
    [JsonPropertyName("imageId")]
    public string? ImageId { get; set; }

    /// <summary>When the revision was deployed.</summary>
    [JsonPropertyName("deployedAt")]
    public DateTimeOffset? DeployedAt { get; set; }

    /// <summary>Succeeded, Failed or RolledBack.</summary>
    [JsonPropertyName("outcome")]
    [SchemaEnum(Outcomes.Progressing, Outcomes.Succeeded, Outcomes.Failed, Outcomes.RolledBack)]
    public string? Outcome { get; set; }

    /// <summary>Why it failed or was rolled back.</summary>
    [JsonPropertyName("reason")]
    public string? Reason { get; set; }
}

/// <summary>Revision outcomes.</summary>
public static class Outcomes
{
    public const string Progressing = "Progressing";
    public const string Succeeded = "Succeeded";
    public const string Failed = "Failed";
    public const string RolledBack = "RolledBack";
}

/// <summary>One container of the stack.</summary>
public sealed class ComponentStatus
{
    /// <summary>app, database or cache.</summary>
    [JsonPropertyName("name")]
    [SchemaRequired]
    public string Name { get; set; } = "";

    /// <summary>The Docker container id.</summary>
    [JsonPropertyName("containerId")]
    public string? ContainerId { get; set; }

    /// <summary>The image the container runs.</summary>
    [JsonPropertyName("image")]
    public string? Image { get; set; }

    /// <summary>The container's state (running, exited, ...).</summary>
    [JsonPropertyName("state")]
    public string? State { get; set; }

    /// <summary>healthy, unhealthy, starting or none.</summary>
    [JsonPropertyName("health")]
    public string? Health { get; set; }

    /// <summary>How often the engine restarted it.</summary>
    [JsonPropertyName("restarts")]
    public long? Restarts { get; set; }
}

/// <summary>Condition types.</summary>
public static class ConditionTypes
{
    public const string Ready = "Ready";
    public const string Reconciling = "Reconciling";
    public const string Stalled = "Stalled";
    public const string DatabaseReady = "DatabaseReady";
    public const string CacheReady = "CacheReady";
    public const string Migrated = "Migrated";
    public const string AppReady = "AppReady";
    public const string DiskPressure = "DiskPressure";

    /// <summary>The last scheduled backup failed (the app stays Ready: a failed backup never touches the running database).</summary>
    public const string BackupFailed = "BackupFailed";

    /// <summary>A domain with <c>tls</c> has no certificate yet (it is served over HTTP meanwhile; the route never goes down).</summary>
    public const string CertificateNotReady = "CertificateNotReady";

    /// <summary>The stack has domains but the node runs no node proxy (<c>skiff run --proxy-image</c>): nothing serves them; its containers run all the same.</summary>
    public const string DomainsNotServed = "DomainsNotServed";
}
