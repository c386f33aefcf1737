using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using k8s;
using k8s.Autorest;
using k8s.Models;
using Microsoft.Extensions.Logging;
using Skiff.Api;
using Skiff.ImageGC;

namespace Skiff.Sources.Kubernetes;

/// <summary>
/// Reports a node's GC runs on the ImageGCPolicy in effect: its <c>status.nodes[node]</c> entry
/// through the status subresource, and a core/v1 Event on the policy when a run removed something
/// or did not succeed. Each node's instance writes only its own entry.
/// </summary>
/// <remarks>
/// <b>Concurrency.</b> Read the policy, replace this node's entry, then JSON-patch <c>/status</c>
/// with a <c>test</c> of the resourceVersion read: another node writing its entry meanwhile makes
/// the patch fail (409 or 422) and it is retried on a fresh read, so no entry is ever lost.
/// Runs under the built-in policy have no object to report to: logs and metrics only.
/// </remarks>
public sealed class KubernetesGcReporter(IKubernetes client, ILogger<KubernetesGcReporter> logger) : IGcReporter
{
    private static readonly JsonSerializerOptions StatusJson = new() { DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull, TypeInfoResolver = ApiJson.Resolver };

    /// <summary>The ImageGCPolicies in the cluster, for <see cref="ImageGcPlanner.ResolvePolicy"/>.</summary>
    public static async Task<IReadOnlyList<ImageGCPolicy>> ListPoliciesAsync(IKubernetes client, CancellationToken ct)
    {
        var list = await client.CustomObjects.ListClusterCustomObjectAsync(SkiffApi.Group, SkiffApi.Version, ImageGCPolicy.Plural, cancellationToken: ct);
        var json = KubernetesResponses.Element(list);
        return json.TryGetProperty("items", out var items)
            ? [.. items.EnumerateArray().Select(i => KubernetesJson.Deserialize<ImageGCPolicy>(i)).Where(p => p is not null)]
            : [];
    }

    public async Task ReportAsync(GcNodeReport report, CancellationToken ct)
    {
        if (report.Policy == GcPolicy.BuiltInName)
        {
            return;
        }

        ImageGCPolicy? policy = null;
        for (var attempt = 1; attempt <= 5; attempt++)
        {
            try
            {
                var raw = await client.CustomObjects.GetClusterCustomObjectAsync(SkiffApi.Group, SkiffApi.Version, ImageGCPolicy.Plural, report.Policy, ct);
                policy = KubernetesJson.Deserialize<ImageGCPolicy>(KubernetesResponses.Element(raw));
                var nodes = (policy.Status?.Nodes ?? []).Where(n => n.Node != report.Node).Append(report.ToNodeStatus())
                    .OrderBy(n => n.Node, StringComparer.Ordinal).ToList();
                var status = new ImageGCPolicyStatus { Nodes = nodes };
                var patch = new JsonArray(
                    new JsonObject { ["op"] = "test", ["path"] = "/metadata/resourceVersion", ["value"] = policy.Metadata.ResourceVersion },
                    new JsonObject { ["op"] = "add", ["path"] = "/status", ["value"] = JsonSerializer.SerializeToNode(status, StatusJson.Info<ImageGCPolicyStatus>()) });
                await client.CustomObjects.PatchClusterCustomObjectStatusAsync(
                    new V1Patch(patch.ToJsonString(), V1Patch.PatchType.JsonPatch), SkiffApi.Group, SkiffApi.Version, ImageGCPolicy.Plural, report.Policy,
                    cancellationToken: ct);
                break;
            }
            catch (HttpOperationException e) when (e.Response.StatusCode is HttpStatusCode.Conflict or HttpStatusCode.UnprocessableEntity && attempt < 5)
            {
                logger.LogDebug("ImageGCPolicy {Policy} changed while writing node {Node}'s status; retrying", report.Policy, report.Node);
            }
            catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
            {
                return; // deleted meanwhile
            }
        }

        if (policy is null)
        {
            return;
        }

        if (report.PolicyWarning is { } warning)
        {
            // Two policies tie for this node (or one has a field GC could not use): said once, on the policy in effect.
            await RecordEventAsync(policy, report.Node, "Warning", "PolicyConflict", warning, ct);
        }

        if (report.ImagesRemoved > 0 || report.Result != "success")
        {
            var (type, reason) = report.Result switch
            {
                "error" => ("Warning", "ImageGCFailed"),
                "incomplete" => ("Warning", "DiskPressure"),
                "dry_run" => ("Normal", "ImageGCDryRun"),
                _ => ("Normal", "ImageGCCompleted"),
            };
            await RecordEventAsync(policy, report.Node, type, reason, report.Message, ct);
        }
    }

    private async Task RecordEventAsync(ImageGCPolicy policy, string node, string type, string reason, string text, CancellationToken ct)
    {
        var now = DateTime.UtcNow;
        var message = $"node {node}: {text}";
        try
        {
            // A cluster-scoped object's Events live in "default", as kubectl describe looks for them there.
            await client.CoreV1.CreateNamespacedEventAsync(new Corev1Event
            {
                ApiVersion = "v1",
                Kind = "Event",
                Metadata = new V1ObjectMeta { Name = $"{policy.Metadata.Name}.{DateTimeOffset.UtcNow.ToUnixTimeMilliseconds():x}{Random.Shared.Next(0x1000):x3}", NamespaceProperty = "default" },
                InvolvedObject = new V1ObjectReference
                {
                    ApiVersion = SkiffApi.ApiVersion,
                    Kind = ImageGCPolicy.KindName,
                    Name = policy.Metadata.Name,
                    Uid = policy.Metadata.Uid,
                },
                Reason = reason,
                Message = message.Length > 1024 ? message[..1021] + "..." : message,
                Type = type,
                Count = 1,
                FirstTimestamp = now,
                LastTimestamp = now,
                Source = new V1EventSource { Component = "skiff", Host = node },
                ReportingComponent = "skiff.dev/operator",
                ReportingInstance = node,
            }, "default", cancellationToken: ct);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            logger.LogDebug(e, "Could not record event {Reason} on ImageGCPolicy {Policy}", reason, policy.Metadata.Name);
        }
    }
}
