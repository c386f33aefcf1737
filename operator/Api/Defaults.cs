using System.Collections;
using System.Collections.Concurrent;
using System.Reflection;

namespace Skiff.Api;

/// <summary>
/// The defaults of Skiff's resources, each written once, here. The API types' <see cref="SchemaDefaultAttribute"/>s
/// name these constants, so the CRD schema declares them; <see cref="Apply(AppDeploymentSpec)"/> fills every field
/// that carries one, so a resource read from a folder behaves exactly like one that went through the API server; code
/// that reads a field which may not have been defaulted falls back to the same constant.
/// </summary>
/// <remarks>
/// <para><b>Guarantees.</b> Apply returns a deep copy; the input is not changed. Its result is what the spec hash is
/// computed over: a default changed here restarts every app that relies on it after an upgrade.</para>
/// <para><b>Caveats.</b> Beyond the schema, Apply creates the objects that hold defaults (the API server defaults a
/// field only inside an object that is present), and fills the database and cache images and the GC policy's lists,
/// which the schema leaves unset. <c>DefaultsTests</c> checks both against the committed CRDs.</para>
/// </remarks>
public static class Defaults
{
    // AppDeployment

    public const string Runtime = Runtimes.Docker;
    public const string ImagePullPolicy = PullPolicies.IfNotPresent;
    public const string HealthCheckPath = "/";
    public const int PeriodSeconds = 5;
    public const int FailureThreshold = 3;
    public const int MigrateTimeoutSeconds = 300;
    public const string DatabaseEngine = Engines.Postgres;

    /// <summary>The database image when none is given: not a schema default, so the operator may move it.</summary>
    public const string PostgresImage = "postgres:16";
    public const string DatabaseName = "app";
    public const string DatabaseUser = "app";
    public const string ReclaimPolicy = ReclaimPolicies.Retain;
    public const string CacheEngine = Engines.Redis;

    /// <summary>The cache image when none is given: not a schema default, so the operator may move it.</summary>
    public const string RedisImage = "redis:7";
    public const string CachePersistence = PersistenceModes.None;
    public const int ProgressDeadlineSeconds = 120;
    public const int MinReadySeconds = 5;
    public const bool AutoRollback = true;
    public const int RevisionHistoryLimit = 3;

    /// <summary>Not a schema default (the spec hash stays as it was before the field existed): read where used.</summary>
    public const int DrainSeconds = 30;

    /// <summary>Not a schema default, like <see cref="DrainSeconds"/>.</summary>
    public const string PortProtocol = PortProtocols.Http;

    /// <summary>ports[].tls when the port has domains: not a schema default, like <see cref="DrainSeconds"/>.</summary>
    public const bool PortTls = true;

    /// <summary>database.backup.retain: not a schema default, like <see cref="DrainSeconds"/>.</summary>
    public const int BackupRetain = 7;

    /// <summary>database.backup.path: not a schema default, like <see cref="DrainSeconds"/>.</summary>
    public const string BackupPath = "/var/backups/skiff";

    /// <summary>spec.app.build.context: the repository's whole tree.</summary>
    public const string BuildContext = ".";

    /// <summary>spec.app.build.dockerfile, relative to the context.</summary>
    public const string BuildDockerfile = "Dockerfile";

    // ImageGCPolicy (also the built-in policy's settings)

    public const int HighThresholdPercent = 85;
    public const int LowThresholdPercent = 80;
    public const string MinimumAge = "1h";
    public const int RetainPerRepository = 3;
    public const bool PruneBuildCache = false;
    public const string Interval = "10m";
    public const bool DryRun = false;

    private static readonly ConcurrentDictionary<Type, Shape> Shapes = new();

    public static AppDeploymentSpec Apply(AppDeploymentSpec spec)
    {
        var s = ApiJson.Clone(spec);
        s.Rollout ??= new RolloutSpec();
        if (s.Database is { } db)
        {
            db.Image ??= PostgresImage;
            db.Storage ??= new StorageSpec();
        }

        if (s.Cache is { } cache)
        {
            cache.Image ??= RedisImage;
            cache.Storage ??= new StorageSpec();
        }

        FillSchemaDefaults(s);
        return s;
    }

    public static ImageGCPolicySpec Apply(ImageGCPolicySpec spec)
    {
        var s = ApiJson.Clone(spec);
        s.Nodes ??= [];
        s.Keep ??= [];
        FillSchemaDefaults(s);
        return s;
    }

    /// <summary>Sets every unset field that declares a <see cref="SchemaDefaultAttribute"/>, in every object present below <paramref name="node"/>.</summary>
    private static void FillSchemaDefaults(object node)
    {
        var shape = Shapes.GetOrAdd(node.GetType(), Shape.Of);
        foreach (var (property, value) in shape.Declared)
        {
            if (property.GetValue(node) is null)
            {
                property.SetValue(node, value);
            }
        }

        foreach (var property in shape.Children)
        {
            switch (property.GetValue(node))
            {
                case IEnumerable items:
                    foreach (var item in items)
                    {
                        if (item is not null)
                        {
                            FillSchemaDefaults(item);
                        }
                    }

                    break;
                case { } child:
                    FillSchemaDefaults(child);
                    break;
            }
        }
    }

    /// <summary>The defaulted fields of an API type, and the properties that hold API objects (or lists of them).</summary>
    private sealed record Shape(IReadOnlyList<(PropertyInfo Property, object Value)> Declared, IReadOnlyList<PropertyInfo> Children)
    {
        public static Shape Of(Type type)
        {
            var properties = type.GetProperties(BindingFlags.Public | BindingFlags.Instance);
            var defaults = new List<(PropertyInfo, object)>();
            foreach (var property in properties)
            {
                if (property.GetCustomAttribute<SchemaDefaultAttribute>() is not { } d)
                {
                    continue;
                }

                var target = Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType;
                if (d.Value.GetType() != target || (property.PropertyType.IsValueType && Nullable.GetUnderlyingType(property.PropertyType) is null))
                {
                    // A programming error in the API types, found by the first Apply (and by DefaultsTests).
                    throw new InvalidOperationException(
                        $"{type.Name}.{property.Name}: [SchemaDefault] must be a {target.Name} on a nullable property, got {d.Value.GetType().Name}");
                }

                defaults.Add((property, d.Value));
            }

            var children = properties.Where(p => p.CanWrite && (IsApiObject(p.PropertyType)
                || (p.PropertyType.IsGenericType && p.PropertyType.GetGenericTypeDefinition() == typeof(List<>) && IsApiObject(p.PropertyType.GetGenericArguments()[0])))).ToList();
            return new Shape(defaults, children);
        }

        private static bool IsApiObject(Type type) => type.IsClass && type != typeof(string) && type.Namespace == typeof(Defaults).Namespace;
    }
}
