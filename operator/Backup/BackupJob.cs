using System.Globalization;
using Skiff.Api;
using Skiff.Reconcile;

namespace Skiff.Backup;

/// <summary>
/// Everything one backup (or restore) of a stack needs, resolved from its resource: where the files go, the database's
/// image, credentials and network, and the cache to copy when it persists.
/// </summary>
/// <param name="Names">The stack's Docker names.</param>
/// <param name="Folder">The node-local folder (spec.database.backup.path, default /var/backups/skiff).</param>
/// <param name="Retain">How many verified backups to keep (spec.database.backup.retain, default 7).</param>
/// <param name="Schedule">The cron schedule as written (empty for a stack without a backup spec).</param>
/// <param name="DatabaseImage">The stack's PostgreSQL image: pg_dump, pg_restore and the verification run from it.</param>
/// <param name="Credentials">The stack's database user, password and database.</param>
/// <param name="Labels">Skiff's labels of the stack (managed-by, app, node, source), given to the one-off containers.</param>
public sealed record BackupJob(
    StackNames Names,
    string Folder,
    int Retain,
    string Schedule,
    string DatabaseImage,
    DatabaseCredentials Credentials,
    IReadOnlyDictionary<string, string> Labels)
{
    /// <summary>The one-off pg_dump container: its name is the cross-process lock (never two backups of one stack at once).</summary>
    public string DumpContainer => $"{Names.Base}_backup";

    /// <summary>The throw-away PostgreSQL that a new dump is restored into.</summary>
    public string VerifyContainer => $"{Names.Base}_backup_verify";

    /// <summary>The one-off pg_restore container of <c>skiff restore</c>.</summary>
    public string RestoreContainer => $"{Names.Base}_restore";

    /// <summary>The cache container when the stack has a cache that persists (aof or rdb), else null.</summary>
    public string? PersistentCache { get; init; }

    /// <summary>The cache's image (for the copy of its RDB file).</summary>
    public string? CacheImage { get; init; }

    /// <summary>The job of a stack whose spec has a database; null when it has none.</summary>
    public static BackupJob? For(AppDeployment resource, DatabaseCredentials credentials, StackContext context)
    {
        var spec = Defaults.Apply(resource.Spec);
        if (spec.Database is not { } db)
        {
            return null;
        }

        var names = new StackNames(resource.Metadata.NamespaceProperty ?? "default", resource.Metadata.Name);
        var labels = new Dictionary<string, string>
        {
            [SkiffLabels.ManagedBy] = SkiffLabels.ManagedByValue,
            [SkiffLabels.App] = names.Key,
            [SkiffLabels.Node] = context.Node,
            [SkiffLabels.Source] = context.SourceId,
        };
        var persistent = spec.Cache is { Persistence: PersistenceModes.Aof or PersistenceModes.Rdb };
        return new BackupJob(
            names,
            db.Backup?.Path ?? Defaults.BackupPath,
            db.Backup?.Retain ?? Defaults.BackupRetain,
            db.Backup?.Schedule ?? "",
            db.Image!,
            credentials,
            labels)
        {
            PersistentCache = persistent ? names.CacheContainer : null,
            CacheImage = persistent ? spec.Cache!.Image : null,
        };
    }

    /// <summary>The labels of one of the job's one-off containers.</summary>
    public Dictionary<string, string> LabelsFor(string component) => new(Labels) { [SkiffLabels.Component] = component };

    /// <summary><c>NAMESPACE_NAME_20260101T030000Z.dump</c>: a name that sorts by time and says whose it is.</summary>
    public string FileName(DateTimeOffset time, string extension) =>
        $"{Names.Namespace}_{Names.Name}_{time.UtcDateTime.ToString(BackupFiles.TimeFormat, CultureInfo.InvariantCulture)}.{extension}";
}
