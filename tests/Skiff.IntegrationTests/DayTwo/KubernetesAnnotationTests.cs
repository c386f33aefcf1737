using Skiff.Api;
using Skiff.IntegrationTests.Infrastructure;
using Skiff.IntegrationTests.KubernetesSource;
using Skiff.Reconcile;

namespace Skiff.IntegrationTests.DayTwo;

/// <summary>Rollback and restart through the Kubernetes source: <c>kubectl annotate</c> on the AppDeployment, the real operator and engine.</summary>
public sealed class KubernetesAnnotationTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task Kubectl_annotate_and_skiff_restart_roll_back_to_a_revision_and_restart()
    {
        await using var h = await KubeHarness.StartAsync();
        var op = h.StartOperator();
        await h.ApplyAsync(h.Api());
        Assert.Equal(0, (await h.WaitReadyAsync("api")).ExitCode);
        await h.ApplyAsync(h.Api(image: TestImages.App2));
        await ReadyAtAsync(h, revision: 2, TestImages.App2);

        var annotate = await h.KubectlAsync("annotate", "appdeployment", "api", $"{RolloutRequests.RollbackTo}=1");
        Assert.True(annotate.ExitCode == 0, annotate.Stderr);
        await ReadyAtAsync(h, revision: 3, TestImages.App1);
        var resource = (await h.GetAsync("api"))!;
        Assert.Equal(TestImages.App2, resource.Spec.App.Image);
        Assert.Contains(resource.Status!.History!, r => r.Revision == 3 && r.Image == TestImages.App1 && r.Outcome == Outcomes.Succeeded);
        var before = (await h.Workspace.ContainersAsync("api")).Single(c => c.Component == "app" && c.Running);

        // skiff restart --source kubernetes patches skiff.dev/restartedAt, as kubectl annotate would.
        var restart = await FolderSource.SkiffProcess.RunAsync(Timeout, "restart", "api", "-n", h.Namespace, "--source", "kubernetes", "--kubeconfig", h.Kubectl.Kubeconfig);
        Assert.True(restart.Exit == 0, restart.Stderr);
        Assert.Contains(RolloutRequests.RestartedAt, (await h.GetAsync("api"))!.Metadata.Annotations!.Keys);
        await ReadyAtAsync(h, revision: 4, TestImages.App1);
        var after = (await h.Workspace.ContainersAsync("api")).Single(c => c.Component == "app" && c.Running);
        Assert.NotEqual(before.Id, after.Id);
        Assert.Equal(before.ImageId, after.ImageId);

        // Without the annotation the spec's image serves again.
        annotate = await h.KubectlAsync("annotate", "appdeployment", "api", $"{RolloutRequests.RollbackTo}-");
        Assert.True(annotate.ExitCode == 0, annotate.Stderr);
        await ReadyAtAsync(h, revision: 5, TestImages.App2);
        Assert.False(op.HasExited);
    }

    private static Task ReadyAtAsync(KubeHarness h, long revision, string image) =>
        Eventually.UntilAsync($"api's revision {revision} ({image}) is Ready", () => h.GetAsync("api"),
            r => r?.Status?.Revision == revision && r.Status.Image == image && Conditions.IsTrue(r.Status, ConditionTypes.Ready)
                && !Conditions.IsTrue(r.Status, ConditionTypes.Reconciling),
            Timeout);
}
