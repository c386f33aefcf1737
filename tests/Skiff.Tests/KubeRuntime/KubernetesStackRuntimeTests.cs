using System.Text;
using k8s;
using k8s.Models;
using Microsoft.Extensions.Logging.Abstractions;
using Skiff.Api;
using Skiff.KubeRuntime;
using Skiff.Reconcile;
using Skiff.Sources.Kubernetes;
using Skiff.Tests.Resources;
using Skiff.Yaml;
using ApiServer = Skiff.TestApiServer.TestApiServer;
using ApiServerOptions = Skiff.TestApiServer.TestApiServerOptions;

namespace Skiff.Tests.KubeRuntime;

/// <summary>
/// runtime: kubernetes against the in-process test API server: the runtime applies with server-side apply, and the test
/// plays the controller-manager (it writes the StatefulSets', Job's and Deployment's status, and makes the claims).
/// </summary>
public sealed class KubernetesStackRuntimeTests : IAsyncLifetime
{
    private const string Ns = "default";
    private ApiServer _server = null!;
    private Kubernetes _client = null!;
    private KubernetesStackRuntime _runtime = null!;
    private AppDeployment _shop = null!;

    public async Task InitializeAsync()
    {
        _server = await ApiServer.StartAsync(new ApiServerOptions { CrdPaths = [Path.Combine(RepoPaths.Crds, "skiff.dev_appdeployments.yaml")] });
        _client = _server.CreateClient();
        _runtime = new KubernetesStackRuntime(_client, new KubernetesSecretSource(_client), NullLogger<KubernetesStackRuntime>.Instance);
        _shop = Stack();
    }

    public async Task DisposeAsync()
    {
        _client.Dispose();
        await _server.DisposeAsync();
    }

    private static AppDeployment Stack(string reclaimPolicy = "Retain")
    {
        var yaml = $$"""
            apiVersion: skiff.dev/v1alpha1
            kind: AppDeployment
            metadata: { name: shop, namespace: default }
            spec:
              runtime: kubernetes
              app:
                image: skiff-test/app:1
                env: [{ name: GREETING, value: hello }]
                ports: [{ name: http, containerPort: 8080 }]
                healthCheck: { http: { path: /healthz, port: http } }
                migrate: { command: [testapp, migrate], timeoutSeconds: 60 }
              database:
                engine: postgres
                image: skiff-test/postgres:15
                storage: { size: 1Gi, reclaimPolicy: {{reclaimPolicy}} }
              rollout: { progressDeadlineSeconds: 60 }
            """;
        var doc = ResourceLoader.LoadText("shop.yaml", yaml).Single();
        Assert.True(doc.IsValid, string.Join("; ", doc.Errors));
        var shop = (AppDeployment)doc.Resource!;
        shop.Metadata.Uid = Guid.NewGuid().ToString();
        shop.Metadata.Generation = 1;
        return shop;
    }

    private async Task<StackResult> ReconcileAsync()
    {
        var result = await _runtime.ReconcileAsync(_shop, CancellationToken.None);
        _shop.Status = result.Status;
        return result;
    }

    private void Change(Action<AppDeploymentSpec> edit)
    {
        edit(_shop.Spec);
        _shop.Metadata.Generation++;
    }

    // The controller-manager's part, as its controllers would write it.
    private async Task MarkDataReadyAsync()
    {
        foreach (var sts in (await _client.AppsV1.ListNamespacedStatefulSetAsync(Ns)).Items)
        {
            await _client.AppsV1.PatchNamespacedStatefulSetStatusAsync(Status(new { observedGeneration = sts.Metadata.Generation, replicas = 1, readyReplicas = 1 }), sts.Metadata.Name, Ns);
            foreach (var template in sts.Spec.VolumeClaimTemplates ?? [])
            {
                var claim = $"{template.Metadata.Name}-{sts.Metadata.Name}-0";
                if ((await _client.CoreV1.ListNamespacedPersistentVolumeClaimAsync(Ns, fieldSelector: $"metadata.name={claim}")).Items.Count == 0)
                {
                    await _client.CoreV1.CreateNamespacedPersistentVolumeClaimAsync(
                        new V1PersistentVolumeClaim { Metadata = new V1ObjectMeta { Name = claim, Labels = template.Metadata.Labels }, Spec = template.Spec }, Ns);
                }
            }
        }
    }

    private Task FinishJobAsync(long revision, bool succeeded) =>
        _client.BatchV1.PatchNamespacedJobStatusAsync(
            Status(succeeded
                ? new { succeeded = 1, failed = 0, conditions = new object[] { new { type = "Complete", status = "True" } } }
                : new { succeeded = 0, failed = 1, conditions = new object[] { new { type = "Failed", status = "True", reason = "BackoffLimitExceeded", message = "Job has reached the specified backoff limit" } } }),
            $"shop-migrate-r{revision}", Ns);

    private async Task RollOutDeploymentAsync()
    {
        var d = await DeploymentAsync();
        await _client.AppsV1.PatchNamespacedDeploymentStatusAsync(Status(new
        {
            observedGeneration = d.Metadata.Generation,
            replicas = 1,
            updatedReplicas = 1,
            readyReplicas = 1,
            availableReplicas = 1,
            conditions = new object[]
            {
                new { type = "Available", status = "True", reason = "MinimumReplicasAvailable" },
                new { type = "Progressing", status = "True", reason = "NewReplicaSetAvailable", message = "ReplicaSet \"shop-5d8f\" has successfully progressed." },
            },
        }), "shop", Ns);
    }

    /// <summary>maxUnavailable 0: the old pod keeps serving while the new one never becomes available.</summary>
    private async Task ExceedProgressDeadlineAsync()
    {
        var d = await DeploymentAsync();
        await _client.AppsV1.PatchNamespacedDeploymentStatusAsync(Status(new
        {
            observedGeneration = d.Metadata.Generation,
            replicas = 2,
            updatedReplicas = 1,
            readyReplicas = 1,
            availableReplicas = 1,
            conditions = new object[]
            {
                new { type = "Available", status = "True", reason = "MinimumReplicasAvailable" },
                new { type = "Progressing", status = "False", reason = "ProgressDeadlineExceeded", message = "ReplicaSet \"shop-7c9b\" has timed out progressing." },
            },
        }), "shop", Ns);
    }

    /// <summary>
    /// The ReplicaSet controller's and the kubelet's part: a pod of the Deployment's current template, then its
    /// container's status as the kubelet writes it.
    /// </summary>
    private async Task<string> StartPodAsync(V1PodTemplateSpec template, string suffix, object containerStatus)
    {
        var name = $"shop-{suffix}";
        await _client.CoreV1.CreateNamespacedPodAsync(new V1Pod { Metadata = new V1ObjectMeta { Name = name, Labels = template.Metadata.Labels }, Spec = template.Spec }, Ns);
        await _client.CoreV1.PatchNamespacedPodStatusAsync(Status(new { phase = "Running", containerStatuses = new[] { containerStatus } }), name, Ns);
        return name;
    }

    private static V1Patch Status(object status) => new(KubernetesJson.Serialize(new { status }), V1Patch.PatchType.MergePatch);

    private Task<V1Deployment> DeploymentAsync() => _client.AppsV1.ReadNamespacedDeploymentAsync("shop", Ns);

    private async Task<bool> ExistsAsync(Func<Task> read)
    {
        try
        {
            await read();
            return true;
        }
        catch (k8s.Autorest.HttpOperationException e) when (e.Response.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            return false;
        }
    }

    private static Condition Cond(AppDeploymentStatus status, string type) => Conditions.Get(status, type) ?? throw new InvalidOperationException($"no {type} condition");

    /// <summary>From nothing to Ready at revision 1, step by step as the controllers act.</summary>
    private async Task DeployAsync()
    {
        await ReconcileAsync();
        await MarkDataReadyAsync();
        await ReconcileAsync();
        await FinishJobAsync(1, succeeded: true);
        await ReconcileAsync();
        await RollOutDeploymentAsync();
        var ready = await ReconcileAsync();
        Assert.Equal(Phases.Ready, ready.Status.Phase);
    }

    [Fact]
    public async Task Create_applies_the_data_first_then_the_migration_Job_then_the_Deployment()
    {
        var first = await ReconcileAsync();
        Assert.Equal(Phases.Progressing, first.Status.Phase);
        Assert.Contains("StatefulSet", Cond(first.Status, ConditionTypes.Reconciling).Message, StringComparison.Ordinal);
        Assert.NotNull(first.RequeueAfter);
        var secret = await _client.CoreV1.ReadNamespacedSecretAsync("shop-db", Ns);
        Assert.StartsWith("postgres://", Encoding.UTF8.GetString(secret.Data["url"]), StringComparison.Ordinal);
        Assert.Contains("@shop-database:5432/", Encoding.UTF8.GetString(secret.Data["url"]), StringComparison.Ordinal);
        Assert.True(await ExistsAsync(() => _client.AppsV1.ReadNamespacedStatefulSetAsync("shop-database", Ns)));
        Assert.True(await ExistsAsync(() => _client.CoreV1.ReadNamespacedServiceAsync("shop-database", Ns)));
        Assert.True(await ExistsAsync(() => _client.NetworkingV1.ReadNamespacedNetworkPolicyAsync("shop-database", Ns)));
        Assert.True(await ExistsAsync(() => _client.CoreV1.ReadNamespacedServiceAsync("shop", Ns)));
        Assert.Empty((await _client.BatchV1.ListNamespacedJobAsync(Ns)).Items);
        Assert.False(await ExistsAsync(DeploymentAsync));

        await MarkDataReadyAsync();
        var migrating = await ReconcileAsync();
        Assert.Equal("shop-migrate-r1", Assert.Single((await _client.BatchV1.ListNamespacedJobAsync(Ns)).Items).Metadata.Name);
        Assert.False(await ExistsAsync(DeploymentAsync));
        Assert.Equal(Reasons.Migrating, Cond(migrating.Status, ConditionTypes.Migrated).Reason);

        await FinishJobAsync(1, succeeded: true);
        await ReconcileAsync();
        var deployment = await DeploymentAsync();
        Assert.Equal("skiff-test/app:1", deployment.Spec.Template.Spec.Containers.Single().Image);
        Assert.Equal("1", deployment.Spec.Template.Metadata.Labels[SkiffLabels.Revision]);
        Assert.Contains(deployment.Metadata.ManagedFields, m => m.Manager == KubernetesApplier.FieldManager && m.Operation == "Apply");
        Assert.Equal("False", Cond(_shop.Status!, ConditionTypes.Ready).Status);

        await RollOutDeploymentAsync();
        var ready = await ReconcileAsync();
        Assert.Equal(Phases.Ready, ready.Status.Phase);
        Assert.Equal("True", Cond(ready.Status, ConditionTypes.Ready).Status);
        Assert.Equal("True", Cond(ready.Status, ConditionTypes.Migrated).Status);
        Assert.Equal("True", Cond(ready.Status, ConditionTypes.DatabaseReady).Status);
        var record = Assert.Single(ready.Status.History!);
        Assert.Equal((1L, Outcomes.Succeeded), (record.Revision, record.Outcome));
        Assert.Equal("skiff-test/app:1", ready.Status.LastGoodImage);

        // Live: another reconcile changes nothing.
        var rv = _server.ResourceVersion;
        await ReconcileAsync();
        Assert.Equal(rv, _server.ResourceVersion);
    }

    [Fact]
    public async Task An_image_change_runs_the_new_Job_to_completion_before_the_Deployment_changes()
    {
        await DeployAsync();
        var before = await DeploymentAsync();

        Change(s => s.App.Image = "skiff-test/app:2");
        var migrating = await ReconcileAsync();
        Assert.Equal(Phases.Progressing, migrating.Status.Phase);
        Assert.True(await ExistsAsync(() => _client.BatchV1.ReadNamespacedJobAsync("shop-migrate-r2", Ns)));
        Assert.Equal("skiff-test/app:2", (await _client.BatchV1.ReadNamespacedJobAsync("shop-migrate-r2", Ns)).Spec.Template.Spec.Containers.Single().Image);
        await ReconcileAsync();
        Assert.Equal(before.Metadata.ResourceVersion, (await DeploymentAsync()).Metadata.ResourceVersion);

        await FinishJobAsync(2, succeeded: true);
        await ReconcileAsync();
        var rolling = await DeploymentAsync();
        Assert.Equal("skiff-test/app:2", rolling.Spec.Template.Spec.Containers.Single().Image);
        Assert.Equal(2, rolling.Metadata.Generation);
        Assert.Equal("True", Cond(_shop.Status!, ConditionTypes.Ready).Status);
        Assert.Equal("True", Cond(_shop.Status!, ConditionTypes.Reconciling).Status);

        await RollOutDeploymentAsync();
        var ready = await ReconcileAsync();
        Assert.Equal(Phases.Ready, ready.Status.Phase);
        Assert.Equal(2, ready.Status.Revision);
        Assert.Equal("skiff-test/app:2", ready.Status.LastGoodImage);
        Assert.Equal([Outcomes.Succeeded, Outcomes.Succeeded], ready.Status.History!.Select(h => h.Outcome));
    }

    [Fact]
    public async Task A_failed_migration_Job_fails_the_revision_and_leaves_the_Deployment_untouched()
    {
        await DeployAsync();
        var before = await DeploymentAsync();

        Change(s => s.App.Image = "skiff-test/app:bad-migrate");
        await ReconcileAsync();
        await FinishJobAsync(2, succeeded: false);
        var failed = await ReconcileAsync();

        Assert.Equal(Phases.Degraded, failed.Status.Phase);
        var stalled = Cond(failed.Status, ConditionTypes.Stalled);
        Assert.Equal(("True", Reasons.MigrationFailed), (stalled.Status, stalled.Reason));
        Assert.Contains("shop-migrate-r2 failed", stalled.Message, StringComparison.Ordinal);
        Assert.Contains("rolled back to revision 1 (skiff-test/app:1)", stalled.Message, StringComparison.Ordinal);
        Assert.Equal(("False", Reasons.MigrationFailed), (Cond(failed.Status, ConditionTypes.Migrated).Status, Cond(failed.Status, ConditionTypes.Migrated).Reason));
        Assert.Equal(("False", Reasons.MigrationFailed), (Cond(failed.Status, ConditionTypes.Ready).Status, Cond(failed.Status, ConditionTypes.Ready).Reason));
        var record = failed.Status.History!.Last();
        Assert.Equal((2L, Outcomes.RolledBack, Reasons.MigrationFailed), (record.Revision, record.Outcome, record.Reason));
        Assert.Equal(1, failed.Status.Revision);
        Assert.Equal(before.Metadata.ResourceVersion, (await DeploymentAsync()).Metadata.ResourceVersion);

        // Not retried: the failure stays until the spec changes.
        var again = await ReconcileAsync();
        Assert.Equal(Reasons.MigrationFailed, Cond(again.Status, ConditionTypes.Stalled).Reason);
        Assert.Equal(before.Metadata.ResourceVersion, (await DeploymentAsync()).Metadata.ResourceVersion);
        Assert.Single((await _client.BatchV1.ListNamespacedJobAsync(Ns)).Items, j => j.Metadata.Name == "shop-migrate-r2");
    }

    [Fact]
    public async Task ProgressDeadlineExceeded_rolls_back_to_the_last_good_template()
    {
        await DeployAsync();
        var good = KubernetesJson.Serialize((await DeploymentAsync()).Spec.Template);

        Change(s =>
        {
            s.App.Image = "skiff-test/app:bad-health";
            s.App.Env![0].Value = "changed";
        });
        await ReconcileAsync();
        await FinishJobAsync(2, succeeded: true);
        await ReconcileAsync();
        Assert.Equal("skiff-test/app:bad-health", (await DeploymentAsync()).Spec.Template.Spec.Containers.Single().Image);

        await ExceedProgressDeadlineAsync();
        var failed = await ReconcileAsync();

        var stalled = Cond(failed.Status, ConditionTypes.Stalled);
        Assert.Equal(("True", Reasons.ProgressDeadlineExceeded), (stalled.Status, stalled.Reason));
        Assert.Contains("has timed out progressing", stalled.Message, StringComparison.Ordinal);
        Assert.Equal(Phases.Degraded, failed.Status.Phase);
        Assert.Equal((Outcomes.RolledBack, Reasons.ProgressDeadlineExceeded), (failed.Status.History!.Last().Outcome, failed.Status.History!.Last().Reason));
        var back = await DeploymentAsync();
        Assert.Equal(good, KubernetesJson.Serialize(back.Spec.Template));
        Assert.Equal("hello", back.Spec.Template.Spec.Containers.Single().Env.Single(e => e.Name == "GREETING").Value);
        Assert.Equal(3, back.Metadata.Generation);
    }

    [Fact]
    public async Task A_crash_looping_pod_of_the_new_revision_rolls_back_before_the_progress_deadline()
    {
        await DeployAsync();
        var good = KubernetesJson.Serialize((await DeploymentAsync()).Spec.Template);
        Change(s => s.App.Image = "skiff-test/app:crash");
        await ReconcileAsync();
        await FinishJobAsync(2, succeeded: true);
        await ReconcileAsync();
        var template = (await DeploymentAsync()).Spec.Template;
        Assert.Equal("skiff-test/app:crash", template.Spec.Containers.Single().Image);

        // Started once and exited: not yet a crash loop, the rollout waits.
        var pod = await StartPodAsync(template, "7c9b-x2k", new
        {
            name = "app", image = "skiff-test/app:crash", ready = false, restartCount = 1, started = false,
            state = new { running = new { startedAt = "2026-01-01T00:00:10Z" } },
            lastState = new { terminated = new { exitCode = 3, reason = "Error", startedAt = "2026-01-01T00:00:00Z", finishedAt = "2026-01-01T00:00:05Z" } },
        });
        var waiting = await ReconcileAsync();
        Assert.Equal(Phases.Progressing, waiting.Status.Phase);
        Assert.Equal(Outcomes.Progressing, waiting.Status.History!.Last().Outcome);

        // The kubelet backs off restarting it: CrashLoopBackOff fails the revision at once, as ContainerExited does on Docker.
        await _client.CoreV1.PatchNamespacedPodStatusAsync(Status(new
        {
            containerStatuses = new[]
            {
                new
                {
                    name = "app", image = "skiff-test/app:crash", ready = false, restartCount = 2, started = false,
                    state = new { waiting = new { reason = "CrashLoopBackOff", message = "back-off 20s restarting failed container=app pod=" + pod } },
                    lastState = new { terminated = new { exitCode = 3, reason = "Error", startedAt = "2026-01-01T00:00:20Z", finishedAt = "2026-01-01T00:00:25Z" } },
                },
            },
        }), pod, Ns);
        var failed = await ReconcileAsync();

        var stalled = Cond(failed.Status, ConditionTypes.Stalled);
        Assert.Equal(("True", Reasons.ContainerExited), (stalled.Status, stalled.Reason));
        Assert.Contains($"container app of pod {pod} exited with code 3 (restarted 2 times)", stalled.Message, StringComparison.Ordinal);
        Assert.Contains("rolled back to revision 1", stalled.Message, StringComparison.Ordinal);
        Assert.Equal(("False", Reasons.ContainerExited), (Cond(failed.Status, ConditionTypes.AppReady).Status, Cond(failed.Status, ConditionTypes.AppReady).Reason));
        Assert.Equal(Phases.Degraded, failed.Status.Phase);
        Assert.Equal((Outcomes.RolledBack, Reasons.ContainerExited), (failed.Status.History!.Last().Outcome, failed.Status.History!.Last().Reason));
        Assert.Equal(good, KubernetesJson.Serialize((await DeploymentAsync()).Spec.Template));

        // The failed spec is not retried: the next reconcile leaves the last good template in place.
        await ReconcileAsync();
        Assert.Equal(good, KubernetesJson.Serialize((await DeploymentAsync()).Spec.Template));
    }

    [Fact]
    public async Task A_new_image_that_does_not_exist_fails_as_ImageNotFound_and_rolls_back()
    {
        await DeployAsync();
        Change(s => s.App.Image = "skiff-test/app:missing");
        await ReconcileAsync();
        await FinishJobAsync(2, succeeded: true);
        await ReconcileAsync();
        var template = (await DeploymentAsync()).Spec.Template;
        await StartPodAsync(template, "9f1c-p7q", new
        {
            name = "app", image = "skiff-test/app:missing", ready = false, restartCount = 0, started = false,
            state = new { waiting = new { reason = "ErrImagePull", message = "failed to pull and unpack image \"docker.io/skiff-test/app:missing\": failed to resolve reference \"docker.io/skiff-test/app:missing\": docker.io/skiff-test/app:missing: not found" } },
        });

        var failed = await ReconcileAsync();
        var stalled = Cond(failed.Status, ConditionTypes.Stalled);
        Assert.Equal(("True", Reasons.ImageNotFound), (stalled.Status, stalled.Reason));
        Assert.Contains("cannot pull its image (ErrImagePull: failed to pull and unpack image", stalled.Message, StringComparison.Ordinal);
        Assert.Equal((Outcomes.RolledBack, Reasons.ImageNotFound), (failed.Status.History!.Last().Outcome, failed.Status.History!.Last().Reason));
        Assert.Equal("skiff-test/app:1", (await DeploymentAsync()).Spec.Template.Spec.Containers.Single().Image);
    }

    [Theory]
    [InlineData("Retain")]
    [InlineData("Delete")]
    public async Task Delete_keeps_the_claims_and_the_Secret_only_with_Retain(string reclaimPolicy)
    {
        _shop = Stack(reclaimPolicy);
        await DeployAsync();
        Assert.Single((await _client.CoreV1.ListNamespacedPersistentVolumeClaimAsync(Ns)).Items);

        await _runtime.DeleteAsync(new StackNames(Ns, "shop"), _shop.Spec, CancellationToken.None);

        Assert.False(await ExistsAsync(DeploymentAsync));
        Assert.Empty((await _client.AppsV1.ListNamespacedStatefulSetAsync(Ns)).Items);
        Assert.Empty((await _client.BatchV1.ListNamespacedJobAsync(Ns)).Items);
        Assert.Empty((await _client.CoreV1.ListNamespacedServiceAsync(Ns)).Items);
        Assert.Empty((await _client.NetworkingV1.ListNamespacedNetworkPolicyAsync(Ns)).Items);
        var kept = reclaimPolicy == "Retain";
        Assert.Equal(kept ? 1 : 0, (await _client.CoreV1.ListNamespacedPersistentVolumeClaimAsync(Ns)).Items.Count);
        Assert.Equal(kept, await ExistsAsync(() => _client.CoreV1.ReadNamespacedSecretAsync("shop-db", Ns)));

        // Idempotent: a second delete (a retry after a crash) finds nothing more to do.
        await _runtime.DeleteAsync(new StackNames(Ns, "shop"), _shop.Spec, CancellationToken.None);
    }

    [Fact]
    public async Task A_field_another_manager_owns_is_reported_as_FieldConflict_and_never_overwritten()
    {
        await DeployAsync();
        // Someone hot-fixes the image with a server-side apply of their own, taking the field from Skiff.
        var hotfix = new
        {
            apiVersion = "apps/v1",
            kind = "Deployment",
            metadata = new { name = "shop" },
            spec = new { template = new { spec = new { containers = new[] { new { name = "app", image = "hotfix:1" } } } } },
        };
        await _client.AppsV1.PatchNamespacedDeploymentAsync(new V1Patch(hotfix, V1Patch.PatchType.ApplyPatch), "shop", Ns, fieldManager: "kubectl", force: true);

        var result = await ReconcileAsync();

        var stalled = Cond(result.Status, ConditionTypes.Stalled);
        Assert.Equal(("True", Reasons.FieldConflict), (stalled.Status, stalled.Reason));
        Assert.Contains("Deployment default/shop", stalled.Message, StringComparison.Ordinal);
        Assert.Contains(".spec.template.spec.containers[name=\"app\"].image", stalled.Message, StringComparison.Ordinal);
        Assert.Contains("\"kubectl\"", stalled.Message, StringComparison.Ordinal);
        Assert.Equal("False", Cond(result.Status, ConditionTypes.Ready).Status);
        Assert.Equal(KubernetesStackRuntime.ResyncInterval, result.RequeueAfter);
        Assert.Equal("hotfix:1", (await DeploymentAsync()).Spec.Template.Spec.Containers.Single().Image);
    }

    [Fact]
    public async Task Fields_Skiff_itself_wrote_before_are_taken_over_without_a_conflict()
    {
        // The app Service written earlier by Skiff with a create (an Update operation), with another port name.
        await _client.CoreV1.CreateNamespacedServiceAsync(new V1Service
        {
            Metadata = new V1ObjectMeta { Name = "shop", Labels = new Dictionary<string, string> { [SkiffLabels.ManagedBy] = "skiff", [SkiffLabels.App] = "shop" } },
            Spec = new V1ServiceSpec { Selector = new Dictionary<string, string> { ["app.kubernetes.io/instance"] = "shop", ["app.kubernetes.io/component"] = "old" }, Ports = [new V1ServicePort { Name = "web", Port = 8080, Protocol = "TCP" }] },
        }, Ns, fieldManager: KubernetesApplier.FieldManager);

        var result = await ReconcileAsync();

        Assert.Equal("False", Cond(result.Status, ConditionTypes.Stalled).Status);
        var service = await _client.CoreV1.ReadNamespacedServiceAsync("shop", Ns);
        Assert.Equal("app", service.Spec.Selector["app.kubernetes.io/component"]);
        Assert.Equal("http", service.Spec.Ports.Single().Name);
    }

    [Fact]
    public async Task Objects_the_spec_no_longer_renders_are_pruned_by_label_and_owner()
    {
        await DeployAsync();
        // Another stack's object with the same labels but not owned by this AppDeployment stays.
        await _client.NetworkingV1.CreateNamespacedNetworkPolicyAsync(new V1NetworkPolicy
        {
            Metadata = new V1ObjectMeta { Name = "shop-extra", Labels = new Dictionary<string, string> { [SkiffLabels.ManagedBy] = "skiff", [SkiffLabels.App] = "shop" } },
            Spec = new V1NetworkPolicySpec { PodSelector = new V1LabelSelector() },
        }, Ns);

        Change(s =>
        {
            s.App.Ports = null;
            s.App.HealthCheck = null;
        });
        await ReconcileAsync();
        await FinishJobAsync(2, succeeded: true);
        await ReconcileAsync();
        Assert.True(await ExistsAsync(() => _client.CoreV1.ReadNamespacedServiceAsync("shop", Ns)), "pruned before the rollout completed");
        await RollOutDeploymentAsync();
        var ready = await ReconcileAsync();

        Assert.Equal(Phases.Ready, ready.Status.Phase);
        Assert.False(await ExistsAsync(() => _client.CoreV1.ReadNamespacedServiceAsync("shop", Ns)));
        Assert.True(await ExistsAsync(() => _client.CoreV1.ReadNamespacedServiceAsync("shop-database", Ns)));
        Assert.True(await ExistsAsync(() => _client.NetworkingV1.ReadNamespacedNetworkPolicyAsync("shop-extra", Ns)));
        Assert.True(await ExistsAsync(() => _client.CoreV1.ReadNamespacedSecretAsync("shop-db", Ns)));
    }

    [Fact]
    public async Task A_missing_Secret_stalls_the_stack_before_anything_is_applied()
    {
        _shop.Spec.App.Env!.Add(new EnvVar { Name = "TOKEN", ValueFrom = new EnvVarSource { SecretKeyRef = new SecretKeySelector { Name = "shop-token", Key = "token" } } });

        var result = await ReconcileAsync();

        var stalled = Cond(result.Status, ConditionTypes.Stalled);
        Assert.Equal(("True", Reasons.SecretNotFound), (stalled.Status, stalled.Reason));
        Assert.Contains("spec.app.env[1].valueFrom.secretKeyRef: Secret \"shop-token\" not found", stalled.Message, StringComparison.Ordinal);
        Assert.Empty((await _client.AppsV1.ListNamespacedStatefulSetAsync(Ns)).Items);
    }

    [Fact]
    public async Task A_change_Kubernetes_refuses_on_a_live_object_stalls_with_the_API_servers_words()
    {
        await DeployAsync();

        Change(s => s.Database!.Storage!.Size = "5Gi");
        var result = await ReconcileAsync();

        var stalled = Cond(result.Status, ConditionTypes.Stalled);
        Assert.Equal(("True", Reasons.InvalidSpec), (stalled.Status, stalled.Reason));
        Assert.Contains("StatefulSet default/shop-database", stalled.Message, StringComparison.Ordinal);
        Assert.Contains("updates to statefulset spec for fields other than", stalled.Message, StringComparison.Ordinal);
        Assert.Equal("1Gi", (await _client.AppsV1.ReadNamespacedStatefulSetAsync("shop-database", Ns)).Spec.VolumeClaimTemplates.Single().Spec.Resources.Requests["storage"].ToString());
    }

    [Fact]
    public async Task Kubectl_lists_the_stacks_workloads_by_its_labels()
    {
        await DeployAsync();
        using var kubectl = new Skiff.TestApiServer.Kubectl(_server);

        var r = await kubectl.RunAsync("get", "deployments,statefulsets,jobs,services,networkpolicies", "-l", "dev.skiff.app=shop", "-o", "name");

        Assert.True(r.ExitCode == 0, r.ToString());
        string[] expected =
        [
            "deployment.apps/shop", "statefulset.apps/shop-database", "job.batch/shop-migrate-r1", "service/shop", "service/shop-database",
            "networkpolicy.networking.k8s.io/shop-database",
        ];
        Assert.Equal(expected.Order(StringComparer.Ordinal), r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task A_rollout_that_begins_is_published_before_its_Job_exists()
    {
        await DeployAsync();
        Change(s => s.App.Image = "skiff-test/app:2");
        var published = new List<(long Revision, string? Outcome, bool JobExists)>();

        var result = await _runtime.ReconcileAsync(_shop, async (status, ct) =>
        {
            var record = status.History!.Last();
            var jobs = await _client.BatchV1.ListNamespacedJobAsync(Ns, cancellationToken: ct);
            published.Add((record.Revision, record.Outcome, jobs.Items.Any(j => j.Metadata.Name == "shop-migrate-r2")));
        }, CancellationToken.None);

        Assert.Equal([(2L, Outcomes.Progressing, false)], published);
        Assert.Equal(Outcomes.Progressing, result.Status.History!.Last().Outcome);
        Assert.True(await ExistsAsync(() => _client.BatchV1.ReadNamespacedJobAsync("shop-migrate-r2", Ns)));
    }
}
