using System.Text.Json.Nodes;

namespace Skiff.TestApiServer.Tests;

/// <summary>The real kubectl (v1.32) against the test API server, one scenario of KUBE-API-FACTS.md per test.</summary>
public sealed class KubectlTests : IAsyncLifetime
{
    private const string ShopYaml = """
        apiVersion: skiff.dev/v1alpha1
        kind: AppDeployment
        metadata:
          name: shop
        spec:
          node: vps-1
          app:
            image: shop:1
        """;

    private TestApiServer _server = null!;
    private Kubectl _kubectl = null!;
    private Api _api = null!;

    public async Task InitializeAsync()
    {
        _server = await TestApiServer.StartAsync(TestCrds.Options());
        _kubectl = new Kubectl(_server);
        _api = new Api(_server);
    }

    public async Task DisposeAsync()
    {
        _api.Dispose();
        _kubectl.Dispose();
        await _server.DisposeAsync();
    }

    private async Task<Kubectl.Result> OkAsync(params string[] args)
    {
        var r = await _kubectl.RunAsync(args);
        Assert.True(r.ExitCode == 0, $"kubectl {string.Join(' ', args)}: {r}");
        return r;
    }

    private List<RequestRecord> Resource(string resource) => _server.RequestLog.Where(r => r.Resource == resource).ToList();

    [Fact]
    public async Task Apply_new_object_reads_discovery_gets_404_then_posts_with_strict_validation()
    {
        var r = await OkAsync("apply", "-f", _kubectl.WriteFile("shop.yaml", ShopYaml));

        Assert.Contains("appdeployment.skiff.dev/shop created", r.Stdout);
        var log = _server.RequestLog;
        Assert.Contains(log, x => x.Path == "/api" && x.Method == "GET");
        Assert.Contains(log, x => x.Path == "/apis" && x.Method == "GET");
        Assert.Contains(log, x => x.Path == "/apis/skiff.dev/v1alpha1" && x.StatusCode == 200);
        var calls = Resource("appdeployments");
        Assert.Equal(("GET", 404), (calls[0].Method, calls[0].StatusCode));
        Assert.Equal(("POST", 201), (calls[1].Method, calls[1].StatusCode));
        Assert.Equal("kubectl-client-side-apply", calls[1].QueryValue("fieldManager"));
        Assert.Equal("Strict", calls[1].QueryValue("fieldValidation"));
        var obj = await _api.GetAsync(Api.Item("shop"));
        Assert.NotNull(obj["metadata"]!["annotations"]!["kubectl.kubernetes.io/last-applied-configuration"]);
        Assert.Equal("docker", obj["spec"]!["runtime"]!.GetValue<string>());
    }

    [Fact]
    public async Task Apply_changed_object_sends_a_json_merge_patch_and_bumps_generation()
    {
        await OkAsync("apply", "-f", _kubectl.WriteFile("shop.yaml", ShopYaml));
        _server.ClearRequestLog();

        var r = await OkAsync("apply", "-f", _kubectl.WriteFile("shop2.yaml", ShopYaml.Replace("shop:1", "shop:2")));

        Assert.Contains("appdeployment.skiff.dev/shop configured", r.Stdout);
        Assert.Contains(_server.RequestLog, x => x.Path == "/openapi/v2" && x.Accept.Contains("protobuf"));
        var patch = Assert.Single(Resource("appdeployments"), x => x.Method == "PATCH");
        Assert.Equal("application/merge-patch+json", patch.ContentType);
        Assert.Equal("kubectl-client-side-apply", patch.QueryValue("fieldManager"));
        Assert.Equal("Strict", patch.QueryValue("fieldValidation"));
        var obj = await _api.GetAsync(Api.Item("shop"));
        Assert.Equal("shop:2", obj["spec"]!["app"]!["image"]!.GetValue<string>());
        Assert.Equal(2, obj["metadata"]!["generation"]!.GetValue<long>());
    }

    [Fact]
    public async Task Apply_server_side_creates_and_updates_with_field_manager_kubectl()
    {
        var r = await OkAsync("apply", "--server-side", "-f", _kubectl.WriteFile("shop.yaml", ShopYaml));
        Assert.Contains("appdeployment.skiff.dev/shop serverside-applied", r.Stdout);
        await OkAsync("apply", "--server-side", "-f", _kubectl.WriteFile("shop2.yaml", ShopYaml.Replace("shop:1", "shop:2")));

        var patches = Resource("appdeployments").Where(x => x.Method == "PATCH").ToList();
        Assert.Equal(2, patches.Count);
        Assert.All(patches, p =>
        {
            Assert.Equal("application/apply-patch+yaml", p.ContentType);
            Assert.Equal("kubectl", p.QueryValue("fieldManager"));
            Assert.Equal("Strict", p.QueryValue("fieldValidation"));
            Assert.Equal("false", p.QueryValue("force"));
        });
        var obj = await _api.GetAsync(Api.Item("shop"));
        Assert.Equal("shop:2", obj["spec"]!["app"]!["image"]!.GetValue<string>());
        var entry = Assert.Single(obj["metadata"]!["managedFields"]!.AsArray());
        Assert.Equal("kubectl", entry!["manager"]!.GetValue<string>());
        Assert.Equal("Apply", entry["operation"]!.GetValue<string>());
        Assert.NotNull(entry["fieldsV1"]!["f:spec"]!["f:app"]!["f:image"]);
    }

    [Fact]
    public async Task Apply_server_side_after_client_side_apply_migrates_the_last_applied_manager()
    {
        await OkAsync("apply", "-f", _kubectl.WriteFile("shop.yaml", ShopYaml));

        var r = await OkAsync("apply", "--server-side", "-f", _kubectl.WriteFile("shop2.yaml", ShopYaml.Replace("shop:1", "shop:2")));

        Assert.Contains("serverside-applied", r.Stdout);
        var obj = await _api.GetAsync(Api.Item("shop"));
        Assert.Equal("shop:2", obj["spec"]!["app"]!["image"]!.GetValue<string>());
    }

    [Fact]
    public async Task Apply_server_side_conflicts_with_another_manager_unless_forced()
    {
        var (code, body, _) = await _api.SendAsync(HttpMethod.Patch, Api.Item("shop") + "?fieldManager=skiff", Api.AppDeployment("shop"), "application/apply-patch+yaml");
        Assert.True(code == 201, body?.ToJsonString());
        var file = _kubectl.WriteFile("shop.yaml", ShopYaml.Replace("shop:1", "shop:2"));

        var conflict = await _kubectl.RunAsync("apply", "--server-side", "-f", file);

        Assert.NotEqual(0, conflict.ExitCode);
        Assert.Contains("Apply failed with 1 conflict: conflict with \"skiff\": .spec.app.image", conflict.Stderr);
        await OkAsync("apply", "--server-side", "--force-conflicts", "-f", file);
        var obj = await _api.GetAsync(Api.Item("shop"));
        Assert.Equal("shop:2", obj["spec"]!["app"]!["image"]!.GetValue<string>());
    }

    [Fact]
    public async Task Get_prints_the_crd_printer_columns_from_a_table()
    {
        await _api.CreateAsync(Api.AppDeployment("shop"));
        await _api.SetReadyAsync("shop");

        var r = await OkAsync("get", "appdep");

        var lines = r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(["NAME", "NODE", "READY", "PHASE", "IMAGE", "REVISION", "AGE"], lines[0].Split(' ', StringSplitOptions.RemoveEmptyEntries));
        var cells = lines[1].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(["shop", "vps-1", "True", "Ready", "shop@sha256:abc", "3"], cells[..6]);
        Assert.Matches("^[0-9]+s$", cells[6]);
        var list = Assert.Single(Resource("appdeployments"), x => x.Verb == "list");
        Assert.Equal("500", list.QueryValue("limit"));
        Assert.Contains("as=Table;v=v1;g=meta.k8s.io", list.Accept);
    }

    [Fact]
    public async Task Get_by_category_and_short_name_and_as_yaml()
    {
        await _api.CreateAsync(Api.AppDeployment("shop"));

        var yaml = await OkAsync("get", "appdep", "shop", "-o", "yaml");
        var byCategory = await OkAsync("get", "skiff");

        Assert.Contains("kind: AppDeployment", yaml.Stdout);
        Assert.Contains("name: shop", yaml.Stdout);
        Assert.Contains("generation: 1", yaml.Stdout);
        Assert.Contains("image: shop:1", yaml.Stdout);
        Assert.Contains("runtime: docker", yaml.Stdout);
        Assert.Contains("appdeployment.skiff.dev/shop", byCategory.Stdout);
    }

    [Fact]
    public async Task Describe_shows_events_matched_by_the_involved_object_uid()
    {
        var obj = await _api.CreateAsync(Api.AppDeployment("shop"));
        var uid = obj["metadata"]!["uid"]!.GetValue<string>();
        await _api.CreateAsync(Event("shop.1", "shop", uid, "RolloutSucceeded", "revision 3 is live"), "/api/v1/namespaces/default/events");
        await _api.CreateAsync(Event("other.1", "shop", "another-uid", "Stale", "from an earlier object of that name"), "/api/v1/namespaces/default/events");

        var r = await OkAsync("describe", "appdeployment", "shop");

        Assert.Contains("Events:", r.Stdout);
        Assert.Contains("RolloutSucceeded", r.Stdout);
        Assert.Contains("revision 3 is live", r.Stdout);
        Assert.DoesNotContain("Stale", r.Stdout);
        var events = Assert.Single(Resource("events"), x => x.Verb == "list");
        Assert.Equal(
            new[] { "involvedObject.kind=AppDeployment", "involvedObject.name=shop", "involvedObject.namespace=default", $"involvedObject.uid={uid}" },
            events.QueryValue("fieldSelector")!.Split(',').Order());
    }

    [Fact]
    public async Task Get_events_by_involved_object_name()
    {
        var obj = await _api.CreateAsync(Api.AppDeployment("shop"));
        await _api.CreateAsync(Event("shop.1", "shop", obj["metadata"]!["uid"]!.GetValue<string>(), "RolloutSucceeded", "revision 3 is live"), "/api/v1/namespaces/default/events");
        await _api.CreateAsync(Event("web.1", "web", "x", "Other", "not this one"), "/api/v1/namespaces/default/events");

        var r = await OkAsync("get", "events", "--field-selector", "involvedObject.name=shop");

        Assert.Contains("RolloutSucceeded", r.Stdout);
        Assert.Contains("appdeployment/shop", r.Stdout);
        Assert.DoesNotContain("not this one", r.Stdout);
        Assert.StartsWith("LAST SEEN", r.Stdout);
    }

    [Fact]
    public async Task Wait_for_condition_Ready_succeeds_when_status_turns_Ready()
    {
        await _api.CreateAsync(Api.AppDeployment("shop"));
        var wait = _kubectl.RunAsync("wait", "--for=condition=Ready", "appdeployment/shop", "--timeout=30s");
        await Task.Delay(1500);
        await _api.SetReadyAsync("shop");

        var r = await wait;

        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("appdeployment.skiff.dev/shop condition met", r.Stdout);
        var calls = Resource("appdeployments").Where(x => x.Method == "GET").ToList();
        Assert.Contains(calls, c => c.Verb == "list" && c.QueryValue("fieldSelector") == "metadata.name=shop");
        Assert.Contains(calls, c => c.Verb == "watch" && c.QueryValue("allowWatchBookmarks") == "true" && c.QueryValue("fieldSelector") == "metadata.name=shop");
    }

    [Fact]
    public async Task Wait_for_condition_Ready_times_out_when_status_stays_not_ready()
    {
        await _api.CreateAsync(Api.AppDeployment("shop"));
        await _api.SetReadyAsync("shop", "False");

        var r = await _kubectl.RunAsync("wait", "--for=condition=Ready", "appdeployment/shop", "--timeout=3s");

        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("timed out waiting for the condition", r.Stderr);
    }

    [Fact]
    public async Task Delete_waits_for_the_finalizer_then_reports_deleted()
    {
        var ad = Api.AppDeployment("shop");
        ad["metadata"]!["finalizers"] = new JsonArray("skiff.dev/cleanup");
        await _api.CreateAsync(ad);
        var delete = _kubectl.RunAsync("delete", "appdeployment", "shop", "--timeout=30s");

        JsonObject obj;
        var deadline = DateTime.UtcNow.AddSeconds(20);
        do
        {
            await Task.Delay(200);
            obj = await _api.GetAsync(Api.Item("shop"));
        }
        while (obj["metadata"]!["deletionTimestamp"] is null && DateTime.UtcNow < deadline);

        Assert.NotNull(obj["metadata"]!["deletionTimestamp"]);
        await Task.Delay(500);
        Assert.False(delete.IsCompleted, "kubectl delete must wait while a finalizer holds the object");
        var (code, body) = await _api.MergePatchAsync(Api.Item("shop"), JsonNode.Parse("""{"metadata":{"finalizers":null}}""")!);
        Assert.True(code == 200, body?.ToJsonString());

        var r = await delete;
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("appdeployment.skiff.dev \"shop\" deleted", r.Stdout);
        var (gone, _, _) = await _api.SendAsync(HttpMethod.Get, Api.Item("shop"));
        Assert.Equal(404, gone);
    }

    [Fact]
    public async Task Explain_reads_the_crd_schema_from_openapi_v3()
    {
        var r = await OkAsync("explain", "appdeployment.spec");

        Assert.Contains("KIND:       AppDeployment", r.Stdout);
        Assert.Contains("The desired application stack.", r.Stdout);
        Assert.Contains("app", r.Stdout);
        Assert.Contains("node", r.Stdout);
        Assert.Contains(_server.RequestLog, x => x.Path == "/openapi/v3/apis/skiff.dev/v1alpha1" && x.Query.Contains("hash="));
    }

    [Fact]
    public async Task Apply_with_an_unknown_field_fails_strict_validation_and_is_pruned_without_it()
    {
        var file = _kubectl.WriteFile("typo.yaml", ShopYaml.Replace("image: shop:1", "imagee: shop:1\n    image: shop:1"));

        var strict = await _kubectl.RunAsync("apply", "-f", file);
        Assert.NotEqual(0, strict.ExitCode);
        Assert.Contains("AppDeployment in version \"v1alpha1\" cannot be handled as a AppDeployment: strict decoding error: unknown field \"spec.app.imagee\"", strict.Stderr);

        await OkAsync("apply", "--validate=false", "-f", file);
        var obj = await _api.GetAsync(Api.Item("shop"));
        Assert.Null(obj["spec"]!["app"]!["imagee"]);
        Assert.Equal("shop:1", obj["spec"]!["app"]!["image"]!.GetValue<string>());
    }

    [Fact]
    public async Task Create_with_a_schema_violation_prints_the_invalid_causes()
    {
        var file = _kubectl.WriteFile("bad.yaml", ShopYaml + "\n    ports:\n      - containerPort: 70000\n");

        var r = await _kubectl.RunAsync("apply", "-f", file);

        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("spec.app.ports[0].containerPort: Invalid value: 70000: spec.app.ports[0].containerPort in body should be less than or equal to 65535", r.Stderr);
    }

    [Fact]
    public async Task Secrets_and_namespaces_work_through_kubectl_apply()
    {
        await OkAsync("apply", "-f", _kubectl.WriteFile("ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: prod\n"));
        var secret = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: bot-secrets\nstringData:\n  token: abc\n";
        await OkAsync("apply", "-n", "prod", "-f", _kubectl.WriteFile("secret.yaml", secret));

        var r = await OkAsync("get", "secrets", "-n", "prod");
        var missing = await _kubectl.RunAsync("apply", "-n", "nope", "-f", _kubectl.WriteFile("secret2.yaml", secret));

        Assert.Contains("bot-secrets", r.Stdout);
        Assert.Contains("Opaque", r.Stdout);
        Assert.Contains("namespaces \"nope\" not found", missing.Stderr);
    }

    [Fact]
    public async Task Create_namespace_secret_and_configmap_with_kubectls_protobuf_bodies()
    {
        await OkAsync("create", "namespace", "prod");
        await OkAsync("create", "secret", "generic", "bot-secrets", "-n", "prod", "--from-literal=token=abc", "--type=Opaque");
        await OkAsync("create", "configmap", "settings", "-n", "prod", "--from-literal=mode=fast");
        await OkAsync("label", "secret", "bot-secrets", "-n", "prod", "team=bots");

        var secret = await _api.GetAsync("/api/v1/namespaces/prod/secrets/bot-secrets");
        var configMap = await _api.GetAsync("/api/v1/namespaces/prod/configmaps/settings");
        var missing = await _kubectl.RunAsync("create", "secret", "generic", "x", "-n", "nope", "--from-literal=a=b");

        Assert.Contains(_server.RequestLog, r => r.Resource == "secrets" && r.ContentType.StartsWith("application/vnd.kubernetes.protobuf", StringComparison.Ordinal));
        Assert.Equal("YWJj", secret["data"]!["token"]!.GetValue<string>());
        Assert.Equal("bots", secret["metadata"]!["labels"]!["team"]!.GetValue<string>());
        Assert.Equal("fast", configMap["data"]!["mode"]!.GetValue<string>());
        Assert.Contains("namespaces \"nope\" not found", missing.Stderr);
    }

    [Fact]
    public async Task Get_watch_prints_rows_as_objects_change()
    {
        await _api.CreateAsync(Api.AppDeployment("shop"));
        var watch = _kubectl.RunAsync("get", "appdep", "--watch", "--request-timeout=4s");
        await Task.Delay(1500);
        await _api.SetReadyAsync("shop");

        var r = await watch;

        var lines = r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("NAME", lines[0]);
        Assert.Contains(lines, l => l.StartsWith("shop", StringComparison.Ordinal) && l.Contains("Ready"));
    }

    [Fact]
    public async Task Wait_for_delete_and_plain_delete()
    {
        await _api.CreateAsync(Api.AppDeployment("shop"));
        var wait = _kubectl.RunAsync("wait", "--for=delete", "appdeployment/shop", "--timeout=30s");
        await Task.Delay(1000);

        var deleted = await OkAsync("delete", "appdep", "shop");

        Assert.Contains("deleted", deleted.Stdout);
        var r = await wait;
        Assert.True(r.ExitCode == 0, r.ToString());
    }

    internal static JsonObject Event(string name, string objectName, string uid, string reason, string message) => new()
    {
        ["apiVersion"] = "v1",
        ["kind"] = "Event",
        ["metadata"] = new JsonObject { ["name"] = name, ["namespace"] = "default" },
        ["involvedObject"] = new JsonObject
        {
            ["apiVersion"] = "skiff.dev/v1alpha1",
            ["kind"] = "AppDeployment",
            ["name"] = objectName,
            ["namespace"] = "default",
            ["uid"] = uid,
        },
        ["reason"] = reason,
        ["message"] = message,
        ["type"] = "Normal",
        ["source"] = new JsonObject { ["component"] = "skiff" },
        ["firstTimestamp"] = DateTime.UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'"),
        ["lastTimestamp"] = DateTime.UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'"),
        ["count"] = 1,
    };
}
