using System.Text.Json;
using Skiff.Api;
using Skiff.IntegrationTests.DockerTarget;
using Skiff.Reconcile;

namespace Skiff.IntegrationTests.Registry;

/// <summary>Pulling the app image from a private registry with <c>spec.app.imagePullSecret</c>, on the real engine.</summary>
public sealed class PrivateRegistryTests
{
    private static AppDeployment Sleeper(StackHarness h, string image, string? pullSecret) => new()
    {
        Metadata = new() { Name = "private", NamespaceProperty = h.Namespace, Generation = 1 },
        Spec = new AppDeploymentSpec
        {
            Node = "local",
            App = new AppSpec { Image = image, Command = ["sleep", "3600"], ImagePullSecret = pullSecret },
            Rollout = new RolloutSpec { ProgressDeadlineSeconds = 30, MinReadySeconds = 1 },
        },
    };

    private static string Describe(AppDeploymentStatus status) =>
        string.Join("\n", status.Conditions!.Select(c => $"{c.Type}={c.Status} {c.Reason}: {c.Message}"));

    [Fact]
    public async Task The_app_image_is_pulled_with_the_imagePullSecret_and_a_wrong_password_is_reported_without_it()
    {
        await using var registry = await LocalRegistry.StartAsync();
        await using var h = new StackHarness();
        var image = await registry.PushAsync("skiff-test/busybox:latest", $"private/{h.Namespace}:1");
        Assert.Null(await h.Engine.InspectImageAsync(image, CancellationToken.None));

        // Without credentials the registry refuses: the rollout fails and says so.
        var anonymous = Sleeper(h, image, pullSecret: null);
        await h.ReconcileAsync(anonymous);
        Assert.True(anonymous.Status!.Phase == Phases.Failed, Describe(anonymous.Status));
        var refused = Conditions.Get(anonymous.Status, ConditionTypes.Stalled)!;
        Assert.Equal("ImagePullFailed", refused.Reason); // refused, not missing: retried, never a failed revision
        Assert.Contains($"pulling {image} failed: Head", refused.Message); // the engine's message, not its JSON
        Assert.Contains("no basic auth credentials", refused.Message);
        Assert.Contains($"set spec.app.imagePullSecret to a kubernetes.io/dockerconfigjson Secret with a login for {registry.Host}", refused.Message);

        // A wrong password: refused too, and the password appears nowhere in the status.
        const string wrong = "wrong-Secret-9f1c";
        h.Secrets.Put(h.Namespace, "registry-bad", ".dockerconfigjson", registry.DockerConfigJson(wrong));
        var bad = Sleeper(h, image, "registry-bad");
        bad.Metadata.Name = "bad";
        await h.ReconcileAsync(bad);
        Assert.True(bad.Status!.Phase == Phases.Failed, Describe(bad.Status));
        var badCredentials = Conditions.Get(bad.Status, ConditionTypes.Stalled)!;
        Assert.Equal("ImagePullFailed", badCredentials.Reason);
        Assert.Contains("unauthorized", badCredentials.Message);
        Assert.Contains($"the registry refused the credentials of spec.app.imagePullSecret (Secret \"registry-bad\"): check its username and password for {registry.Host}", badCredentials.Message);
        Assert.DoesNotContain(wrong, JsonSerializer.Serialize(bad.Status));

        // The right one: pulled, running, Ready; the password is not in the status either.
        h.Secrets.Put(h.Namespace, "registry", ".dockerconfigjson", registry.DockerConfigJson(registry.Password));
        var good = Sleeper(h, image, "registry");
        good.Metadata.Name = "good";
        await h.ReconcileAsync(good);
        Assert.True(good.Status!.Phase == Phases.Ready, Describe(good.Status));
        Assert.NotNull(await h.Engine.InspectImageAsync(image, CancellationToken.None));
        var app = (await h.ContainersAsync(good)).Single(c => c.Component == StackNames.AppComponent);
        Assert.True(app.Running);
        Assert.Equal(image, app.Image);
        Assert.DoesNotContain(registry.Password, JsonSerializer.Serialize(good.Status));

        await RemoveImageAsync(h, image);
    }

    private static async Task RemoveImageAsync(StackHarness h, string image)
    {
        foreach (var c in await h.Engine.Client.Containers.ListContainersAsync(new() { All = true }))
        {
            if (c.Image == image)
            {
                await h.Engine.Client.Containers.RemoveContainerAsync(c.ID, new() { Force = true, RemoveVolumes = true });
            }
        }

        await h.Engine.RemoveImageAsync(image, CancellationToken.None);
    }
}
