using System.Globalization;
using k8s;
using k8s.Models;
using Skiff.Api;
using Skiff.Reconcile;
using Skiff.Validation;
using KubeIntOrString = k8s.Models.IntOrString;

namespace Skiff.KubeRender;

/// <summary>What the renderer needs from outside the spec; resolved by the caller, never generated here.</summary>
/// <param name="Revision">The revision the app's pod template and the migration Job belong to.</param>
/// <param name="Image">The image of that revision (a rollback passes the last good one); null: spec.app.image.</param>
/// <param name="Database">The stack's database credentials, required when the spec has a database.</param>
public sealed record RenderInputs(long Revision, string? Image = null, DatabaseCredentials? Database = null);

/// <summary>The native objects of one AppDeployment (DESIGN §8); absent parts are null.</summary>
public sealed record KubeObjects(
    V1Deployment Deployment,
    V1Service? AppService,
    V1Job? MigrationJob,
    V1Secret? DatabaseSecret,
    V1StatefulSet? Database,
    V1Service? DatabaseService,
    V1StatefulSet? Cache,
    V1Service? CacheService,
    IReadOnlyList<V1NetworkPolicy> NetworkPolicies)
{
    /// <summary>Every object, in the order they can be applied: Secret, data services, policies, migration, app.</summary>
    public IEnumerable<IKubernetesObject<V1ObjectMeta>> All()
    {
        IKubernetesObject<V1ObjectMeta>?[] ordered =
            [DatabaseSecret, DatabaseService, Database, CacheService, Cache, .. NetworkPolicies, MigrationJob, AppService, Deployment];
        return ordered.OfType<IKubernetesObject<V1ObjectMeta>>();
    }
}

/// <summary>
/// Renders an AppDeployment with <c>runtime: kubernetes</c> into native Kubernetes objects (DESIGN §8): pure, no I/O,
/// the same input always gives the same objects. <c>Skiff.KubeRuntime</c> applies them (docs/KUBERNETES-RUNTIME.md).
/// </summary>
/// <remarks>
/// Environment, probes, images and ports follow <see cref="DesiredStack"/> (the Docker target), with Kubernetes'
/// own mechanisms where it has them: secretKeyRef instead of resolved values, a readiness probe instead of the
/// operator's health checks, Service names instead of network aliases.
/// </remarks>
public static class KubeRenderer
{
    /// <summary>The app.kubernetes.io/managed-by value.</summary>
    public const string ManagedBy = "skiff";

    /// <summary>The PersistentVolumeClaim size when storage.size is not set (Docker treats it as advisory; Kubernetes needs one).</summary>
    public const string DefaultStorageSize = "1Gi";

    /// <summary>How long a finished migration Job stays for its logs and status.</summary>
    public const int MigrationJobTtlSeconds = 3600;

    /// <summary>The uid and gid of the official postgres and redis images' users.</summary>
    public const long DataUser = 999;

    public const int PostgresPort = 5432;
    public const int RedisPort = 6379;

    /// <summary>Where PostgreSQL keeps its data: a folder inside the volume, since a volume's root may hold lost+found.</summary>
    public const string PgData = "/var/lib/postgresql/data/pgdata";

    /// <summary>The keys of the <c>NAME-db</c> Secret, as the Kubernetes source writes them.</summary>
    public const string UsernameKey = "username";
    public const string PasswordKey = "password";
    public const string DatabaseKey = "database";
    public const string UrlKey = "url";

    public static KubeObjects Render(AppDeployment resource, RenderInputs inputs)
    {
        ArgumentNullException.ThrowIfNull(resource);
        ArgumentNullException.ThrowIfNull(inputs);
        var spec = Defaults.Apply(resource.Spec);
        var image = inputs.Image ?? spec.App.Image;
        if (string.IsNullOrEmpty(image))
        {
            throw new ArgumentException("spec.app.build is not supported with runtime: kubernetes: set spec.app.image to an image in a registry the cluster can pull from", nameof(resource));
        }

        if (spec.Database is not null && inputs.Database is null)
        {
            throw new ArgumentException("the database credentials must be resolved before rendering a stack with a database", nameof(inputs));
        }

        var r = new Renderer(resource, spec, inputs, image);
        var policies = new List<V1NetworkPolicy>();
        if (spec.Database is not null)
        {
            policies.Add(r.DataPolicy(StackNames.DatabaseComponent, PostgresPort));
        }

        if (spec.Cache is not null)
        {
            policies.Add(r.DataPolicy(StackNames.CacheComponent, RedisPort));
        }

        return new KubeObjects(
            r.Deployment(),
            r.AppService(),
            r.MigrationJob(),
            r.DatabaseSecret(),
            r.DatabaseStatefulSet(),
            spec.Database is null ? null : r.HeadlessService(StackNames.DatabaseComponent, PostgresPort),
            r.CacheStatefulSet(),
            spec.Cache is null ? null : r.HeadlessService(StackNames.CacheComponent, RedisPort),
            policies);
    }

    /// <summary>The name of a component's objects: the app is NAME, the others NAME-COMPONENT.</summary>
    public static string ObjectName(string name, string component) =>
        component == StackNames.AppComponent ? name : $"{name}-{component}";

    /// <summary>The migration Job of a revision.</summary>
    public static string MigrationJobName(string name, long revision) =>
        $"{name}-{StackNames.MigrateComponent}-r{revision.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>DATABASE_URL inside the cluster: the database's headless Service instead of Docker's network alias.</summary>
    public static string DatabaseUrl(string name, DatabaseCredentials creds) =>
        $"postgres://{Uri.EscapeDataString(creds.Username)}:{Uri.EscapeDataString(creds.Password)}@{ObjectName(name, StackNames.DatabaseComponent)}:{PostgresPort.ToString(CultureInfo.InvariantCulture)}/{Uri.EscapeDataString(creds.Database)}";

    /// <summary>REDIS_URL inside the cluster; it holds no secret, so it is a literal value.</summary>
    public static string RedisUrl(string name) =>
        $"redis://{ObjectName(name, StackNames.CacheComponent)}:{RedisPort.ToString(CultureInfo.InvariantCulture)}/0";

    private sealed class Renderer(AppDeployment resource, AppDeploymentSpec spec, RenderInputs inputs, string image)
    {
        private const string Name = "app.kubernetes.io/name";
        private const string Instance = "app.kubernetes.io/instance";
        private const string Component = "app.kubernetes.io/component";
        private const string ManagedByLabel = "app.kubernetes.io/managed-by";

        private readonly string name = resource.Metadata.Name;
        private readonly string ns = resource.Metadata.NamespaceProperty ?? "default";

        private string Revision => inputs.Revision.ToString(CultureInfo.InvariantCulture);

        public V1Deployment Deployment()
        {
            var app = spec.App;
            var labels = Labels(StackNames.AppComponent);
            var podLabels = Labels(StackNames.AppComponent);
            podLabels[SkiffLabels.Revision] = Revision;
            var container = new V1Container
            {
                Name = StackNames.AppComponent,
                Image = image,
                ImagePullPolicy = app.ImagePullPolicy,
                Command = app.Command is { Count: > 0 } ? [.. app.Command] : null,
                Args = app.Args is { Count: > 0 } ? [.. app.Args] : null,
                Env = AppEnv(),
                Ports = app.Ports?.Select(p => new V1ContainerPort
                {
                    Name = p.Name,
                    ContainerPort = p.ContainerPort,
                    Protocol = "TCP",
                }).ToList(),
                ReadinessProbe = ReadinessProbe(),
                Resources = Resources(app.Resources),
                SecurityContext = AppSecurityContext(),
            };
            return new V1Deployment
            {
                ApiVersion = "apps/v1",
                Kind = "Deployment",
                Metadata = Meta(ObjectName(name, StackNames.AppComponent), labels, owned: true),
                Spec = new V1DeploymentSpec
                {
                    Replicas = 1,
                    Selector = new V1LabelSelector { MatchLabels = Selector(StackNames.AppComponent) },
                    Strategy = new V1DeploymentStrategy
                    {
                        Type = "RollingUpdate",
                        RollingUpdate = new V1RollingUpdateDeployment { MaxUnavailable = 0, MaxSurge = 1 },
                    },
                    MinReadySeconds = spec.Rollout!.MinReadySeconds,
                    ProgressDeadlineSeconds = spec.Rollout.ProgressDeadlineSeconds,
                    RevisionHistoryLimit = spec.Rollout.RevisionHistoryLimit,
                    Template = new V1PodTemplateSpec
                    {
                        Metadata = new V1ObjectMeta { Labels = podLabels },
                        Spec = PodSpec(container, "Always"),
                    },
                },
            };
        }

        public V1Service? AppService()
        {
            if (spec.App.Ports is not { Count: > 0 } ports)
            {
                return null;
            }

            return new V1Service
            {
                ApiVersion = "v1",
                Kind = "Service",
                Metadata = Meta(ObjectName(name, StackNames.AppComponent), Labels(StackNames.AppComponent), owned: true),
                Spec = new V1ServiceSpec
                {
                    Type = "ClusterIP",
                    Selector = Selector(StackNames.AppComponent),
                    Ports = ports.Select(p => new V1ServicePort
                    {
                        Name = p.Name ?? "p" + p.ContainerPort.ToString(CultureInfo.InvariantCulture),
                        Port = p.ContainerPort,
                        TargetPort = p.ContainerPort,
                        Protocol = "TCP",
                    }).ToList(),
                },
            };
        }

        public V1Job? MigrationJob()
        {
            if (spec.App.Migrate is not { } migrate)
            {
                return null;
            }

            var labels = Labels(StackNames.MigrateComponent);
            labels[SkiffLabels.Revision] = Revision;
            var container = new V1Container
            {
                Name = StackNames.MigrateComponent,
                Image = image,
                ImagePullPolicy = spec.App.ImagePullPolicy,
                Command = [.. migrate.Command],
                Env = AppEnv(),
                Resources = Resources(spec.App.Resources),
                SecurityContext = AppSecurityContext(),
            };
            return new V1Job
            {
                ApiVersion = "batch/v1",
                Kind = "Job",
                Metadata = Meta(MigrationJobName(name, inputs.Revision), labels, owned: true),
                Spec = new V1JobSpec
                {
                    BackoffLimit = 0,
                    ActiveDeadlineSeconds = migrate.TimeoutSeconds ?? Defaults.MigrateTimeoutSeconds,
                    TtlSecondsAfterFinished = MigrationJobTtlSeconds,
                    Template = new V1PodTemplateSpec
                    {
                        Metadata = new V1ObjectMeta { Labels = new Dictionary<string, string>(labels) },
                        Spec = PodSpec(container, "Never"),
                    },
                },
            };
        }

        public V1Secret? DatabaseSecret()
        {
            if (spec.Database is not { } db || inputs.Database is not { } creds)
            {
                return null;
            }

            var meta = Meta($"{name}-db", Labels(StackNames.DatabaseComponent), owned: db.Storage?.ReclaimPolicy == ReclaimPolicies.Delete);
            meta.Annotations = new Dictionary<string, string>
            {
                ["skiff.dev/note"] = "Generated database credentials. Kept after the AppDeployment is deleted unless reclaimPolicy is Delete.",
            };
            return new V1Secret
            {
                ApiVersion = "v1",
                Kind = "Secret",
                Type = "Opaque",
                Metadata = meta,
                Data = new Dictionary<string, byte[]>
                {
                    [UsernameKey] = System.Text.Encoding.UTF8.GetBytes(creds.Username),
                    [PasswordKey] = System.Text.Encoding.UTF8.GetBytes(creds.Password),
                    [DatabaseKey] = System.Text.Encoding.UTF8.GetBytes(creds.Database),
                    [UrlKey] = System.Text.Encoding.UTF8.GetBytes(DatabaseUrl(name, creds)),
                },
            };
        }

        public V1StatefulSet? DatabaseStatefulSet()
        {
            if (spec.Database is not { } db)
            {
                return null;
            }

            var secret = $"{name}-db";
            var container = new V1Container
            {
                Name = StackNames.DatabaseComponent,
                Image = db.Image,
                Env =
                [
                    SecretEnv("POSTGRES_USER", secret, UsernameKey),
                    SecretEnv("POSTGRES_PASSWORD", secret, PasswordKey),
                    SecretEnv("POSTGRES_DB", secret, DatabaseKey),
                    new V1EnvVar { Name = "PGDATA", Value = PgData },
                ],
                Ports = [new V1ContainerPort { Name = "postgres", ContainerPort = PostgresPort, Protocol = "TCP" }],
                ReadinessProbe = new V1Probe
                {
                    Exec = new V1ExecAction { Command = ["sh", "-c", "pg_isready -h 127.0.0.1 -U \"$POSTGRES_USER\" -d \"$POSTGRES_DB\""] },
                    PeriodSeconds = 5,
                    TimeoutSeconds = 5,
                    FailureThreshold = 5,
                },
                VolumeMounts = [new V1VolumeMount { Name = "data", MountPath = "/var/lib/postgresql/data" }],
                Resources = Resources(db.Resources),
                SecurityContext = DataSecurityContext(),
            };
            return StatefulSet(StackNames.DatabaseComponent, container, db.Storage, persistent: true, terminationGraceSeconds: 60);
        }

        public V1StatefulSet? CacheStatefulSet()
        {
            if (spec.Cache is not { } cache)
            {
                return null;
            }

            // The same redis-server arguments as the Docker target.
            var persistent = cache.Persistence is PersistenceModes.Aof or PersistenceModes.Rdb;
            var args = DesiredStack.RedisCommand(cache);

            var container = new V1Container
            {
                Name = StackNames.CacheComponent,
                Image = cache.Image,
                Args = args,
                Ports = [new V1ContainerPort { Name = "redis", ContainerPort = RedisPort, Protocol = "TCP" }],
                ReadinessProbe = new V1Probe
                {
                    Exec = new V1ExecAction { Command = ["redis-cli", "ping"] },
                    PeriodSeconds = 5,
                    TimeoutSeconds = 5,
                    FailureThreshold = 5,
                },
                VolumeMounts = persistent ? [new V1VolumeMount { Name = "data", MountPath = "/data" }] : null,
                Resources = Resources(cache.Resources),
                SecurityContext = DataSecurityContext(),
            };
            return StatefulSet(StackNames.CacheComponent, container, cache.Storage, persistent, terminationGraceSeconds: 30);
        }

        public V1Service HeadlessService(string component, int port) => new()
        {
            ApiVersion = "v1",
            Kind = "Service",
            Metadata = Meta(ObjectName(name, component), Labels(component), owned: true),
            Spec = new V1ServiceSpec
            {
                ClusterIP = "None",
                Selector = Selector(component),
                Ports = [new V1ServicePort { Name = component == StackNames.DatabaseComponent ? "postgres" : "redis", Port = port, TargetPort = port, Protocol = "TCP" }],
            },
        };

        /// <summary>Only the app's pods (and its migration Jobs', which run the app's image) reach a data component.</summary>
        public V1NetworkPolicy DataPolicy(string component, int port) => new()
        {
            ApiVersion = "networking.k8s.io/v1",
            Kind = "NetworkPolicy",
            Metadata = Meta(ObjectName(name, component), Labels(component), owned: true),
            Spec = new V1NetworkPolicySpec
            {
                PodSelector = new V1LabelSelector { MatchLabels = Selector(component) },
                PolicyTypes = ["Ingress"],
                Ingress =
                [
                    new V1NetworkPolicyIngressRule
                    {
                        FromProperty =
                        [
                            new V1NetworkPolicyPeer
                            {
                                PodSelector = new V1LabelSelector
                                {
                                    MatchLabels = new Dictionary<string, string> { [Instance] = name },
                                    MatchExpressions =
                                    [
                                        new V1LabelSelectorRequirement
                                        {
                                            Key = Component,
                                            OperatorProperty = "In",
                                            Values = [StackNames.AppComponent, StackNames.MigrateComponent],
                                        },
                                    ],
                                },
                            },
                        ],
                        Ports = [new V1NetworkPolicyPort { Port = port, Protocol = "TCP" }],
                    },
                ],
            },
        };

        private V1StatefulSet StatefulSet(string component, V1Container container, StorageSpec? storage, bool persistent, long terminationGraceSeconds)
        {
            var retain = (storage?.ReclaimPolicy ?? Defaults.ReclaimPolicy) == ReclaimPolicies.Retain;
            var pod = PodSpec(container, "Always");
            pod.TerminationGracePeriodSeconds = terminationGraceSeconds;
            pod.SecurityContext = new V1PodSecurityContext
            {
                RunAsNonRoot = true,
                RunAsUser = DataUser,
                RunAsGroup = DataUser,
                FsGroup = DataUser,
                SeccompProfile = new V1SeccompProfile { Type = "RuntimeDefault" },
            };
            return new V1StatefulSet
            {
                ApiVersion = "apps/v1",
                Kind = "StatefulSet",
                Metadata = Meta(ObjectName(name, component), Labels(component), owned: true),
                Spec = new V1StatefulSetSpec
                {
                    Replicas = 1,
                    ServiceName = ObjectName(name, component),
                    Selector = new V1LabelSelector { MatchLabels = Selector(component) },
                    Template = new V1PodTemplateSpec
                    {
                        Metadata = new V1ObjectMeta { Labels = Labels(component) },
                        Spec = pod,
                    },
                    // The claims carry no owner reference; whether they outlive the StatefulSet follows reclaimPolicy.
                    PersistentVolumeClaimRetentionPolicy = persistent
                        ? new V1StatefulSetPersistentVolumeClaimRetentionPolicy
                        {
                            WhenDeleted = retain ? "Retain" : "Delete",
                            WhenScaled = "Retain",
                        }
                        : null,
                    VolumeClaimTemplates = persistent
                        ?
                        [
                            new V1PersistentVolumeClaim
                            {
                                ApiVersion = "v1",
                                Kind = "PersistentVolumeClaim",
                                Metadata = new V1ObjectMeta { Name = "data", Labels = Labels(component) },
                                Spec = new V1PersistentVolumeClaimSpec
                                {
                                    AccessModes = ["ReadWriteOnce"],
                                    Resources = new V1VolumeResourceRequirements
                                    {
                                        Requests = new Dictionary<string, ResourceQuantity>
                                        {
                                            ["storage"] = new(storage?.Size ?? DefaultStorageSize),
                                        },
                                    },
                                },
                            },
                        ]
                        : null,
                },
            };
        }

        private V1PodSpec PodSpec(V1Container container, string restartPolicy) => new()
        {
            Containers = [container],
            RestartPolicy = restartPolicy,
            EnableServiceLinks = false,
            AutomountServiceAccountToken = false,
            ImagePullSecrets = spec.App.ImagePullSecret is { } pull ? [new V1LocalObjectReference { Name = pull }] : null,
            NodeSelector = spec.Node is { } node ? new Dictionary<string, string> { ["kubernetes.io/hostname"] = node } : null,
        };

        /// <summary>
        /// The app's image decides its user (the spec says nothing about it, so runAsNonRoot is not forced); it never
        /// gains privileges. The spec has no read-only root filesystem field yet.
        /// </summary>
        private static V1SecurityContext AppSecurityContext() => new()
        {
            AllowPrivilegeEscalation = false,
            SeccompProfile = new V1SeccompProfile { Type = "RuntimeDefault" },
        };

        private static V1SecurityContext DataSecurityContext() => new()
        {
            AllowPrivilegeEscalation = false,
            Capabilities = new V1Capabilities { Drop = ["ALL"] },
        };

        private V1Probe? ReadinessProbe()
        {
            if (spec.App.HealthCheck is not { } hc)
            {
                return null;
            }

            return new V1Probe
            {
                HttpGet = new V1HTTPGetAction
                {
                    Path = hc.Http.Path,
                    Port = hc.Http.Port.IntValue is { } number ? (KubeIntOrString)number : (KubeIntOrString)hc.Http.Port.StringValue!,
                },
                PeriodSeconds = hc.PeriodSeconds,
                FailureThreshold = hc.FailureThreshold,
            };
        }

        /// <summary>As the Docker target's app environment: DATABASE_URL and REDIS_URL unless the spec sets them, then the spec's.</summary>
        private List<V1EnvVar>? AppEnv()
        {
            var env = new List<V1EnvVar>();
            var userNames = new HashSet<string>(spec.App.Env?.Select(e => e.Name) ?? [], StringComparer.Ordinal);
            if (spec.Database is not null && !userNames.Contains("DATABASE_URL"))
            {
                env.Add(SecretEnv("DATABASE_URL", $"{name}-db", UrlKey));
            }

            if (spec.Cache is not null && !userNames.Contains("REDIS_URL"))
            {
                env.Add(new V1EnvVar { Name = "REDIS_URL", Value = RedisUrl(name) });
            }

            foreach (var e in spec.App.Env ?? [])
            {
                env.Add(e.ValueFrom is { } from
                    ? SecretEnv(e.Name, from.SecretKeyRef.Name, from.SecretKeyRef.Key)
                    : new V1EnvVar { Name = e.Name, Value = e.Value ?? "" });
            }

            return env.Count == 0 ? null : env;
        }

        private static V1EnvVar SecretEnv(string variable, string secret, string key) => new()
        {
            Name = variable,
            ValueFrom = new V1EnvVarSource { SecretKeyRef = new V1SecretKeySelector { Name = secret, Key = key } },
        };

        private static V1ResourceRequirements? Resources(ResourceLimits? limits)
        {
            var map = new Dictionary<string, ResourceQuantity>();
            if (limits?.Memory is { } memory)
            {
                map["memory"] = new ResourceQuantity(memory);
            }

            if (limits?.Cpu is { } cpu)
            {
                map["cpu"] = new ResourceQuantity(cpu);
            }

            return map.Count == 0 ? null : new V1ResourceRequirements { Limits = map };
        }

        /// <summary>
        /// The recommended labels and Skiff's. dev.skiff.app is the resource's name, not NAMESPACE/NAME as on Docker:
        /// a label value cannot hold a slash, and the objects live in the resource's namespace.
        /// </summary>
        private Dictionary<string, string> Labels(string component) => new()
        {
            [Name] = component switch
            {
                StackNames.DatabaseComponent => "postgresql",
                StackNames.CacheComponent => "redis",
                _ => name,
            },
            [Instance] = name,
            [Component] = component,
            [ManagedByLabel] = ManagedBy,
            [SkiffLabels.ManagedBy] = SkiffLabels.ManagedByValue,
            [SkiffLabels.App] = name,
            [SkiffLabels.Component] = component,
        };

        /// <summary>The labels a workload selects its pods by; never changes for a stack, as selectors are immutable.</summary>
        private Dictionary<string, string> Selector(string component) => new()
        {
            [Instance] = name,
            [Component] = component,
        };

        private V1ObjectMeta Meta(string objectName, Dictionary<string, string> labels, bool owned) => new()
        {
            Name = objectName,
            NamespaceProperty = ns,
            Labels = labels,
            OwnerReferences = owned
                ?
                [
                    new V1OwnerReference
                    {
                        ApiVersion = SkiffApi.ApiVersion,
                        Kind = AppDeployment.KindName,
                        Name = name,
                        Uid = resource.Metadata.Uid ?? "",
                        Controller = true,
                        BlockOwnerDeletion = true,
                    },
                ]
                : null,
        };
    }
}
