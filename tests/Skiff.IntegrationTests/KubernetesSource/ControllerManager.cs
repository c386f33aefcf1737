using System.Net.Http.Headers;
using k8s;
using k8s.Models;

namespace Skiff.IntegrationTests.KubernetesSource;

/// <summary>
/// What the controller-manager and the kubelets would do on a real cluster (the test API server runs no controllers):
/// workloads' status, the StatefulSets' claims, the nodes and their conditions. Its own user agent, so that the RBAC
/// test tells its requests from the operator's.
/// </summary>
public sealed class ControllerManager : IDisposable
{
    public const string UserAgent = "skiff-test-controller-manager/1";

    private readonly string ns;

    public ControllerManager(KubeHarness h)
    {
        ns = h.Namespace;
        Client = new Kubernetes(KubernetesClientConfiguration.BuildConfigFromConfigFile(h.Kubectl.Kubeconfig), new UserAgentHandler());
    }

    public Kubernetes Client { get; }

    public async Task<V1Deployment?> DeploymentAsync(string name)
    {
        var items = (await Client.AppsV1.ListNamespacedDeploymentAsync(ns, fieldSelector: $"metadata.name={name}")).Items;
        return items.Count == 0 ? null : items[0];
    }

    /// <summary>The Deployment's new pod became available and no old one is left (kubectl rollout status's rule).</summary>
    public async Task RollOutAsync(string name)
    {
        var d = (await DeploymentAsync(name))!;
        await Client.AppsV1.PatchNamespacedDeploymentStatusAsync(Status(new
        {
            observedGeneration = d.Metadata.Generation,
            replicas = 1,
            updatedReplicas = 1,
            readyReplicas = 1,
            availableReplicas = 1,
            conditions = new object[]
            {
                new { type = "Available", status = "True", reason = "MinimumReplicasAvailable" },
                new { type = "Progressing", status = "True", reason = "NewReplicaSetAvailable", message = $"ReplicaSet \"{name}-1\" has successfully progressed." },
            },
        }), name, ns);
    }

    /// <summary>Each StatefulSet has a ready pod of its template, and the claims of its volume claim templates exist.</summary>
    public async Task MarkDataReadyAsync()
    {
        foreach (var sts in (await Client.AppsV1.ListNamespacedStatefulSetAsync(ns)).Items)
        {
            await Client.AppsV1.PatchNamespacedStatefulSetStatusAsync(Status(new { observedGeneration = sts.Metadata.Generation, replicas = 1, readyReplicas = 1 }), sts.Metadata.Name, ns);
            foreach (var template in sts.Spec.VolumeClaimTemplates ?? [])
            {
                var claim = $"{template.Metadata.Name}-{sts.Metadata.Name}-0";
                if ((await Client.CoreV1.ListNamespacedPersistentVolumeClaimAsync(ns, fieldSelector: $"metadata.name={claim}")).Items.Count == 0)
                {
                    await Client.CoreV1.CreateNamespacedPersistentVolumeClaimAsync(
                        new V1PersistentVolumeClaim { Metadata = new V1ObjectMeta { Name = claim, Labels = template.Metadata.Labels }, Spec = template.Spec }, ns);
                }
            }
        }
    }

    /// <summary>The migration Job of a revision completed.</summary>
    public async Task<bool> CompleteJobAsync(string name)
    {
        var jobs = (await Client.BatchV1.ListNamespacedJobAsync(ns, fieldSelector: $"metadata.name={name}")).Items;
        if (jobs.Count == 0)
        {
            return false;
        }

        await Client.BatchV1.PatchNamespacedJobStatusAsync(
            Status(new { succeeded = 1, failed = 0, conditions = new object[] { new { type = "Complete", status = "True" } } }), name, ns);
        return true;
    }

    /// <summary>Registers a node (or updates it) with its kubelet's DiskPressure condition.</summary>
    public async Task SetNodeAsync(string name, bool diskPressure)
    {
        if ((await Client.CoreV1.ListNodeAsync(fieldSelector: $"metadata.name={name}")).Items.Count == 0)
        {
            await Client.CoreV1.CreateNodeAsync(new V1Node { Metadata = new V1ObjectMeta { Name = name } });
        }

        await Client.CoreV1.PatchNodeStatusAsync(Status(new
        {
            conditions = new object[]
            {
                new
                {
                    type = "DiskPressure",
                    status = diskPressure ? "True" : "False",
                    reason = diskPressure ? "KubeletHasDiskPressure" : "KubeletHasNoDiskPressure",
                    message = diskPressure ? "kubelet has disk pressure" : "kubelet has no disk pressure",
                },
                new { type = "Ready", status = "True", reason = "KubeletReady", message = "kubelet is posting ready status" },
            },
        }), name);
    }

    public void Dispose() => Client.Dispose();

    private static V1Patch Status(object status) => new(KubernetesJson.Serialize(new { status }), V1Patch.PatchType.MergePatch);

    private sealed class UserAgentHandler : DelegatingHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            request.Headers.UserAgent.Clear();
            request.Headers.UserAgent.Add(ProductInfoHeaderValue.Parse(UserAgent));
            return base.SendAsync(request, cancellationToken);
        }
    }
}
