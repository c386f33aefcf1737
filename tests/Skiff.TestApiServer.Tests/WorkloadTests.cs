using System.Net;
using System.Text.Json.Nodes;
using k8s;
using k8s.Autorest;
using k8s.Models;

namespace Skiff.TestApiServer.Tests;

/// <summary>
/// The built-in kinds a <c>runtime: kubernetes</c> stack renders to: discovery, server-side apply with field ownership by
/// the kinds' list keys, generation, status subresources, what the registries set and refuse, and kubectl on them.
/// </summary>
public sealed class WorkloadTests : IAsyncLifetime
{
    private TestApiServer _server = null!;
    private Kubernetes _client = null!;

    public async Task InitializeAsync()
    {
        _server = await TestApiServer.StartAsync(TestCrds.Options());
        _client = _server.CreateClient();
    }

    public async Task DisposeAsync()
    {
        _client.Dispose();
        await _server.DisposeAsync();
    }

    private static V1Deployment Deployment(string image, int? replicas = null, string manager = "skiff") => new()
    {
        ApiVersion = "apps/v1",
        Kind = "Deployment",
        Metadata = new V1ObjectMeta { Name = "shop", NamespaceProperty = "default", Labels = new Dictionary<string, string> { ["dev.skiff.app"] = "shop", ["owner"] = manager } },
        Spec = new V1DeploymentSpec
        {
            Replicas = replicas,
            Selector = new V1LabelSelector { MatchLabels = new Dictionary<string, string> { ["app"] = "shop" } },
            Template = new V1PodTemplateSpec
            {
                Metadata = new V1ObjectMeta { Labels = new Dictionary<string, string> { ["app"] = "shop" } },
                Spec = new V1PodSpec { Containers = [new V1Container { Name = "app", Image = image, Env = [new V1EnvVar { Name = "A", Value = "1" }] }] },
            },
        },
    };

    private Task<V1Deployment> ApplyAsync(V1Deployment d, string manager = "skiff", bool force = false) =>
        _client.AppsV1.PatchNamespacedDeploymentAsync(new V1Patch(d, V1Patch.PatchType.ApplyPatch), d.Metadata.Name, "default", fieldManager: manager, force: force);

    private static string Message(HttpOperationException e) =>
        System.Text.Json.Nodes.JsonNode.Parse(e.Response.Content)?["message"]?.GetValue<string>() ?? "";

    [Fact]
    public async Task Discovery_lists_the_workload_kinds_with_their_status_subresources()
    {
        var apps = await _client.AppsV1.GetAPIResourcesAsync();
        Assert.Contains(apps.Resources, r => r.Name == "deployments" && r.Kind == "Deployment" && r.Namespaced);
        Assert.Contains(apps.Resources, r => r.Name == "deployments/status");
        Assert.Contains(apps.Resources, r => r.Name == "statefulsets/status");
        var batch = await _client.BatchV1.GetAPIResourcesAsync();
        Assert.Contains(batch.Resources, r => r.Name == "jobs/status");
        var networking = await _client.NetworkingV1.GetAPIResourcesAsync();
        Assert.Contains(networking.Resources, r => r.Name == "networkpolicies");
        var core = await _client.CoreV1.GetAPIResourcesAsync();
        Assert.Contains(core.Resources, r => r.Name == "services");
        Assert.Contains(core.Resources, r => r.Name == "persistentvolumeclaims");
    }

    [Fact]
    public async Task Apply_creates_then_bumps_generation_only_when_the_spec_changes()
    {
        var created = await ApplyAsync(Deployment("shop:1"));
        Assert.Equal(1, created.Metadata.Generation);
        Assert.Contains(created.Metadata.ManagedFields, m => m.Manager == "skiff" && m.Operation == "Apply");

        var again = await ApplyAsync(Deployment("shop:1"));
        Assert.Equal(created.Metadata.ResourceVersion, again.Metadata.ResourceVersion);

        var changed = await ApplyAsync(Deployment("shop:2"));
        Assert.Equal(2, changed.Metadata.Generation);
        Assert.Equal("shop:2", changed.Spec.Template.Spec.Containers.Single().Image);

        var labelled = Deployment("shop:2");
        labelled.Metadata.Labels["extra"] = "x";
        Assert.Equal(2, (await ApplyAsync(labelled)).Metadata.Generation);
    }

    [Fact]
    public async Task Status_is_written_only_through_the_status_subresource_and_leaves_generation()
    {
        await ApplyAsync(Deployment("shop:1"));
        var status = new V1Patch("""{"status":{"observedGeneration":1,"replicas":1,"readyReplicas":1,"conditions":[{"type":"Available","status":"True","reason":"MinimumReplicasAvailable"}]}}""", V1Patch.PatchType.MergePatch);
        var written = await _client.AppsV1.PatchNamespacedDeploymentStatusAsync(status, "shop", "default");
        Assert.Equal(1, written.Status.ReadyReplicas);
        Assert.Equal(1, written.Metadata.Generation);

        var ignored = new V1Patch("""{"status":{"readyReplicas":0}}""", V1Patch.PatchType.MergePatch);
        var main = await _client.AppsV1.PatchNamespacedDeploymentAsync(ignored, "shop", "default");
        Assert.Equal(1, main.Status.ReadyReplicas);
    }

    [Fact]
    public async Task Apply_by_another_manager_of_a_field_skiff_set_is_a_conflict_unless_forced()
    {
        await ApplyAsync(Deployment("shop:1", replicas: 1));

        var e = await Assert.ThrowsAsync<HttpOperationException>(() => ApplyAsync(Deployment("shop:1", replicas: 3, manager: "hpa"), "hpa"));
        Assert.Equal(HttpStatusCode.Conflict, e.Response.StatusCode);
        var message = Message(e);
        Assert.Contains("with \"skiff\"", message, StringComparison.Ordinal);
        Assert.Contains(".spec.replicas", message, StringComparison.Ordinal);

        var forced = await ApplyAsync(Deployment("shop:1", replicas: 3, manager: "hpa"), "hpa", force: true);
        Assert.Equal(3, forced.Spec.Replicas);
        var back = await Assert.ThrowsAsync<HttpOperationException>(() => ApplyAsync(Deployment("shop:1", replicas: 1)));
        Assert.Contains("with \"hpa\"", Message(back), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Containers_and_env_merge_by_name_so_two_managers_share_a_container()
    {
        await ApplyAsync(Deployment("shop:1"));
        var sidecar = Deployment("shop:1", manager: "other");
        sidecar.Spec.Template.Spec.Containers[0] = new V1Container { Name = "app", Env = [new V1EnvVar { Name = "B", Value = "2" }] };
        sidecar.Spec.Template.Spec.Containers.Add(new V1Container { Name = "proxy", Image = "envoy:1" });
        sidecar.Metadata.Labels.Remove("owner");
        var merged = await _client.AppsV1.PatchNamespacedDeploymentAsync(
            new V1Patch(new { apiVersion = "apps/v1", kind = "Deployment", metadata = new { name = "shop" }, spec = new { template = new { spec = sidecar.Spec.Template.Spec } } }, V1Patch.PatchType.ApplyPatch),
            "shop", "default", fieldManager: "other");

        var app = merged.Spec.Template.Spec.Containers.Single(c => c.Name == "app");
        Assert.Equal("shop:1", app.Image);
        Assert.Equal(["A", "B"], app.Env.Select(v => v.Name).Order().ToArray());
        Assert.Contains(merged.Spec.Template.Spec.Containers, c => c.Name == "proxy");

        // Skiff's next apply keeps what the other manager added: it owns only its own elements.
        var reapplied = await ApplyAsync(Deployment("shop:2"));
        Assert.Equal(["A", "B"], reapplied.Spec.Template.Spec.Containers.Single(c => c.Name == "app").Env.Select(v => v.Name).Order().ToArray());
        Assert.Equal("shop:2", reapplied.Spec.Template.Spec.Containers.Single(c => c.Name == "app").Image);
    }

    [Fact]
    public async Task A_job_gets_a_selector_from_its_uid_and_its_template_is_immutable()
    {
        var job = new V1Job
        {
            ApiVersion = "batch/v1",
            Kind = "Job",
            Metadata = new V1ObjectMeta { Name = "migrate-r1" },
            Spec = new V1JobSpec
            {
                BackoffLimit = 0,
                Template = new V1PodTemplateSpec { Spec = new V1PodSpec { RestartPolicy = "Never", Containers = [new V1Container { Name = "m", Image = "shop:1" }] } },
            },
        };
        var created = await _client.BatchV1.PatchNamespacedJobAsync(new V1Patch(job, V1Patch.PatchType.ApplyPatch), "migrate-r1", "default", fieldManager: "skiff");
        Assert.Equal(created.Metadata.Uid, created.Spec.Selector.MatchLabels["batch.kubernetes.io/controller-uid"]);
        Assert.Equal("migrate-r1", created.Spec.Template.Metadata.Labels["job-name"]);

        // Applying the same configuration again is no change (the server's labels are nobody's to remove).
        var again = await _client.BatchV1.PatchNamespacedJobAsync(new V1Patch(job, V1Patch.PatchType.ApplyPatch), "migrate-r1", "default", fieldManager: "skiff");
        Assert.Equal(created.Metadata.ResourceVersion, again.Metadata.ResourceVersion);

        job.Spec.Template.Spec.Containers[0].Image = "shop:2";
        var e = await Assert.ThrowsAsync<HttpOperationException>(() =>
            _client.BatchV1.PatchNamespacedJobAsync(new V1Patch(job, V1Patch.PatchType.ApplyPatch), "migrate-r1", "default", fieldManager: "skiff"));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, e.Response.StatusCode);
        Assert.Contains("spec.template", e.Response.Content, StringComparison.Ordinal);
        Assert.Contains("field is immutable", e.Response.Content, StringComparison.Ordinal);

        var complete = new V1Patch("""{"status":{"succeeded":1,"conditions":[{"type":"Complete","status":"True"}]}}""", V1Patch.PatchType.MergePatch);
        var done = await _client.BatchV1.PatchNamespacedJobStatusAsync(complete, "migrate-r1", "default");
        Assert.Contains(done.Status.Conditions, c => c.Type == "Complete" && c.Status == "True");
        Assert.Equal(1, done.Metadata.Generation);
    }

    [Fact]
    public async Task A_statefulset_refuses_changes_outside_its_updatable_fields()
    {
        V1StatefulSet Sts(string size) => new()
        {
            ApiVersion = "apps/v1",
            Kind = "StatefulSet",
            Metadata = new V1ObjectMeta { Name = "db" },
            Spec = new V1StatefulSetSpec
            {
                ServiceName = "db",
                Selector = new V1LabelSelector { MatchLabels = new Dictionary<string, string> { ["c"] = "db" } },
                Template = new V1PodTemplateSpec { Metadata = new V1ObjectMeta { Labels = new Dictionary<string, string> { ["c"] = "db" } }, Spec = new V1PodSpec { Containers = [new V1Container { Name = "pg", Image = "postgres:15" }] } },
                VolumeClaimTemplates = [new V1PersistentVolumeClaim { Metadata = new V1ObjectMeta { Name = "data" }, Spec = new V1PersistentVolumeClaimSpec { AccessModes = ["ReadWriteOnce"], Resources = new V1VolumeResourceRequirements { Requests = new Dictionary<string, ResourceQuantity> { ["storage"] = new(size) } } } }],
            },
        };
        await _client.AppsV1.PatchNamespacedStatefulSetAsync(new V1Patch(Sts("1Gi"), V1Patch.PatchType.ApplyPatch), "db", "default", fieldManager: "skiff");
        var e = await Assert.ThrowsAsync<HttpOperationException>(() =>
            _client.AppsV1.PatchNamespacedStatefulSetAsync(new V1Patch(Sts("2Gi"), V1Patch.PatchType.ApplyPatch), "db", "default", fieldManager: "skiff"));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, e.Response.StatusCode);
        Assert.Contains("updates to statefulset spec for fields other than", e.Response.Content, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_service_gets_a_cluster_ip_that_an_apply_without_one_keeps()
    {
        var svc = new V1Service
        {
            ApiVersion = "v1",
            Kind = "Service",
            Metadata = new V1ObjectMeta { Name = "shop" },
            Spec = new V1ServiceSpec { Selector = new Dictionary<string, string> { ["app"] = "shop" }, Ports = [new V1ServicePort { Name = "http", Port = 80, Protocol = "TCP" }] },
        };
        var created = await _client.CoreV1.PatchNamespacedServiceAsync(new V1Patch(svc, V1Patch.PatchType.ApplyPatch), "shop", "default", fieldManager: "skiff");
        Assert.StartsWith("10.96.", created.Spec.ClusterIP, StringComparison.Ordinal);
        svc.Spec.Ports[0].Port = 8080;
        var changed = await _client.CoreV1.PatchNamespacedServiceAsync(new V1Patch(svc, V1Patch.PatchType.ApplyPatch), "shop", "default", fieldManager: "skiff");
        Assert.Equal(created.Spec.ClusterIP, changed.Spec.ClusterIP);
        Assert.Equal(8080, changed.Spec.Ports.Single().Port);

        // A Service's delete answers with the deleted Service, as its registry does (a Deployment's with a Status).
        var deleted = await _client.CoreV1.DeleteNamespacedServiceAsync("shop", "default");
        Assert.Equal(created.Metadata.Uid, deleted.Metadata.Uid);
    }

    [Fact]
    public async Task Owner_references_are_kept_and_deleting_the_owner_does_not_cascade()
    {
        // No garbage collector: a real one would delete the dependent in the background once its owner is gone.
        var owner = await _client.CoreV1.CreateNamespacedConfigMapAsync(new V1ConfigMap { Metadata = new V1ObjectMeta { Name = "owner" } }, "default");
        var d = Deployment("shop:1");
        d.Metadata.OwnerReferences = [new V1OwnerReference { ApiVersion = "v1", Kind = "ConfigMap", Name = "owner", Uid = owner.Metadata.Uid, Controller = true }];
        await ApplyAsync(d);
        var selected = await _client.AppsV1.ListNamespacedDeploymentAsync("default", labelSelector: "dev.skiff.app=shop");
        Assert.Equal(owner.Metadata.Uid, selected.Items.Single().Metadata.OwnerReferences.Single().Uid);
        Assert.Empty((await _client.AppsV1.ListNamespacedDeploymentAsync("default", labelSelector: "dev.skiff.app=other")).Items);

        await _client.CoreV1.DeleteNamespacedConfigMapAsync("owner", "default");
        Assert.Single((await _client.AppsV1.ListNamespacedDeploymentAsync("default")).Items);
    }

    [Fact]
    public async Task Kubectl_gets_deployments_with_their_ready_column()
    {
        await ApplyAsync(Deployment("shop:1", replicas: 1));
        await _client.AppsV1.PatchNamespacedDeploymentStatusAsync(new V1Patch("""{"status":{"readyReplicas":1,"updatedReplicas":1,"availableReplicas":1}}""", V1Patch.PatchType.MergePatch), "shop", "default");
        using var kubectl = new Kubectl(_server);
        var r = await kubectl.RunAsync("get", "deploy", "shop");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Matches(@"shop\s+1/1\s+1\s+1\s+", r.Stdout);
    }

    [Fact]
    public async Task Kubectl_server_side_applies_a_deployment_and_reports_a_conflict_with_skiff()
    {
        await ApplyAsync(Deployment("shop:1", replicas: 1));
        using var kubectl = new Kubectl(_server);
        var file = kubectl.WriteFile("shop.yaml", """
            apiVersion: apps/v1
            kind: Deployment
            metadata:
              name: shop
            spec:
              replicas: 2
              selector:
                matchLabels: { app: shop }
              template:
                metadata:
                  labels: { app: shop }
                spec:
                  containers: [{ name: app, image: "shop:1" }]
            """);

        var refused = await kubectl.RunAsync("apply", "--server-side", "-f", file);
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("conflict with \"skiff\"", refused.Stderr, StringComparison.Ordinal);
        Assert.Contains(".spec.replicas", refused.Stderr, StringComparison.Ordinal);

        var forced = await kubectl.RunAsync("apply", "--server-side", "--force-conflicts", "-f", file);
        Assert.True(forced.ExitCode == 0, forced.ToString());
        Assert.Equal(2, (await _client.AppsV1.ReadNamespacedDeploymentAsync("shop", "default")).Spec.Replicas);
    }

    [Fact]
    public async Task A_workload_is_decoded_by_its_typed_fields_unknown_ones_refused_when_strict_dropped_otherwise()
    {
        const string collection = "/apis/apps/v1/namespaces/default/deployments";
        JsonObject Body() => (JsonObject)JsonNode.Parse("""
            {"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"typed"},
             "spec":{"replicass":2,"selector":{"matchLabels":{"app":"t"}},
              "template":{"metadata":{"labels":{"app":"t"}},"spec":{"containers":[{"name":"app","image":"t:1","imagee":"x"}]}}}}
            """)!;
        using var api = new Api(_server);

        var strict = await api.SendAsync(HttpMethod.Post, collection + "?fieldValidation=Strict", Body());
        Assert.Equal(400, strict.Code);
        Assert.Equal(
            "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field \"spec.replicass\", unknown field \"spec.template.spec.containers[0].imagee\"",
            strict.Body?["message"]?.GetValue<string>());

        var mistyped = Body();
        mistyped["spec"]!.AsObject().Remove("replicass");
        mistyped["spec"]!["replicas"] = "2";
        var wrongType = await api.SendAsync(HttpMethod.Post, collection, mistyped);
        Assert.Equal(400, wrongType.Code);
        Assert.Contains("json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32", wrongType.Body?["message"]?.GetValue<string>(), StringComparison.Ordinal);

        // The server's default (Warn): stored without the unknown fields, with a warning for each.
        var warned = await api.SendAsync(HttpMethod.Post, collection, Body());
        Assert.Equal(201, warned.Code);
        Assert.Contains(warned.Response.Headers.GetValues("Warning"), w => w.Contains("spec.replicass", StringComparison.Ordinal));
        var stored = await _client.AppsV1.ReadNamespacedDeploymentAsync("typed", "default");
        Assert.Null(stored.Spec.Replicas);
        Assert.Equal("t:1", stored.Spec.Template.Spec.Containers[0].Image);
        var raw = await api.GetAsync(collection + "/typed");
        Assert.Null(raw["spec"]!["template"]!["spec"]!["containers"]![0]!["imagee"]);
    }

    [Fact]
    public async Task Pods_are_listed_by_label_and_kubectl_shows_the_status_the_test_writes_as_the_kubelet()
    {
        foreach (var (name, revision) in new[] { ("shop-a", "1"), ("shop-b", "2") })
        {
            await _client.CoreV1.CreateNamespacedPodAsync(new V1Pod
            {
                Metadata = new V1ObjectMeta { Name = name, Labels = new Dictionary<string, string> { ["app"] = "shop", ["dev.skiff.revision"] = revision } },
                Spec = new V1PodSpec { Containers = [new V1Container { Name = "app", Image = "shop:" + revision }] },
            }, "default");
        }

        await _client.CoreV1.PatchNamespacedPodStatusAsync(new V1Patch("""
            {"status":{"phase":"Running","containerStatuses":[{"name":"app","image":"shop:2","imageID":"","ready":false,"restartCount":3,
              "state":{"waiting":{"reason":"CrashLoopBackOff","message":"back-off 40s restarting failed container"}},
              "lastState":{"terminated":{"exitCode":1,"reason":"Error"}}}]}}
            """, V1Patch.PatchType.MergePatch), "shop-b", "default");

        var selected = await _client.CoreV1.ListNamespacedPodAsync("default", labelSelector: "app=shop,dev.skiff.revision=2");
        var pod = Assert.Single(selected.Items);
        Assert.Equal(("CrashLoopBackOff", 3, 1), (pod.Status.ContainerStatuses[0].State.Waiting.Reason, pod.Status.ContainerStatuses[0].RestartCount, pod.Status.ContainerStatuses[0].LastState.Terminated.ExitCode));

        using var kubectl = new Kubectl(_server);
        var r = await kubectl.RunAsync("get", "pods", "-l", "app=shop");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Matches(@"shop-b\s+0/1\s+CrashLoopBackOff\s+3\s+", r.Stdout);
        Assert.Matches(@"shop-a\s+0/1\s+Pending\s+0\s+", r.Stdout);
    }
}
