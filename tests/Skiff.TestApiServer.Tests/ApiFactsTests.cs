using System.Text.Json.Nodes;

namespace Skiff.TestApiServer.Tests;

/// <summary>Pins each behaviour of KUBE-API-FACTS.md (and the apiserver's other shapes the fake copies) at the HTTP level.</summary>
public sealed class ApiFactsTests : IAsyncLifetime
{
    private const string TableAccept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

    private TestApiServer _server = null!;
    private Api _api = null!;

    public async Task InitializeAsync()
    {
        _server = await TestApiServer.StartAsync(TestCrds.Options());
        _api = new Api(_server);
    }

    public async Task DisposeAsync()
    {
        _api.Dispose();
        await _server.DisposeAsync();
    }

    private static long Rv(JsonNode obj) => long.Parse(obj["metadata"]!["resourceVersion"]!.GetValue<string>());

    [Fact]
    public async Task ResourceVersion_is_one_counter_for_the_whole_server()
    {
        var a = await _api.CreateAsync(Api.AppDeployment("a"));
        var secret = await _api.CreateAsync(new JsonObject { ["apiVersion"] = "v1", ["kind"] = "Secret", ["metadata"] = new JsonObject { ["name"] = "s" } }, "/api/v1/namespaces/default/secrets");
        var b = await _api.CreateAsync(Api.AppDeployment("b"));
        var list = await _api.GetAsync(Api.Collection);

        Assert.True(Rv(a) < Rv(secret) && Rv(secret) < Rv(b));
        Assert.Equal(Rv(b), long.Parse(list["metadata"]!["resourceVersion"]!.GetValue<string>()));
        Assert.IsType<string>(a["metadata"]!["resourceVersion"]!.GetValue<object>() is System.Text.Json.JsonElement e ? e.GetString() : null);
    }

    [Fact]
    public async Task An_update_that_changes_nothing_keeps_the_resourceVersion()
    {
        var a = await _api.CreateAsync(Api.AppDeployment("a"));

        var (code, same) = await _api.MergePatchAsync(Api.Item("a"), JsonNode.Parse("""{"spec":{"node":"vps-1"}}""")!);

        Assert.Equal(200, code);
        Assert.Equal(Rv(a), Rv(same!));
    }

    [Fact]
    public async Task Create_sets_uid_creationTimestamp_generation_and_schema_defaults()
    {
        var obj = await _api.CreateAsync(JsonNode.Parse("""
            {"apiVersion":"skiff.dev/v1alpha1","kind":"AppDeployment","metadata":{"name":"shop"},
             "spec":{"node":"vps-1","app":{"image":"shop:1","healthCheck":{"http":{"port":"http"}}},"database":{}}}
            """)!.AsObject());

        var meta = obj["metadata"]!;
        Assert.Matches("^[0-9a-f-]{36}$", meta["uid"]!.GetValue<string>());
        Assert.Matches(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", meta["creationTimestamp"]!.GetValue<string>());
        Assert.Equal(1, meta["generation"]!.GetValue<long>());
        Assert.Equal("default", meta["namespace"]!.GetValue<string>());
        var spec = obj["spec"]!;
        Assert.Equal("docker", spec["runtime"]!.GetValue<string>());
        Assert.Equal("IfNotPresent", spec["app"]!["imagePullPolicy"]!.GetValue<string>());
        Assert.Equal("/", spec["app"]!["healthCheck"]!["http"]!["path"]!.GetValue<string>());
        Assert.Equal(5, spec["app"]!["healthCheck"]!["periodSeconds"]!.GetValue<long>());
        Assert.Equal("postgres", spec["database"]!["engine"]!.GetValue<string>());
        Assert.Null(spec["rollout"]);
    }

    [Fact]
    public async Task GenerateName_makes_a_unique_name()
    {
        var body = Api.AppDeployment("x");
        body["metadata"] = new JsonObject { ["generateName"] = "shop-" };

        var a = await _api.CreateAsync(body);
        var b = await _api.CreateAsync(body);

        Assert.Matches("^shop-[a-z0-9]{5}$", a["metadata"]!["name"]!.GetValue<string>());
        Assert.NotEqual(a["metadata"]!["name"]!.GetValue<string>(), b["metadata"]!["name"]!.GetValue<string>());
    }

    [Fact]
    public async Task NotFound_AlreadyExists_and_missing_namespace_answer_Status_bodies()
    {
        await _api.CreateAsync(Api.AppDeployment("shop"));

        var (missing, missingBody, _) = await _api.SendAsync(HttpMethod.Get, Api.Item("nope"));
        var (exists, existsBody, _) = await _api.SendAsync(HttpMethod.Post, Api.Collection, Api.AppDeployment("shop"));
        var (noNs, noNsBody, _) = await _api.SendAsync(HttpMethod.Post, "/apis/skiff.dev/v1alpha1/namespaces/prod/appdeployments", Api.AppDeployment("shop"));

        Assert.Equal(404, missing);
        Assert.Equal("""{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"appdeployments.skiff.dev \"nope\" not found","reason":"NotFound","details":{"name":"nope","group":"skiff.dev","kind":"appdeployments"},"code":404}""", missingBody!.ToJsonString(Api.Relaxed));
        Assert.Equal(409, exists);
        Assert.Equal("""{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"appdeployments.skiff.dev \"shop\" already exists","reason":"AlreadyExists","details":{"name":"shop","group":"skiff.dev","kind":"appdeployments"},"code":409}""", existsBody!.ToJsonString(Api.Relaxed));
        Assert.Equal(404, noNs);
        Assert.Equal("""{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"namespaces \"prod\" not found","reason":"NotFound","details":{"name":"prod","kind":"namespaces"},"code":404}""", noNsBody!.ToJsonString(Api.Relaxed));
    }

    [Fact]
    public async Task Stale_PUT_answers_the_exact_Conflict_status()
    {
        var obj = await _api.CreateAsync(Api.AppDeployment("shop"));
        await _api.MergePatchAsync(Api.Item("shop"), JsonNode.Parse("""{"spec":{"app":{"image":"shop:2"}}}""")!);

        var (code, body, _) = await _api.SendAsync(HttpMethod.Put, Api.Item("shop"), obj);

        Assert.Equal(409, code);
        Assert.Equal("""{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Operation cannot be fulfilled on appdeployments.skiff.dev \"shop\": the object has been modified; please apply your changes to the latest version and try again","reason":"Conflict","details":{"name":"shop","group":"skiff.dev","kind":"appdeployments"},"code":409}""", body!.ToJsonString(Api.Relaxed));
    }

    [Fact]
    public async Task Watch_from_a_too_old_resourceVersion_answers_200_with_one_Expired_line()
    {
        await _api.CreateAsync(Api.AppDeployment("a"));
        _server.Faults.ExpireResourceVersionsBelow(200);

        var response = await _api.Http.GetAsync(Api.Collection + "?watch=true&resourceVersion=1");
        var text = await response.Content.ReadAsStringAsync();

        Assert.Equal(200, (int)response.StatusCode);
        Assert.Equal("""{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 1 (200)","reason":"Expired","code":410}}""" + "\n", text);
    }

    [Fact]
    public async Task Watch_history_is_bounded_and_resumes_within_it()
    {
        await using var small = await TestApiServer.StartAsync(new TestApiServerOptions { CrdPaths = TestCrds.All, WatchHistorySize = 3 });
        using var api = new Api(small);
        var first = await api.CreateAsync(Api.AppDeployment("a"));
        for (var i = 2; i <= 5; i++)
        {
            await api.MergePatchAsync(Api.Item("a"), JsonNode.Parse($$$$"""{"spec":{"app":{"image":"shop:{{{{i}}}}"}}}""")!);
        }

        var expired = await api.Http.GetStringAsync(Api.Collection + $"?watch=true&resourceVersion={Rv(first)}");
        var recent = await api.Http.GetStringAsync(Api.Collection + $"?watch=true&resourceVersion={small.ResourceVersion - 1}&timeoutSeconds=1");

        Assert.Contains("\"code\":410", expired);
        var line = Assert.Single(recent.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal("MODIFIED", JsonNode.Parse(line)!["type"]!.GetValue<string>());
    }

    [Fact]
    public async Task Watch_without_resourceVersion_starts_with_current_objects_as_ADDED()
    {
        await _api.CreateAsync(Api.AppDeployment("a"));
        await _api.CreateAsync(Api.AppDeployment("b"));

        var text = await _api.Http.GetStringAsync(Api.Collection + "?watch=true&timeoutSeconds=1");

        var events = text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Equal(["ADDED a", "ADDED b"], events.Select(e => $"{e["type"]} {e["object"]!["metadata"]!["name"]}"));
        Assert.Equal("AppDeployment", events[0]["object"]!["kind"]!.GetValue<string>());
    }

    [Fact]
    public async Task Watch_events_are_flushed_one_by_one_and_bookmarks_carry_only_the_resourceVersion()
    {
        await using var server = await TestApiServer.StartAsync(new TestApiServerOptions { CrdPaths = TestCrds.All, BookmarkInterval = TimeSpan.FromMilliseconds(300) });
        using var api = new Api(server);
        var rv = server.ResourceVersion;
        using var response = await api.Http.GetAsync(Api.Collection + $"?watch=true&allowWatchBookmarks=true&resourceVersion={rv}", HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());

        await api.CreateAsync(Api.AppDeployment("a"));
        // A bookmark may come first on a slow machine (every 300 ms); the ADDED event follows it.
        JsonNode added;
        do
        {
            added = JsonNode.Parse((await reader.ReadLineAsync())!)!;
        }
        while (added["type"]!.GetValue<string>() == "BOOKMARK");

        JsonNode bookmark;
        do
        {
            bookmark = JsonNode.Parse((await reader.ReadLineAsync())!)!;
        }
        while (bookmark["type"]!.GetValue<string>() != "BOOKMARK");

        Assert.Equal("ADDED", added["type"]!.GetValue<string>());
        Assert.Equal(
            $$$$"""{"type":"BOOKMARK","object":{"kind":"AppDeployment","apiVersion":"skiff.dev/v1alpha1","metadata":{"resourceVersion":"{{{{server.ResourceVersion}}}}"}}}""",
            bookmark.ToJsonString(Api.Relaxed));
    }

    [Fact]
    public async Task A_watch_with_a_selector_sees_objects_leave_it_as_DELETED()
    {
        var a = Api.AppDeployment("a");
        a["metadata"]!["labels"] = new JsonObject { ["env"] = "prod" };
        await _api.CreateAsync(a);
        var rv = _server.ResourceVersion;
        using var response = await _api.Http.GetAsync(Api.Collection + $"?watch=true&labelSelector=env%3Dprod&resourceVersion={rv}", HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());

        await _api.MergePatchAsync(Api.Item("a"), JsonNode.Parse("""{"metadata":{"labels":{"env":"dev"}}}""")!);
        await _api.MergePatchAsync(Api.Item("a"), JsonNode.Parse("""{"metadata":{"labels":{"env":"prod"}}}""")!);

        Assert.Equal("DELETED", JsonNode.Parse((await reader.ReadLineAsync())!)!["type"]!.GetValue<string>());
        Assert.Equal("ADDED", JsonNode.Parse((await reader.ReadLineAsync())!)!["type"]!.GetValue<string>());
    }

    [Fact]
    public async Task Delete_without_finalizers_answers_a_Success_Status_with_details()
    {
        var obj = await _api.CreateAsync(Api.AppDeployment("shop"));
        var uid = obj["metadata"]!["uid"]!.GetValue<string>();

        var (code, body, _) = await _api.SendAsync(HttpMethod.Delete, Api.Item("shop"));

        Assert.Equal(200, code);
        Assert.Equal($$$$"""{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success","details":{"name":"shop","group":"skiff.dev","kind":"appdeployments","uid":"{{{{uid}}}}"}}""", body!.ToJsonString(Api.Relaxed));
    }

    [Fact]
    public async Task Delete_with_finalizers_answers_the_object_marked_for_deletion()
    {
        var body = Api.AppDeployment("shop");
        body["metadata"]!["finalizers"] = new JsonArray("skiff.dev/cleanup");
        await _api.CreateAsync(body);

        var (code, obj, _) = await _api.SendAsync(HttpMethod.Delete, Api.Item("shop"));
        var again = await _api.GetAsync(Api.Item("shop"));

        Assert.Equal(200, code);
        Assert.Equal("AppDeployment", obj!["kind"]!.GetValue<string>());
        Assert.NotNull(obj["metadata"]!["deletionTimestamp"]);
        Assert.Equal(0, obj["metadata"]!["deletionGracePeriodSeconds"]!.GetValue<long>());
        Assert.Equal(obj["metadata"]!["deletionTimestamp"]!.GetValue<string>(), again["metadata"]!["deletionTimestamp"]!.GetValue<string>());
    }

    [Fact]
    public async Task Strict_field_validation_rejects_unknown_fields_with_400()
    {
        var body = Api.AppDeployment("shop");
        body["spec"]!["app"]!["imagee"] = "typo";

        var (code, status, _) = await _api.SendAsync(HttpMethod.Post, Api.Collection + "?fieldValidation=Strict", body);

        Assert.Equal(400, code);
        Assert.Equal("""{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"AppDeployment in version \"v1alpha1\" cannot be handled as a AppDeployment: strict decoding error: unknown field \"spec.app.imagee\"","reason":"BadRequest","code":400}""", status!.ToJsonString(Api.Relaxed));
    }

    [Fact]
    public async Task Without_strict_validation_unknown_fields_are_pruned_with_a_warning()
    {
        var body = Api.AppDeployment("shop");
        body["spec"]!["app"]!["imagee"] = "typo";
        body["spec"]!["extra"] = new JsonObject { ["x"] = 1 };

        var (code, obj, response) = await _api.SendAsync(HttpMethod.Post, Api.Collection, body);

        Assert.Equal(201, code);
        Assert.Null(obj!["spec"]!["app"]!["imagee"]);
        Assert.Null(obj["spec"]!["extra"]);
        Assert.Contains(response.Headers.GetValues("Warning"), w => w.Contains("unknown field \\\"spec.app.imagee\\\""));
    }

    [Fact]
    public async Task Preserve_unknown_fields_keeps_what_the_schema_allows()
    {
        await using var server = await TestApiServer.StartAsync(new TestApiServerOptions { CrdPaths = [TestCrds.Fixture("appdeployments.yaml")] });
        using var api = new Api(server);
        await api.CreateAsync(Api.AppDeployment("shop"));

        var (code, obj) = await api.MergePatchAsync(Api.Item("shop") + "/status", JsonNode.Parse("""{"status":{"extra":{"anything":{"goes":[1,2]}}}}""")!);

        Assert.Equal(200, code);
        Assert.Equal(2, obj!["status"]!["extra"]!["anything"]!["goes"]!.AsArray().Count);
    }

    [Fact]
    public async Task A_printer_column_without_description_gets_the_apiservers_default_one()
    {
        await using var server = await TestApiServer.StartAsync(new TestApiServerOptions { CrdPaths = [TestCrds.Fixture("appdeployments.yaml")] });
        using var api = new Api(server);

        var (_, table, _) = await api.SendAsync(HttpMethod.Get, Api.Collection, accept: TableAccept);

        Assert.Equal("""{"name":"Node","type":"string","format":"","description":"Custom resource definition column (in JSONPath format): .spec.node","priority":0}""", table!["columnDefinitions"]![1]!.ToJsonString(Api.Relaxed));
    }

    [Fact]
    public async Task Schema_violations_answer_422_Invalid_with_causes()
    {
        var body = JsonNode.Parse("""
            {"apiVersion":"skiff.dev/v1alpha1","kind":"AppDeployment","metadata":{"name":"shop"},
             "spec":{"node":"vps-1","app":{"image":"shop:1","ports":[{"containerPort":70000}]}}}
            """)!.AsObject();

        var (code, status, _) = await _api.SendAsync(HttpMethod.Post, Api.Collection, body);

        Assert.Equal(422, code);
        Assert.Equal("""{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"AppDeployment.skiff.dev \"shop\" is invalid: spec.app.ports[0].containerPort: Invalid value: 70000: spec.app.ports[0].containerPort in body should be less than or equal to 65535","reason":"Invalid","details":{"name":"shop","group":"skiff.dev","kind":"AppDeployment","causes":[{"reason":"FieldValueInvalid","message":"Invalid value: 70000: spec.app.ports[0].containerPort in body should be less than or equal to 65535","field":"spec.app.ports[0].containerPort"}]},"code":422}""", status!.ToJsonString(Api.Relaxed));
    }

    [Fact]
    public async Task Several_schema_violations_are_listed_together()
    {
        var body = JsonNode.Parse("""
            {"apiVersion":"skiff.dev/v1alpha1","kind":"AppDeployment","metadata":{"name":"shop"},
             "spec":{"runtime":"podman","app":{"image":"shop:1","ports":[{"containerPort":"http"}],"command":[],"migrate":{}}}}
            """)!.AsObject();
        body["spec"]!["app"]!["command"] = new JsonArray(Enumerable.Range(0, 65).Select(i => (JsonNode?)JsonValue.Create($"a{i}")).ToArray());

        var (code, status, _) = await _api.SendAsync(HttpMethod.Post, Api.Collection, body);

        Assert.Equal(422, code);
        var message = status!["message"]!.GetValue<string>();
        Assert.StartsWith("AppDeployment.skiff.dev \"shop\" is invalid: [", message);
        Assert.Contains("spec.runtime: Unsupported value: \"podman\": supported values: \"docker\", \"kubernetes\"", message);
        Assert.Contains("spec.app.ports[0].containerPort: Invalid value: \"http\": spec.app.ports[0].containerPort in body must be of type integer: \"string\"", message);
        Assert.Contains("spec.app.command: Too many: 65: must have at most 64 items", message);
        Assert.Contains("spec.app.migrate.command: Required value", message);
        var reasons = status["details"]!["causes"]!.AsArray().Select(c => c!["reason"]!.GetValue<string>()).ToHashSet();
        Assert.Equal(["FieldValueNotSupported", "FieldValueInvalid", "FieldValueTooMany", "FieldValueRequired"], reasons);
    }

    [Fact]
    public async Task Status_writes_on_the_main_resource_are_ignored_and_status_writes_touch_only_status()
    {
        var created = await _api.CreateAsync(Api.AppDeployment("shop"));

        var (mainCode, main) = await _api.MergePatchAsync(Api.Item("shop"), JsonNode.Parse("""{"status":{"phase":"Ready"}}""")!);
        var (statusCode, status) = await _api.MergePatchAsync(Api.Item("shop") + "/status",
            JsonNode.Parse("""{"metadata":{"labels":{"x":"y"}},"spec":{"node":"elsewhere"},"status":{"phase":"Ready"}}""")!);

        Assert.Equal(200, mainCode);
        Assert.Null(main!["status"]);
        Assert.Equal(Rv(created), Rv(main));
        Assert.Equal(200, statusCode);
        Assert.Equal("Ready", status!["status"]!["phase"]!.GetValue<string>());
        Assert.Equal("vps-1", status["spec"]!["node"]!.GetValue<string>());
        Assert.Null(status["metadata"]!["labels"]);
        Assert.Equal(1, status["metadata"]!["generation"]!.GetValue<long>());
    }

    [Fact]
    public async Task Json_patch_applies_operations_and_a_failed_test_rejects_it()
    {
        await _api.CreateAsync(Api.AppDeployment("shop"));
        var ops = JsonNode.Parse("""
            [{"op":"test","path":"/spec/app/image","value":"shop:1"},
             {"op":"replace","path":"/spec/app/image","value":"shop:2"},
             {"op":"add","path":"/metadata/finalizers","value":["skiff.dev/cleanup"]},
             {"op":"add","path":"/metadata/finalizers/-","value":"other"}]
            """)!;

        var (code, obj, _) = await _api.SendAsync(HttpMethod.Patch, Api.Item("shop"), ops, "application/json-patch+json");
        var (failed, _, _) = await _api.SendAsync(HttpMethod.Patch, Api.Item("shop"), JsonNode.Parse("""[{"op":"test","path":"/spec/app/image","value":"shop:1"}]""")!, "application/json-patch+json");

        Assert.Equal(200, code);
        Assert.Equal("shop:2", obj!["spec"]!["app"]!["image"]!.GetValue<string>());
        Assert.Equal(["skiff.dev/cleanup", "other"], obj["metadata"]!["finalizers"]!.AsArray().Select(f => f!.GetValue<string>()));
        Assert.Equal(422, failed);
    }

    [Fact]
    public async Task Server_side_apply_conflict_names_the_owner_and_force_takes_the_field()
    {
        var (created, _, _) = await _api.SendAsync(HttpMethod.Patch, Api.Item("shop") + "?fieldManager=skiff", Api.AppDeployment("shop"), "application/apply-patch+yaml");
        var change = Api.AppDeployment("shop", image: "shop:2");

        var (code, status, _) = await _api.SendAsync(HttpMethod.Patch, Api.Item("shop") + "?fieldManager=kubectl&force=false", change, "application/apply-patch+yaml");
        var (forced, obj, _) = await _api.SendAsync(HttpMethod.Patch, Api.Item("shop") + "?fieldManager=kubectl&force=true", change, "application/apply-patch+yaml");

        Assert.Equal(201, created);
        Assert.Equal(409, code);
        Assert.Equal("""{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Apply failed with 1 conflict: conflict with \"skiff\": .spec.app.image","reason":"Conflict","details":{"causes":[{"reason":"FieldManagerConflict","message":"conflict with \"skiff\"","field":".spec.app.image"}]},"code":409}""", status!.ToJsonString(Api.Relaxed));
        Assert.Equal(200, forced);
        Assert.Equal("shop:2", obj!["spec"]!["app"]!["image"]!.GetValue<string>());
        var managers = obj["metadata"]!["managedFields"]!.AsArray().ToDictionary(e => e!["manager"]!.GetValue<string>(), e => e!["fieldsV1"]!);
        Assert.NotNull(managers["kubectl"]["f:spec"]!["f:app"]!["f:image"]);
        Assert.Null(managers["skiff"]["f:spec"]!["f:app"]?["f:image"]);
        Assert.NotNull(managers["skiff"]["f:spec"]!["f:node"]);
    }

    [Fact]
    public async Task Server_side_apply_removes_fields_its_manager_stops_applying_and_shares_equal_values()
    {
        var first = Api.AppDeployment("shop");
        first["spec"]!["app"]!["args"] = new JsonArray("--port=80");
        await _api.SendAsync(HttpMethod.Patch, Api.Item("shop") + "?fieldManager=a", first, "application/apply-patch+yaml");
        var (sharedCode, _, _) = await _api.SendAsync(HttpMethod.Patch, Api.Item("shop") + "?fieldManager=b", Api.AppDeployment("shop"), "application/apply-patch+yaml");

        var (code, obj, _) = await _api.SendAsync(HttpMethod.Patch, Api.Item("shop") + "?fieldManager=a", Api.AppDeployment("shop"), "application/apply-patch+yaml");

        Assert.Equal(200, sharedCode);
        Assert.Equal(200, code);
        Assert.Null(obj!["spec"]!["app"]!["args"]);
        Assert.Equal("shop:1", obj["spec"]!["app"]!["image"]!.GetValue<string>());
    }

    [Fact]
    public async Task Server_side_apply_to_status_merges_conditions_by_type()
    {
        await _api.CreateAsync(Api.AppDeployment("shop"));
        JsonObject Status(string type, string value) => JsonNode.Parse($$$$"""
            {"apiVersion":"skiff.dev/v1alpha1","kind":"AppDeployment","metadata":{"name":"shop"},
             "status":{"conditions":[{"type":"{{{{type}}}}","status":"{{{{value}}}}"}]}}
            """)!.AsObject();

        await _api.SendAsync(HttpMethod.Patch, Api.Item("shop") + "/status?fieldManager=skiff", Status("Ready", "True"), "application/apply-patch+yaml");
        var (code, obj, _) = await _api.SendAsync(HttpMethod.Patch, Api.Item("shop") + "/status?fieldManager=gc", Status("DiskPressure", "False"), "application/apply-patch+yaml");

        Assert.Equal(200, code);
        Assert.Equal(["Ready", "DiskPressure"], obj!["status"]!["conditions"]!.AsArray().Select(c => c!["type"]!.GetValue<string>()));
        var entry = obj["metadata"]!["managedFields"]!.AsArray().First(e => e!["manager"]!.GetValue<string>() == "gc")!;
        Assert.Equal("status", entry["subresource"]!.GetValue<string>());
        Assert.NotNull(entry["fieldsV1"]!["f:status"]!["f:conditions"]!["k:{\"type\":\"DiskPressure\"}"]);
    }

    [Fact]
    public async Task Apply_without_a_field_manager_is_invalid()
    {
        var (code, status, _) = await _api.SendAsync(HttpMethod.Patch, Api.Item("shop"), Api.AppDeployment("shop"), "application/apply-patch+yaml");

        Assert.Equal(422, code);
        Assert.Contains("fieldManager: Required value: is required for apply patch", status!["message"]!.GetValue<string>());
    }

    [Fact]
    public async Task Table_for_a_custom_resource_uses_the_printer_columns()
    {
        await _api.CreateAsync(Api.AppDeployment("shop"));

        var (code, table, _) = await _api.SendAsync(HttpMethod.Get, Api.Collection, accept: TableAccept);

        Assert.Equal(200, code);
        Assert.Equal("Table", table!["kind"]!.GetValue<string>());
        Assert.Equal("meta.k8s.io/v1", table["apiVersion"]!.GetValue<string>());
        Assert.NotNull(table["metadata"]!["resourceVersion"]);
        var columns = table["columnDefinitions"]!.AsArray();
        Assert.Equal(["Name", "Node", "Ready", "Phase", "Image", "Revision", "Age"], columns.Select(c => c!["name"]!.GetValue<string>()));
        Assert.Equal("""{"name":"Name","type":"string","format":"name","description":"Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names","priority":0}""", columns[0]!.ToJsonString(Api.Relaxed));
        Assert.Equal(("string", "", 0), (columns[1]!["type"]!.GetValue<string>(), columns[1]!["format"]!.GetValue<string>(), columns[1]!["priority"]!.GetValue<int>()));
        Assert.Equal("integer", columns[5]!["type"]!.GetValue<string>());
        Assert.Equal("date", columns[6]!["type"]!.GetValue<string>());
        var row = table["rows"]![0]!;
        Assert.Equal("""["shop","vps-1",null,null,null,null,"0s"]""", row["cells"]!.ToJsonString(Api.Relaxed));
        Assert.Equal("PartialObjectMetadata", row["object"]!["kind"]!.GetValue<string>());
        Assert.Equal("meta.k8s.io/v1", row["object"]!["apiVersion"]!.GetValue<string>());
        Assert.Equal("shop", row["object"]!["metadata"]!["name"]!.GetValue<string>());
    }

    [Fact]
    public async Task Table_cells_follow_conditions_filters_and_integer_columns()
    {
        // A clock that stands still: the AGE cell is "0s" however long a busy machine takes between create and get.
        await using var server = await TestApiServer.StartAsync(new TestApiServerOptions { CrdPaths = TestCrds.All, Clock = new FrozenClock(DateTimeOffset.UtcNow) });
        using var api = new Api(server);
        await api.CreateAsync(Api.AppDeployment("shop"));
        await api.SetReadyAsync("shop");

        var (_, table, _) = await api.SendAsync(HttpMethod.Get, Api.Item("shop"), accept: "application/json;as=Table;v=v1beta1;g=meta.k8s.io");

        Assert.Equal("meta.k8s.io/v1", table!["apiVersion"]!.GetValue<string>());
        Assert.Equal("""["shop","vps-1","True","Ready","shop@sha256:abc",3,"0s"]""", table["rows"]![0]!["cells"]!.ToJsonString(Api.Relaxed));
    }

    [Fact]
    public async Task Table_for_core_kinds_has_sensible_columns()
    {
        var (_, namespaces, _) = await _api.SendAsync(HttpMethod.Get, "/api/v1/namespaces", accept: TableAccept);

        Assert.Equal(["Name", "Status", "Age"], namespaces!["columnDefinitions"]!.AsArray().Select(c => c!["name"]!.GetValue<string>()));
        Assert.Contains(namespaces["rows"]!.AsArray(), r => r!["cells"]![0]!.GetValue<string>() == "default" && r["cells"]![1]!.GetValue<string>() == "Active");
    }

    [Fact]
    public async Task Limit_and_continue_page_through_a_list()
    {
        foreach (var n in new[] { "a", "b", "c" })
        {
            await _api.CreateAsync(Api.AppDeployment(n));
        }

        var page1 = await _api.GetAsync(Api.Collection + "?limit=2");
        var token = page1["metadata"]!["continue"]!.GetValue<string>();
        var page2 = await _api.GetAsync(Api.Collection + $"?limit=2&continue={Uri.EscapeDataString(token)}");

        Assert.Equal(["a", "b"], page1["items"]!.AsArray().Select(i => i!["metadata"]!["name"]!.GetValue<string>()));
        Assert.Equal(1, page1["metadata"]!["remainingItemCount"]!.GetValue<long>());
        Assert.Equal(["c"], page2["items"]!.AsArray().Select(i => i!["metadata"]!["name"]!.GetValue<string>()));
        Assert.Equal("", page2["metadata"]!["continue"]!.GetValue<string>());
        Assert.Equal("AppDeploymentList", page1["kind"]!.GetValue<string>());
    }

    [Fact]
    public async Task Cluster_scoped_custom_resources_live_outside_namespaces()
    {
        var policy = JsonNode.Parse("""{"apiVersion":"skiff.dev/v1alpha1","kind":"ImageGCPolicy","metadata":{"name":"default"},"spec":{"nodes":["vps-1"]}}""")!.AsObject();

        var created = await _api.CreateAsync(policy, "/apis/skiff.dev/v1alpha1/imagegcpolicies");
        var (code, status) = await _api.MergePatchAsync("/apis/skiff.dev/v1alpha1/imagegcpolicies/default/status",
            JsonNode.Parse("""{"status":{"nodes":[{"node":"vps-1","diskUsagePercent":42.5}]}}""")!);

        Assert.Null(created["metadata"]!["namespace"]);
        Assert.Equal(85, created["spec"]!["highThresholdPercent"]!.GetValue<long>());
        Assert.Equal(200, code);
        Assert.Equal(42.5, status!["status"]!["nodes"]![0]!["diskUsagePercent"]!.GetValue<double>());
    }

    [Fact]
    public async Task Discovery_lists_groups_resources_short_names_categories_and_status()
    {
        var apis = await _api.GetAsync("/apis");
        var resources = await _api.GetAsync("/apis/skiff.dev/v1alpha1");
        var core = await _api.GetAsync("/api");
        var (openApiV2, _, _) = await _api.SendAsync(HttpMethod.Get, "/openapi/v2", accept: "application/com.github.proto-openapi.spec.v2@v1.0+protobuf");
        var version = await _api.GetAsync("/version");

        Assert.Contains(apis["groups"]!.AsArray(), g => g!["name"]!.GetValue<string>() == "skiff.dev");
        Assert.Contains(apis["groups"]!.AsArray(), g => g!["name"]!.GetValue<string>() == "coordination.k8s.io");
        var appdeps = resources["resources"]!.AsArray().First(r => r!["name"]!.GetValue<string>() == "appdeployments")!;
        Assert.Equal("""{"name":"appdeployments","singularName":"appdeployment","namespaced":true,"kind":"AppDeployment","verbs":["create","delete","deletecollection","get","list","patch","update","watch"],"shortNames":["appdep"],"categories":["skiff"]}""",
            RemoveKey(appdeps, "storageVersionHash"));
        Assert.Contains(resources["resources"]!.AsArray(), r => r!["name"]!.GetValue<string>() == "appdeployments/status");
        Assert.Equal("v1", core["versions"]![0]!.GetValue<string>());
        Assert.Equal(404, openApiV2);
        Assert.Equal("32", version["minor"]!.GetValue<string>());
    }

    [Fact]
    public async Task Request_log_records_verb_resource_namespace_name_and_status()
    {
        await _api.CreateAsync(Api.AppDeployment("shop"));
        await _api.SendAsync(HttpMethod.Get, Api.Item("shop") + "/status");

        var log = _server.RequestLog;
        var create = log.Single(r => r.Verb == "create");
        var get = log.Single(r => r.Verb == "get" && r.Subresource == "status");

        Assert.Equal(("POST", "skiff.dev", "v1alpha1", "appdeployments", "default", "", 201), (create.Method, create.ApiGroup, create.ApiVersion, create.Resource, create.Namespace, create.Name, create.StatusCode));
        Assert.Equal(("shop", 200), (get.Name, get.StatusCode));
        _server.ClearRequestLog();
        Assert.Empty(_server.RequestLog);
    }

    [Fact]
    public async Task FailNext_injects_failures_for_matching_requests_only()
    {
        await _api.CreateAsync(Api.AppDeployment("shop"));
        _server.Faults.FailNext(2, "PATCH|PUT", "/appdeployments/shop$", 500);
        _server.Faults.FailNext(1, "GET", "/appdeployments/shop$", 429);

        var (first, body, _) = await _api.SendAsync(HttpMethod.Patch, Api.Item("shop"), new JsonObject(), "application/merge-patch+json");
        var (second, _, _) = await _api.SendAsync(HttpMethod.Put, Api.Item("shop"), await _api.GetAsyncOrNull(Api.Item("shop/status")) ?? new JsonObject());
        var (third, _) = await _api.MergePatchAsync(Api.Item("shop"), new JsonObject());
        var (throttled, _, response) = await _api.SendAsync(HttpMethod.Get, Api.Item("shop"));
        var (fine, _, _) = await _api.SendAsync(HttpMethod.Get, Api.Item("shop"));

        Assert.Equal((500, 500, 200), (first, second, third));
        Assert.Equal("InternalError", body!["reason"]!.GetValue<string>());
        Assert.Equal(429, throttled);
        Assert.Equal("1", response.Headers.RetryAfter!.ToString());
        Assert.Equal(200, fine);
    }

    [Fact]
    public async Task Pause_holds_requests_until_resumed()
    {
        _server.Faults.Pause();
        var request = _api.Http.GetAsync("/api/v1/namespaces/default");
        await Task.Delay(300);
        Assert.False(request.IsCompleted);

        _server.Faults.Resume();

        Assert.Equal(200, (int)(await request).StatusCode);
        _server.Faults.Pause(TimeSpan.FromMilliseconds(200));
        Assert.Equal(200, (int)(await _api.Http.GetAsync("/api/v1/namespaces/default")).StatusCode);
    }

    [Fact]
    public async Task ExpireAll_makes_old_watches_relist_but_lets_the_current_resourceVersion_watch()
    {
        var a = await _api.CreateAsync(Api.AppDeployment("a"));
        await _api.CreateAsync(Api.AppDeployment("b"));

        _server.Faults.ExpireAll();

        var old = await _api.Http.GetStringAsync(Api.Collection + $"?watch=true&resourceVersion={Rv(a)}");
        var current = await _api.Http.GetStringAsync(Api.Collection + $"?watch=true&resourceVersion={_server.ResourceVersion}&timeoutSeconds=1");
        Assert.Contains("\"code\":410", old);
        Assert.Equal("", current);
    }

    [Fact]
    public async Task Deleting_a_namespace_removes_its_objects()
    {
        await _api.CreateAsync(new JsonObject { ["apiVersion"] = "v1", ["kind"] = "Namespace", ["metadata"] = new JsonObject { ["name"] = "prod" } }, "/api/v1/namespaces");
        await _api.CreateAsync(Api.AppDeployment("shop"), "/apis/skiff.dev/v1alpha1/namespaces/prod/appdeployments");

        var (code, _, _) = await _api.SendAsync(HttpMethod.Delete, "/api/v1/namespaces/prod");
        var (gone, _, _) = await _api.SendAsync(HttpMethod.Get, "/apis/skiff.dev/v1alpha1/namespaces/prod/appdeployments/shop");

        Assert.Equal(200, code);
        Assert.Equal(404, gone);
    }

    [Theory]
    [InlineData(0, "0s")]
    [InlineData(59, "59s")]
    [InlineData(119, "119s")]
    [InlineData(5 * 60, "5m")]
    [InlineData(5 * 60 + 7, "5m7s")]
    [InlineData(47 * 60, "47m")]
    [InlineData(3 * 3600 + 20 * 60, "3h20m")]
    [InlineData(20 * 3600, "20h")]
    [InlineData(2 * 86400, "2d")]
    [InlineData(3 * 86400 + 5 * 3600, "3d5h")]
    [InlineData(40 * 86400, "40d")]
    [InlineData(800 * 86400, "2y70d")]
    public void Ages_read_like_kubectls_HumanDuration(int seconds, string expected) =>
        Assert.Equal(expected, Tables.HumanDuration(TimeSpan.FromSeconds(seconds)));

    private static string RemoveKey(JsonNode node, string key)
    {
        var copy = node.DeepClone().AsObject();
        copy.Remove(key);
        return copy.ToJsonString(Api.Relaxed);
    }
}

/// <summary>A clock that always says the same time (timers still run on the system clock).</summary>
internal sealed class FrozenClock(DateTimeOffset now) : TimeProvider
{
    public override DateTimeOffset GetUtcNow() => now;
}
