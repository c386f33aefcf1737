using System.Reflection;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using Skiff.Api;
using Skiff.Cli;
using Skiff.Hosting;
using Skiff.ImageGC;
using Skiff.Proxy;
using Skiff.Reconcile;
using Skiff.Sources.Git;
using Skiff.State;

namespace Skiff.Tests.State;

/// <summary>
/// The rest of what Skiff writes as JSON moved from reflection (often over anonymous objects) to metadata generated at
/// compile time, so that a NativeAOT build needs no code it could not compile. What is written must not change:
/// a container's configuration hash (a change would replace every database and cache container on upgrade), the
/// routes file, the GC report, <c>/status</c> and the CLI's JSON. Each is compared with what reflection wrote.
/// </summary>
public class GeneratedShapesJsonTests
{
    private static readonly JsonSerializerOptions HashReflection = new()
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        TypeInfoResolver = new DefaultJsonTypeInfoResolver(),
    };

    private static readonly ResourceLimits Limits = new() { Cpu = "500m", Memory = "256Mi" };

    [Fact]
    public void The_database_cache_and_proxy_config_hashes_are_those_of_the_anonymous_objects_they_replace()
    {
        string Reflected(object value) => SpecHash.OfNode(JsonSerializer.SerializeToNode(value, value.GetType(), HashReflection));

        Assert.Equal(
            Reflected(new { Engine = "postgres", Image = (string?)null, Name = "app", User = "app", volume = "skiff_default_api_db", Resources = Limits, layout = 1 }),
            SpecHash.Compute(new DatabaseConfigHash("postgres", null, "app", "app", "skiff_default_api_db", Limits, Layout: 1)));
        Assert.Equal(
            Reflected(new { Engine = "postgres", Image = "postgres:16", Name = "db", User = "u", volume = "adopted", Resources = (ResourceLimits?)null, layout = 1 }),
            SpecHash.Compute(new DatabaseConfigHash("postgres", "postgres:16", "db", "u", "adopted", null, Layout: 1)));
        Assert.Equal(
            Reflected(new { Engine = "redis", Image = "redis:7", Persistence = "aof", MaxMemory = "64mb", Resources = Limits, layout = 1 }),
            SpecHash.Compute(new CacheConfigHash("redis", "redis:7", "aof", "64mb", Limits, Layout: 1)));
        IReadOnlyList<string> cmd = ["proxy", "--routes", "/routes/routes.json"];
        Assert.Equal(
            Reflected(new { image = "skiff:1", cmd, folder = "/var/lib/skiff/proxy" }),
            SpecHash.Compute(new ProxyConfigHash("skiff:1", cmd, "/var/lib/skiff/proxy")));
        Assert.Equal(Reflected("2026-12-05T10:00:00Z|3"), SpecHash.Compute("2026-12-05T10:00:00Z|3"));

        // And the hash sees every field: a different value is a different hash.
        Assert.NotEqual(
            SpecHash.Compute(new CacheConfigHash("redis", "redis:7", "aof", "64mb", Limits, Layout: 1)),
            SpecHash.Compute(new CacheConfigHash("redis", "redis:7", "rdb", "64mb", Limits, Layout: 1)));
    }

    [Fact]
    public void The_routes_file_the_gc_report_status_and_backup_list_are_written_as_reflection_wrote_them()
    {
        var indented = new JsonSerializerOptions { WriteIndented = true, TypeInfoResolver = new DefaultJsonTypeInfoResolver() };
        var routes = new ProxyRoutes(ProxyRoutes.CurrentVersion, [
            new ProxyListener("127.0.0.1:8080", ProxyProtocol.Http, "default/api", "http", 3, "10.200.0.2:80"),
            new ProxyListener("0.0.0.0:6380", ProxyProtocol.Tcp, "default/bot", "redis", 1, "10.200.0.34:6379"),
        ])
        {
            Shared = new ProxySharedListeners("0.0.0.0:80", "0.0.0.0:443"),
            Domains = [new ProxyDomain("api.example.com", true, "default/api", "http", 3, "10.200.0.2:80")],
        };
        Assert.Equal(JsonSerializer.Serialize(routes, indented), JsonSerializer.Serialize(routes, ProxyJsonContext.Indented.ProxyRoutes));
        var written = Path.Combine(Path.GetTempPath(), $"skiff-routes-{Guid.NewGuid():N}.json");
        try
        {
            ProxyRoutes.Write(written, routes);
            Assert.Equal(JsonSerializer.Serialize(routes, indented) + "\n", File.ReadAllText(written));
            Assert.Equal(routes.Fingerprint, ProxyRoutes.Read(written).Fingerprint);
        }
        finally
        {
            File.Delete(written);
        }

        var report = new GcNodeReport
        {
            Node = "vps-1", Policy = "default", Trigger = "disk", Result = "success", LastRun = DateTimeOffset.UnixEpoch, NextRun = DateTimeOffset.UnixEpoch.AddHours(1),
            DiskUsagePercent = 71.5, ImagesRemoved = 2, BytesReclaimed = 1 << 20, ProtectedImages = 3, DiskPressure = true, Message = "removed 2 images",
            Removed = [new GcReportedImage("sha256:1", "app:1", "unused", "older than 24h")], PolicyWarning = "minimumAge is short",
        };
        Assert.Equal(JsonSerializer.Serialize(report, indented), JsonSerializer.Serialize(report, GcJsonContext.Default.GcNodeReport));

        var web = new JsonSerializerOptions(JsonSerializerDefaults.Web) { WriteIndented = true, TypeInfoResolver = new DefaultJsonTypeInfoResolver() };
        IReadOnlyList<StatusRecord> resources = [new StatusRecord { Namespace = "default", Name = "api" }];
        IReadOnlyList<string> problems = ["a.yaml: spec.app.image: required"];
        var git = new GitSourceStatus("https://example.com/r.git", "main", "deploy", "abc", "subject", DateTimeOffset.UnixEpoch, null,
            new GitSourceError("Invalid", "bad", "abc", DateTimeOffset.UnixEpoch, ["x"]));
        Assert.Equal(
            JsonSerializer.Serialize(new { source = "/srv", node = "vps-1", resources, problems, imageGc = report }, web),
            JsonSerializer.Serialize(new FolderOperatorStatus("/srv", "vps-1", resources, problems, report), OperatorStatusJson.Default.FolderOperatorStatus));
        Assert.Equal(
            JsonSerializer.Serialize(new { source = "git:r@abc", node = "vps-1", resources, problems, imageGc = (GcNodeReport?)null, git }, web),
            JsonSerializer.Serialize(new FolderOperatorStatus("git:r@abc", "vps-1", resources, problems, null) { Git = git }, OperatorStatusJson.Default.FolderOperatorStatus));

        var time = new DateTimeOffset(2026, 12, 5, 3, 0, 0, TimeSpan.Zero);
        Assert.Equal(
            JsonSerializer.Serialize(new[] { new { time, file = "/b/api-1.sql.gz", bytes = 42L } }, indented),
            JsonSerializer.Serialize([new BackupListEntry(time, "/b/api-1.sql.gz", 42)], CliJson.Default.ListBackupListEntry));
    }

    [Fact]
    public void Skiffs_own_resources_decode_from_generated_metadata_once_registered()
    {
        // Registered before any test ran (KubeJsonRegistration), as skiff's Program.cs does first thing.
        var options = (JsonSerializerOptions)typeof(k8s.KubernetesJson).GetField("JsonSerializerOptions", BindingFlags.NonPublic | BindingFlags.Static)!.GetValue(null)!;
        Assert.Same(ApiJsonContext.Default, options.GetTypeInfo(typeof(AppDeployment)).OriginatingResolver);
        Assert.Same(ApiJsonContext.Default, options.GetTypeInfo(typeof(ImageGCPolicy)).OriginatingResolver);
        Assert.Same(Skiff.Sources.Kubernetes.ResourceListJson.Default, options.GetTypeInfo(typeof(Skiff.Runtime.ResourceList<AppDeployment>)).OriginatingResolver);
        Assert.True(Skiff.Sources.Kubernetes.KubeJson.Register());

        // Watch events: generated, and the enum decoded by its own generic converter, not the options' reflective one.
        Assert.DoesNotContain(options.Converters, c => c.GetType() == typeof(JsonStringEnumConverter));
        Assert.Same(Skiff.Sources.Kubernetes.ResourceListJson.Default, options.GetTypeInfo(typeof(k8s.Watcher<object>.WatchEvent)).OriginatingResolver);
        var added = k8s.KubernetesJson.Deserialize<k8s.Watcher<k8s.KubernetesObject>.WatchEvent>(
            """{"type":"ADDED","object":{"apiVersion":"skiff.dev/v1alpha1","kind":"AppDeployment"}}""");
        Assert.Equal(k8s.WatchEventType.Added, added.Type);
        Assert.Equal("AppDeployment", added.Object.Kind);
        Assert.Equal(k8s.WatchEventType.Deleted, k8s.KubernetesJson.Deserialize<k8s.Watcher<object>.WatchEvent>("""{"type":"DELETED","object":{}}""").Type);

        var resource = k8s.KubernetesJson.Deserialize<AppDeployment>(
            """{"apiVersion":"skiff.dev/v1alpha1","kind":"AppDeployment","metadata":{"name":"api","namespace":"default","creationTimestamp":"2026-12-05T10:00:00Z"},"spec":{"app":{"image":"app:1"}}}""");
        Assert.Equal("app:1", resource.Spec.App.Image);
        Assert.Equal(new DateTime(2026, 12, 5, 10, 0, 0, DateTimeKind.Utc), resource.Metadata.CreationTimestamp);
        var list = k8s.KubernetesJson.Deserialize<Skiff.Runtime.ResourceList<ImageGCPolicy>>(
            """{"apiVersion":"skiff.dev/v1alpha1","kind":"ImageGCPolicyList","metadata":{"resourceVersion":"7"},"items":[{"metadata":{"name":"default"},"spec":{}}]}""");
        Assert.Equal("7", list.Metadata.ResourceVersion);
        Assert.Equal("default", Assert.Single(list.Items).Metadata.Name);
    }
}
