using System.Threading.Channels;
using k8s;
using k8s.Models;
using Microsoft.Extensions.Logging.Abstractions;
using Skiff.KubeRuntime;
using Skiff.Reconcile;
using Skiff.Runtime;
using ApiServer = Skiff.TestApiServer.TestApiServer;
using ApiServerOptions = Skiff.TestApiServer.TestApiServerOptions;

namespace Skiff.Tests.KubeRuntime;

/// <summary>The watch of the stacks' workloads: a change of a Skiff workload names its stack; the runtime's own applies do not.</summary>
public sealed class WorkloadWatchTests : IAsyncLifetime
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);
    private readonly Channel<ObjectKey> _keys = Channel.CreateUnbounded<ObjectKey>();
    private readonly CancellationTokenSource _stop = new();
    private ApiServer _server = null!;
    private Kubernetes _client = null!;
    private Task _watching = Task.CompletedTask;

    public async Task InitializeAsync()
    {
        _server = await ApiServer.StartAsync(new ApiServerOptions { Namespaces = ["shop-ns"] });
        _client = _server.CreateClient();
        _watching = new WorkloadWatch(_client, NullLoggerFactory.Instance).RunAsync(k => _keys.Writer.TryWrite(k), _stop.Token);
    }

    public async Task DisposeAsync()
    {
        await _stop.CancelAsync();
        await _watching;
        _stop.Dispose();
        _client.Dispose();
        await _server.DisposeAsync();
    }

    private static Dictionary<string, string> Labels(string app) => new()
    {
        [SkiffLabels.ManagedBy] = SkiffLabels.ManagedByValue,
        [SkiffLabels.App] = app,
        [SkiffLabels.Component] = StackNames.AppComponent,
    };

    private async Task<ObjectKey> NextAsync()
    {
        using var bound = new CancellationTokenSource(Bound);
        return await _keys.Reader.ReadAsync(bound.Token);
    }

    [Fact]
    public async Task A_pod_status_the_kubelet_writes_reconciles_its_stack()
    {
        await _client.CoreV1.CreateNamespacedPodAsync(new V1Pod
        {
            Metadata = new V1ObjectMeta { Name = "shop-7c9b-x2k", Labels = Labels("shop") },
            Spec = new V1PodSpec { Containers = [new V1Container { Name = "app", Image = "shop:2" }] },
        }, "shop-ns");
        Assert.Equal(new ObjectKey("shop-ns", "shop"), await NextAsync());

        // Not Skiff's: no key. Then the kubelet's status of Skiff's pod: its stack again (and nothing for the other pod before it).
        await _client.CoreV1.CreateNamespacedPodAsync(new V1Pod
        {
            Metadata = new V1ObjectMeta { Name = "other", Labels = new Dictionary<string, string> { [SkiffLabels.App] = "other" } },
            Spec = new V1PodSpec { Containers = [new V1Container { Name = "app", Image = "other:1" }] },
        }, "shop-ns");
        await _client.CoreV1.PatchNamespacedPodStatusAsync(
            new V1Patch("""{"status":{"containerStatuses":[{"name":"app","image":"shop:2","imageID":"","ready":false,"restartCount":2,"state":{"waiting":{"reason":"CrashLoopBackOff"}}}]}}""", V1Patch.PatchType.MergePatch),
            "shop-7c9b-x2k", "shop-ns");
        Assert.Equal(new ObjectKey("shop-ns", "shop"), await NextAsync());
    }

    [Fact]
    public async Task Deployments_statefulsets_and_jobs_of_a_stack_name_it()
    {
        var selector = new V1LabelSelector { MatchLabels = new Dictionary<string, string> { ["app"] = "a" } };
        var template = new V1PodTemplateSpec
        {
            Metadata = new V1ObjectMeta { Labels = new Dictionary<string, string> { ["app"] = "a" } },
            Spec = new V1PodSpec { Containers = [new V1Container { Name = "app", Image = "a:1" }], RestartPolicy = "Never" },
        };
        await _client.AppsV1.CreateNamespacedDeploymentAsync(new V1Deployment { Metadata = new V1ObjectMeta { Name = "d", Labels = Labels("one") }, Spec = new V1DeploymentSpec { Selector = selector, Template = template } }, "shop-ns");
        Assert.Equal(new ObjectKey("shop-ns", "one"), await NextAsync());
        await _client.AppsV1.CreateNamespacedStatefulSetAsync(new V1StatefulSet { Metadata = new V1ObjectMeta { Name = "s", Labels = Labels("two") }, Spec = new V1StatefulSetSpec { Selector = selector, Template = template, ServiceName = "s" } }, "shop-ns");
        Assert.Equal(new ObjectKey("shop-ns", "two"), await NextAsync());
        await _client.BatchV1.CreateNamespacedJobAsync(new V1Job { Metadata = new V1ObjectMeta { Name = "j", Labels = Labels("three") }, Spec = new V1JobSpec { Template = template } }, "shop-ns");
        Assert.Equal(new ObjectKey("shop-ns", "three"), await NextAsync());
    }

    [Fact]
    public void Only_what_the_runtime_reads_counts_as_a_change()
    {
        V1Deployment Deployment(long generation, int available, string? annotation = null) => new()
        {
            Metadata = new V1ObjectMeta
            {
                Name = "shop",
                Generation = generation,
                Labels = Labels("shop"),
                Annotations = annotation is null ? null : new Dictionary<string, string> { [KubernetesStackRuntime.LastGoodTemplateAnnotation] = annotation },
            },
            Status = new V1DeploymentStatus { AvailableReplicas = available },
        };

        Assert.False(WorkloadWatch.Relevant(Deployment(2, 1), Deployment(2, 1, annotation: "{}"), d => d.Status));
        Assert.True(WorkloadWatch.Relevant(Deployment(2, 0), Deployment(2, 1), d => d.Status));
        Assert.True(WorkloadWatch.Relevant(Deployment(2, 1), Deployment(3, 1), d => d.Status));
        // A pod the kubelet has not reported on yet has neither status nor labels to compare.
        Assert.True(WorkloadWatch.Relevant(new V1Pod { Metadata = new V1ObjectMeta() }, new V1Pod { Metadata = new V1ObjectMeta(), Status = new V1PodStatus { Phase = "Running" } }, p => p.Status));
        Assert.False(WorkloadWatch.Relevant(new V1Pod { Metadata = new V1ObjectMeta() }, new V1Pod { Metadata = new V1ObjectMeta() }, p => p.Status));
        Assert.Null(WorkloadWatch.StackOf(new V1ObjectMeta { Name = "x", NamespaceProperty = "n" }));
    }
}
