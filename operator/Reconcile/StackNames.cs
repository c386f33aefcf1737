using System.Globalization;

namespace Skiff.Reconcile;

/// <summary>
/// Names and labels of a stack's Docker objects (DESIGN §3). <c>_</c> cannot occur in Kubernetes
/// names, so no two stacks' names collide.
/// </summary>
public sealed record StackNames(string Namespace, string Name)
{
    public const string Prefix = "skiff";
    public const string AppComponent = "app";
    public const string DatabaseComponent = "database";
    public const string CacheComponent = "cache";
    public const string MigrateComponent = "migrate";

    /// <summary>The network alias of the database container inside the stack's network.</summary>
    public const string DatabaseHost = "database";

    /// <summary>The network alias of the cache container inside the stack's network.</summary>
    public const string CacheHost = "cache";

    public string Key => $"{Namespace}/{Name}";

    public string Base => $"{Prefix}_{Namespace}_{Name}";

    public string Network => Base;

    public string DatabaseVolume => $"{Base}_database";

    public string CacheVolume => $"{Base}_cache";

    public string DatabaseContainer => $"{Base}_database";

    public string CacheContainer => $"{Base}_cache";

    public string AppContainer(long revision) => $"{Base}_app_r{revision.ToString(CultureInfo.InvariantCulture)}";

    public string MigrateContainer(long revision) => $"{Base}_migrate_r{revision.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>The Secret holding the generated database credentials.</summary>
    public string DatabaseSecret => $"{Name}-db";
}

/// <summary>Label keys; labels are the source of truth for ownership.</summary>
public static class SkiffLabels
{
    public const string ManagedBy = "dev.skiff.managed-by";
    public const string ManagedByValue = "skiff";
    public const string App = "dev.skiff.app";
    public const string Component = "dev.skiff.component";
    public const string Revision = "dev.skiff.revision";
    public const string SpecHash = "dev.skiff.spec-hash";
    public const string Node = "dev.skiff.node";

    /// <summary>On the node proxy's container: the routes folder it follows (the state folder's <c>proxy/</c>).</summary>
    public const string ProxyRoutes = "dev.skiff.proxy-routes";
    public const string Source = "dev.skiff.source";

    /// <summary>The image reference the app container was created from, as the spec wrote it.</summary>
    public const string ImageRef = "dev.skiff.image";

    /// <summary>Marks an app container recreated from the last good image after a failed rollout.</summary>
    public const string Rollback = "dev.skiff.rollback";

    /// <summary>Set on a volume Skiff adopted (database.volume): used, never deleted.</summary>
    public const string Adopted = "dev.skiff.adopted";

    /// <summary>
    /// On an app container that has host ports: who publishes them, <see cref="RoutingProxy"/> (the node proxy routes to
    /// it) or <see cref="RoutingDirect"/> (Docker publishes them; also when absent, as before the proxy existed).
    /// </summary>
    public const string Routing = "dev.skiff.routing";
    public const string RoutingProxy = "proxy";
    public const string RoutingDirect = "direct";

    /// <summary>On a migration container: which run of that revision's migration it is (1 when absent).</summary>
    public const string Attempt = "dev.skiff.attempt";
}
