using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using k8s;
using k8s.Autorest;
using k8s.Models;
using Skiff.Api;
using Skiff.Hosting;
using Skiff.Reconcile;
using Skiff.Runtime;
using Skiff.Sources.Kubernetes;
using Skiff.State;

namespace Skiff.Cli;

/// <summary><c>skiff rollback|restart --source kubernetes</c>: the annotation the operator acts on, patched onto the AppDeployment.</summary>
public static partial class RolloutCommands
{
    /// <summary>Exit 0 annotated; 1 no such AppDeployment or no revision to go back to; 2 a bad kubeconfig; 3 the API server does not answer.</summary>
    public static async Task<int> AnnotateAsync(
        string? kubeconfig, string? context, string ns, string name, string action, long? toRevision, TextWriter stdout, TextWriter stderr, DateTimeOffset now, CancellationToken ct)
    {
        var command = $"skiff {action}";
        KubernetesClientConfiguration config;
        try
        {
            config = KubeConfigFile.Build(kubeconfig, context, inClusterFirst: context is null);
        }
        catch (Exception e) when (e is k8s.Exceptions.KubeConfigException or IOException or UnauthorizedAccessException)
        {
            stderr.WriteLine($"--kubeconfig: {e.Message}");
            return ExitCodes.UsageOrIo;
        }

        using var client = new Kubernetes(config);
        try
        {
            var found = await client.CustomObjects.GetNamespacedCustomObjectAsync(SkiffApi.Group, SkiffApi.Version, ns, AppDeployment.Plural, name, ct);
            var resource = KubernetesJson.Deserialize<AppDeployment>(KubernetesResponses.Element(found));
            string key, value, what;
            if (action == RolloutRequest.Rollback)
            {
                if (RolloutRequests.Target(resource.Status, toRevision, out var problem) is not { } target)
                {
                    stderr.WriteLine($"{command}: {ns}/{name}: {problem}");
                    return ExitCodes.NotOk;
                }

                (key, value) = (RolloutRequests.RollbackTo, target.Revision.ToString(CultureInfo.InvariantCulture));
                what = $"roll back {ns}/{name} to revision {value} ({target.Image}) while the annotation {key} is there (remove it to go back to the spec's image)";
            }
            else
            {
                (key, value) = (RolloutRequests.RestartedAt, now.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture));
                what = $"restart {ns}/{name}";
            }

            var patch = new JsonObject { ["metadata"] = new JsonObject { ["annotations"] = new JsonObject { [key] = value } } };
            await client.CustomObjects.PatchNamespacedCustomObjectAsync(
                new V1Patch(patch.ToJsonString(), V1Patch.PatchType.MergePatch), SkiffApi.Group, SkiffApi.Version, ns, AppDeployment.Plural, name, cancellationToken: ct);
            stdout.WriteLine($"{command}: annotated {key}={value} to {what}; the operator rolls out a new revision. kubectl wait --for=condition=Ready appdeployment/{name} -n {ns} follows it.");
            return ExitCodes.Ok;
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
        {
            stderr.WriteLine($"{command}: no AppDeployment {ns}/{name} at {config.Host}");
            return ExitCodes.NotOk;
        }
        catch (HttpOperationException e) when (e.Response.StatusCode is HttpStatusCode.Forbidden or HttpStatusCode.Unauthorized)
        {
            stderr.WriteLine($"{command}: the API server refused ({(int)e.Response.StatusCode}): patching appdeployments in {ns} needs the verbs get and patch");
            return ExitCodes.NotOk;
        }
        catch (Exception e) when (e is HttpRequestException or IOException or TaskCanceledException && !ct.IsCancellationRequested)
        {
            stderr.WriteLine($"{command}: the Kubernetes API at {config.Host} does not answer: {e.Message}");
            return ExitCodes.Unreachable;
        }
    }
}
