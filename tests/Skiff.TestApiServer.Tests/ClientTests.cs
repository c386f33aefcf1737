using System.Net;
using System.Text.Json.Nodes;
using k8s;
using k8s.Autorest;
using k8s.Models;

namespace Skiff.TestApiServer.Tests;

/// <summary>KubernetesClient 21 against the test API server: what the operator's controller runtime relies on.</summary>
public sealed class ClientTests : IAsyncLifetime
{
    private TestApiServer _server = null!;
    private Kubernetes _client = null!;

    public async Task InitializeAsync()
    {
        var options = TestCrds.Options();
        _server = await TestApiServer.StartAsync(new TestApiServerOptions { CrdPaths = options.CrdPaths, BookmarkInterval = TimeSpan.FromMilliseconds(200) });
        _client = _server.CreateClient();
    }

    public async Task DisposeAsync()
    {
        _client.Dispose();
        await _server.DisposeAsync();
    }

    private Task<AppDep> CreateAsync(AppDep obj) =>
        _client.CustomObjects.CreateNamespacedCustomObjectAsync<AppDep>(obj, Crd.Group, Crd.Version, "default", Crd.Plural);

#pragma warning disable CS0618 // KubernetesClient 21 has a typed watch of custom objects only in this obsolete form.
    private IAsyncEnumerable<(WatchEventType, AppDep)> WatchAsync(string? rv = null, bool bookmarks = false, int? timeoutSeconds = null, Action<Exception>? onError = null, CancellationToken ct = default) =>
        _client.CustomObjects.ListNamespacedCustomObjectWithHttpMessagesAsync(
                Crd.Group, Crd.Version, "default", Crd.Plural, allowWatchBookmarks: bookmarks, resourceVersion: rv, timeoutSeconds: timeoutSeconds, watch: true, cancellationToken: ct)
            .WatchAsync<AppDep, object>(onError, ct);
#pragma warning restore CS0618

    private Task<AppDep> GetAsync(string name) =>
        _client.CustomObjects.GetNamespacedCustomObjectAsync<AppDep>(Crd.Group, Crd.Version, "default", Crd.Plural, name);

    private Task<AppDep> MergePatchAsync(string name, string json, bool status = false)
    {
        var patch = new V1Patch(json, V1Patch.PatchType.MergePatch);
        return status
            ? _client.CustomObjects.PatchNamespacedCustomObjectStatusAsync<AppDep>(patch, Crd.Group, Crd.Version, "default", Crd.Plural, name)
            : _client.CustomObjects.PatchNamespacedCustomObjectAsync<AppDep>(patch, Crd.Group, Crd.Version, "default", Crd.Plural, name);
    }

    [Fact]
    public async Task List_then_watch_from_the_list_resourceVersion_gets_changes_and_bookmarks()
    {
        await CreateAsync(AppDep.New("a"));
        var list = await _client.CustomObjects.ListNamespacedCustomObjectAsync<CustomList>(Crd.Group, Crd.Version, "default", Crd.Plural);
        var listRv = list.Metadata.ResourceVersion;
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var events = new List<(WatchEventType Type, AppDep Obj)>();
        var watch = Task.Run(async () =>
        {
            await foreach (var (type, obj) in WatchAsync(listRv, bookmarks: true, ct: cts.Token))
            {
                lock (events)
                {
                    events.Add((type, obj));
                    if (events.Any(e => e.Type == WatchEventType.Deleted) && events.Count(e => e.Type == WatchEventType.Bookmark) >= 1
                        && events.FindLastIndex(e => e.Type == WatchEventType.Bookmark) > events.FindIndex(e => e.Type == WatchEventType.Deleted))
                    {
                        return;
                    }
                }
            }
        }, cts.Token);

        await CreateAsync(AppDep.New("b"));
        await MergePatchAsync("a", """{"spec":{"app":{"image":"shop:2"}}}""");
        await _client.CustomObjects.DeleteNamespacedCustomObjectAsync(Crd.Group, Crd.Version, "default", Crd.Plural, "b");
        await watch;

        var changes = events.Where(e => e.Type != WatchEventType.Bookmark).Select(e => (e.Type, e.Obj.Metadata.Name)).ToList();
        Assert.Equal([(WatchEventType.Added, "b"), (WatchEventType.Modified, "a"), (WatchEventType.Deleted, "b")], changes);
        var bookmark = events.Last(e => e.Type == WatchEventType.Bookmark).Obj;
        Assert.Equal("AppDeployment", bookmark.Kind);
        Assert.True(long.Parse(bookmark.Metadata.ResourceVersion) >= long.Parse(events.Last(e => e.Type == WatchEventType.Deleted).Obj.Metadata.ResourceVersion));
        Assert.Null(bookmark.Spec);
    }

    [Fact]
    public async Task Watch_from_an_expired_resourceVersion_reports_410_Expired()
    {
        await CreateAsync(AppDep.New("a"));
        await CreateAsync(AppDep.New("b"));
        _server.Faults.ExpireResourceVersionsBelow(_server.ResourceVersion);
        Exception? error = null;

        await foreach (var _ in WatchAsync("1", onError: e => error = e))
        {
            Assert.Fail("no event expected");
        }

        var ex = Assert.IsType<KubernetesException>(error);
        Assert.Equal(410, ex.Status.Code);
        Assert.Equal("Expired", ex.Status.Reason);
    }

    [Fact]
    public async Task Replace_with_a_stale_resourceVersion_is_a_409_conflict()
    {
        var created = await CreateAsync(AppDep.New("shop"));
        await MergePatchAsync("shop", """{"spec":{"app":{"image":"shop:2"}}}""");
        created.Spec!["app"]!["image"] = "shop:3";

        var ex = await Assert.ThrowsAsync<HttpOperationException>(() =>
            _client.CustomObjects.ReplaceNamespacedCustomObjectAsync<AppDep>(created, Crd.Group, Crd.Version, "default", Crd.Plural, "shop"));

        Assert.Equal(HttpStatusCode.Conflict, ex.Response.StatusCode);
        Assert.Equal(
            """{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Operation cannot be fulfilled on appdeployments.skiff.dev \"shop\": the object has been modified; please apply your changes to the latest version and try again","reason":"Conflict","details":{"name":"shop","group":"skiff.dev","kind":"appdeployments"},"code":409}""",
            ex.Response.Content);
    }

    [Fact]
    public async Task Replace_with_the_current_resourceVersion_succeeds_and_bumps_it()
    {
        var created = await CreateAsync(AppDep.New("shop"));
        created.Spec!["app"]!["image"] = "shop:2";

        var replaced = await _client.CustomObjects.ReplaceNamespacedCustomObjectAsync<AppDep>(created, Crd.Group, Crd.Version, "default", Crd.Plural, "shop");

        Assert.True(long.Parse(replaced.Metadata.ResourceVersion) > long.Parse(created.Metadata.ResourceVersion));
        Assert.Equal(2, replaced.Metadata.Generation);
    }

    [Fact]
    public async Task Generation_moves_only_with_spec_and_deletion()
    {
        var obj = await CreateAsync(AppDep.New("shop"));
        Assert.Equal(1, obj.Metadata.Generation);
        obj = await MergePatchAsync("shop", """{"metadata":{"labels":{"team":"a"},"annotations":{"note":"x"},"finalizers":["skiff.dev/cleanup"]}}""");
        Assert.Equal(1, obj.Metadata.Generation);
        obj = await MergePatchAsync("shop", """{"status":{"phase":"Ready","observedGeneration":1}}""", status: true);
        Assert.Equal(1, obj.Metadata.Generation);
        obj = await MergePatchAsync("shop", """{"spec":{"app":{"image":"shop:2"}}}""");
        Assert.Equal(2, obj.Metadata.Generation);

        await _client.CustomObjects.DeleteNamespacedCustomObjectAsync(Crd.Group, Crd.Version, "default", Crd.Plural, "shop");

        obj = await GetAsync("shop");
        Assert.NotNull(obj.Metadata.DeletionTimestamp);
        Assert.Equal(3, obj.Metadata.Generation);
    }

    [Fact]
    public async Task Status_subresource_separates_spec_and_status_writes()
    {
        var withStatus = AppDep.New("shop");
        withStatus.Status = new JsonObject { ["phase"] = "Ready" };
        var created = await CreateAsync(withStatus);
        Assert.Null(created.Status);

        var main = await MergePatchAsync("shop", """{"status":{"phase":"Failed"}}""");
        Assert.Null(main.Status);
        Assert.Equal(created.Metadata.ResourceVersion, main.Metadata.ResourceVersion);

        var status = await MergePatchAsync("shop", """{"spec":{"app":{"image":"ignored:1"}},"status":{"phase":"Ready"}}""", status: true);
        Assert.Equal("Ready", status.Status!["phase"]!.GetValue<string>());
        Assert.Equal("shop:1", status.Spec!["app"]!["image"]!.GetValue<string>());

        var replaced = await _client.CustomObjects.ReplaceNamespacedCustomObjectStatusAsync<AppDep>(
            new AppDep { Metadata = status.Metadata, Spec = status.Spec, Status = new JsonObject { ["phase"] = "Degraded" } },
            Crd.Group, Crd.Version, "default", Crd.Plural, "shop");
        Assert.Equal("Degraded", replaced.Status!["phase"]!.GetValue<string>());
        Assert.Equal(1, replaced.Metadata.Generation);
    }

    [Fact]
    public async Task A_finalizer_holds_a_delete_until_it_is_removed()
    {
        var obj = AppDep.New("shop");
        obj.Metadata.Finalizers = ["skiff.dev/cleanup"];
        await CreateAsync(obj);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var rv = (await GetAsync("shop")).Metadata.ResourceVersion;
        var deleted = Task.Run(async () =>
        {
            await foreach (var (type, o) in WatchAsync(rv, ct: cts.Token))
            {
                if (type == WatchEventType.Deleted)
                {
                    return o;
                }
            }

            return null;
        }, cts.Token);

        var answer = await _client.CustomObjects.DeleteNamespacedCustomObjectAsync<AppDep>(Crd.Group, Crd.Version, "default", Crd.Plural, "shop");
        Assert.NotNull(answer.Metadata.DeletionTimestamp);
        Assert.NotNull((await GetAsync("shop")).Metadata.DeletionTimestamp);
        var patched = await MergePatchAsync("shop", """{"spec":{"app":{"image":"shop:2"}}}""");
        Assert.Equal("shop:2", patched.Spec!["app"]!["image"]!.GetValue<string>());
        var addFinalizer = await Assert.ThrowsAsync<HttpOperationException>(() => MergePatchAsync("shop", """{"metadata":{"finalizers":["skiff.dev/cleanup","other"]}}"""));
        Assert.Equal((HttpStatusCode)422, addFinalizer.Response.StatusCode);
        Assert.False(deleted.IsCompleted);

        await MergePatchAsync("shop", """{"metadata":{"finalizers":[]}}""");

        var gone = await deleted;
        Assert.Equal("shop", gone!.Metadata.Name);
        var notFound = await Assert.ThrowsAsync<HttpOperationException>(() => GetAsync("shop"));
        Assert.Equal(HttpStatusCode.NotFound, notFound.Response.StatusCode);
    }

    [Fact]
    public async Task Event_field_selectors_match_involved_object_fields()
    {
        var created = await CreateAsync(AppDep.New("shop"));
        var uid = created.Metadata.Uid;
        foreach (var (name, objName, objUid) in new[] { ("e1", "shop", uid), ("e2", "shop", "old-uid"), ("e3", "web", "x") })
        {
            await _client.CoreV1.CreateNamespacedEventAsync(new Corev1Event
            {
                Metadata = new V1ObjectMeta { Name = name },
                InvolvedObject = new V1ObjectReference { Kind = "AppDeployment", Name = objName, NamespaceProperty = "default", Uid = objUid, ApiVersion = "skiff.dev/v1alpha1" },
                Reason = "Test",
                Message = name,
                Type = "Normal",
            }, "default");
        }

        var byUid = await _client.CoreV1.ListNamespacedEventAsync("default", fieldSelector: $"involvedObject.kind=AppDeployment,involvedObject.uid={uid},involvedObject.name=shop,involvedObject.namespace=default");
        var byName = await _client.CoreV1.ListNamespacedEventAsync("default", fieldSelector: "involvedObject.name=shop");
        var notWeb = await _client.CoreV1.ListNamespacedEventAsync("default", fieldSelector: "involvedObject.name!=web,metadata.name!=e1");
        var bad = await Assert.ThrowsAsync<HttpOperationException>(() => _client.CoreV1.ListNamespacedEventAsync("default", fieldSelector: "spec.foo=bar"));

        Assert.Equal(["e1"], byUid.Items.Select(e => e.Metadata.Name));
        Assert.Equal(["e1", "e2"], byName.Items.Select(e => e.Metadata.Name));
        Assert.Equal(["e2"], notWeb.Items.Select(e => e.Metadata.Name));
        Assert.Equal(HttpStatusCode.BadRequest, bad.Response.StatusCode);
        Assert.Contains("field label not supported: spec.foo", bad.Response.Content);
    }

    [Fact]
    public async Task Label_and_name_selectors_filter_lists()
    {
        foreach (var (name, labels) in new[] { ("a", "env=prod,tier=web"), ("b", "env=dev"), ("c", "") })
        {
            var o = AppDep.New(name);
            o.Metadata.Labels = labels.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split('=')).ToDictionary(p => p[0], p => p[1]);
            await CreateAsync(o);
        }

        async Task<string[]> NamesAsync(string? label = null, string? field = null) =>
            (await _client.CustomObjects.ListNamespacedCustomObjectAsync<CustomList>(Crd.Group, Crd.Version, "default", Crd.Plural, labelSelector: label, fieldSelector: field))
            .Items.Select(i => i.Metadata.Name).ToArray();

        Assert.Equal(["a"], await NamesAsync("env=prod"));
        Assert.Equal(["a"], await NamesAsync("env==prod,tier"));
        Assert.Equal(["b", "c"], await NamesAsync("env!=prod"));
        Assert.Equal(["a", "b"], await NamesAsync("env in (prod, dev)"));
        Assert.Equal(["c"], await NamesAsync("env notin (prod,dev)"));
        Assert.Equal(["a", "b"], await NamesAsync("env"));
        Assert.Equal(["c"], await NamesAsync("!env"));
        Assert.Equal(["b"], await NamesAsync(field: "metadata.name=b"));
        Assert.Equal(["a", "b", "c"], await NamesAsync(field: "metadata.namespace=default"));
    }

    [Fact]
    public async Task Leases_are_served_for_leader_election()
    {
        var lease = await _client.CoordinationV1.CreateNamespacedLeaseAsync(new V1Lease
        {
            Metadata = new V1ObjectMeta { Name = "skiff-vps-1" },
            Spec = new V1LeaseSpec { HolderIdentity = "a", LeaseDurationSeconds = 15 },
        }, "default");
        lease.Spec.HolderIdentity = "b";
        var taken = await _client.CoordinationV1.ReplaceNamespacedLeaseAsync(lease, "skiff-vps-1", "default");
        lease.Spec.HolderIdentity = "c";

        var stale = await Assert.ThrowsAsync<HttpOperationException>(() => _client.CoordinationV1.ReplaceNamespacedLeaseAsync(lease, "skiff-vps-1", "default"));

        Assert.Equal("b", taken.Spec.HolderIdentity);
        Assert.Equal(HttpStatusCode.Conflict, stale.Response.StatusCode);
        Assert.StartsWith("Operation cannot be fulfilled on leases.coordination.k8s.io \"skiff-vps-1\"", JsonNode.Parse(stale.Response.Content)!["message"]!.GetValue<string>());
    }

    [Fact]
    public async Task Secrets_fold_stringData_into_data()
    {
        var secret = await _client.CoreV1.CreateNamespacedSecretAsync(new V1Secret
        {
            Metadata = new V1ObjectMeta { Name = "shop-db" },
            StringData = new Dictionary<string, string> { ["password"] = "s3cret" },
        }, "default");

        Assert.Equal("Opaque", secret.Type);
        Assert.Equal("s3cret", System.Text.Encoding.UTF8.GetString(secret.Data["password"]));
        Assert.Null(secret.StringData);
    }

    [Fact]
    public async Task A_kubeconfig_written_by_the_server_works_with_KubernetesClient()
    {
        var path = Path.Combine(Path.GetTempPath(), $"skiff-kubeconfig-{Guid.NewGuid():N}");
        try
        {
            _server.WriteKubeconfig(path, "kube-system");
            var config = KubernetesClientConfiguration.BuildConfigFromConfigFile(path);
            using var client = new Kubernetes(config);

            var ns = await client.CoreV1.ReadNamespaceAsync(config.Namespace);

            Assert.Equal("kube-system", ns.Metadata.Name);
            Assert.Equal("Active", ns.Status.Phase);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public async Task Watch_timeoutSeconds_ends_the_stream()
    {
        // KubernetesClient fails a watch that ends before its first line (as it would against a real server), so give it one.
        await CreateAsync(AppDep.New("a"));
        var started = DateTime.UtcNow;
        await foreach (var _ in WatchAsync(timeoutSeconds: 1))
        {
        }

        Assert.InRange(DateTime.UtcNow - started, TimeSpan.FromMilliseconds(900), TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task DropAllWatches_ends_open_watches()
    {
        await CreateAsync(AppDep.New("a"));
        var watch = Task.Run(async () =>
        {
            await foreach (var _ in WatchAsync())
            {
            }
        });
        await WaitForAsync(() => _server.RequestLog.Any(r => r.Verb == "watch"));

        _server.Faults.DropAllWatches();

        await watch.WaitAsync(TimeSpan.FromSeconds(10));
    }

    internal static async Task WaitForAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not met in time");
            await Task.Delay(50);
        }
    }

    public sealed class CustomList
    {
        [System.Text.Json.Serialization.JsonPropertyName("metadata")]
        public V1ListMeta Metadata { get; set; } = new();

        [System.Text.Json.Serialization.JsonPropertyName("items")]
        public List<AppDep> Items { get; set; } = [];
    }
}
