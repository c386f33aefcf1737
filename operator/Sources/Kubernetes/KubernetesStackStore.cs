using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using k8s;
using k8s.Autorest;
using k8s.Models;
using Skiff.Api;
using Skiff.Reconcile;
using Skiff.Runtime;
using Skiff.Validation;

namespace Skiff.Sources.Kubernetes;

/// <summary>
/// The Kubernetes source's side of the reconcile core (<see cref="StackController"/>): specs come from the informer's
/// cache, status goes through the status subresource (only when it changed), and deletion is a deletionTimestamp
/// that waits for Skiff's finalizer. Only the resources of this instance's node are applied; one that moved away
/// has its containers removed here.
/// </summary>
public sealed class KubernetesStackStore(IKubernetes client, IObjectCache<AppDeployment> cache, StackContext context) : IStackStore
{
    private static readonly JsonSerializerOptions StatusJson = new() { DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull, TypeInfoResolver = ApiJson.Resolver };

    /// <summary>The status this instance wrote last, by key, with the resourceVersion the server answered.</summary>
    private readonly ConcurrentDictionary<ObjectKey, (long ResourceVersion, AppDeploymentStatus Status)> written = new();

    /// <summary>
    /// The last accepted spec per key, whatever its node: the twin of the CEL transition rule needs the old object.
    /// Kept for other nodes' resources too, so that a stack with data moved here is refused rather than started empty.
    /// </summary>
    private readonly ConcurrentDictionary<ObjectKey, AppDeploymentSpec> lastSpec = new();

    public Task<StoredStack> ReadAsync(ObjectKey key, CancellationToken ct)
    {
        var cached = cache.Get(key);
        if (cached is null)
        {
            // Gone without our finalizer's cleanup: its containers go if this source has any; all data stays.
            return Task.FromResult(new StoredStack(key) { Known = false });
        }

        // Validated against the last accepted spec, as the API server would (with CEL) before storing an update.
        var accepted = lastSpec.GetValueOrDefault(key);
        var errors = ResourceValidator.Validate(cached, accepted is null ? null : new AppDeployment { Metadata = cached.Metadata, Spec = accepted });
        // A move away from here that the API server would have refused (a stack with data: the CEL transition rule)
        // leaves the stack here, with its data, and is reported like any other invalid spec.
        var refusedMove = cached.Spec.Node != context.Node && accepted?.Node == context.Node && errors.Count > 0;
        var resource = Fresh(key, cached);
        var mine = cached.Spec.Node == context.Node || refusedMove;
        if (mine && errors.Count == 0 && resource.Metadata.DeletionTimestamp is null)
        {
            lastSpec[key] = resource.Spec;
        }

        // skiff.dev/rollback-to: revision N's image for as long as the annotation is there (RolloutRequests).
        if (mine && errors.Count == 0)
        {
            if (RolloutRequests.ApplyRollbackAnnotation(resource, out var rollbackProblem) is { } rolledBack)
            {
                resource = rolledBack;
            }
            else
            {
                errors = [new ValidationError($"metadata.annotations[{RolloutRequests.RollbackTo}]", rollbackProblem!)];
            }
        }

        return Task.FromResult(new StoredStack(key)
        {
            Resource = resource,
            Known = false,
            Deleting = resource.Metadata.DeletionTimestamp is not null,
            HasFinalizer = resource.Metadata.Finalizers?.Contains(SkiffApi.Finalizer) == true,
            Problems = [.. errors.Select(e => e.ToString())],
            RefusedMove = refusedMove,
            SourceState = errors.Count == 0,
        });
    }

    public Task EnsureFinalizerAsync(StoredStack stack, CancellationToken ct) =>
        stack.HasFinalizer ? Task.CompletedTask : SetFinalizerAsync(stack.Resource!, present: true, ct);

    public void Annotate(StoredStack stack, AppDeploymentStatus status)
    {
    }

    public Task ReleaseAsync(StoredStack stack, CancellationToken ct) => SetFinalizerAsync(stack.Resource!, present: false, ct);

    public void Forget(StoredStack stack)
    {
        written.TryRemove(stack.Key, out _);
        if (stack.Resource is { } moved && !stack.Deleting && stack.SourceState is true)
        {
            // Another node's now: remembered so that a stack with data moved back here is refused, not started empty.
            lastSpec[stack.Key] = moved.Spec;
        }
        else
        {
            lastSpec.TryRemove(stack.Key, out _);
        }
    }

    /// <summary>The cached object, with the status this instance wrote if the cache has not caught up with it yet.</summary>
    private AppDeployment Fresh(ObjectKey key, AppDeployment cached)
    {
        if (written.TryGetValue(key, out var mine) && long.TryParse(cached.Metadata.ResourceVersion, out var rv) && mine.ResourceVersion > rv)
        {
            cached.Status = StackReconciler.CloneStatus(mine.Status);
        }

        return cached;
    }

    public async Task<bool> WriteStatusAsync(StoredStack stack, AppDeploymentStatus status, CancellationToken ct)
    {
        var resource = stack.Resource!;
        var before = resource.Status is null ? "null" : JsonSerializer.Serialize(resource.Status, StatusJson.Info<AppDeploymentStatus>());
        var after = JsonSerializer.Serialize(status, StatusJson.Info<AppDeploymentStatus>());
        if (before == after)
        {
            return false;
        }

        // JSON patch "add" sets /status whether or not it exists, and drops fields that are gone.
        var patch = new JsonArray(new JsonObject
        {
            ["op"] = "add",
            ["path"] = "/status",
            ["value"] = JsonNode.Parse(after),
        });
        try
        {
            var response = await client.CustomObjects.PatchNamespacedCustomObjectStatusAsync(
                new V1Patch(patch.ToJsonString(), V1Patch.PatchType.JsonPatch),
                SkiffApi.Group, SkiffApi.Version, resource.Metadata.NamespaceProperty ?? "default", AppDeployment.Plural, resource.Metadata.Name,
                cancellationToken: ct);
            var rv = ResourceVersionOf(response);
            resource.Status = StackReconciler.CloneStatus(status);
            written[stack.Key] = (rv, resource.Status);
            return true;
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
        {
            // Deleted meanwhile: nothing to report to.
            return false;
        }
    }

    private async Task SetFinalizerAsync(AppDeployment resource, bool present, CancellationToken ct)
    {
        var finalizers = (resource.Metadata.Finalizers ?? []).Where(f => f != SkiffApi.Finalizer).ToList();
        if (present)
        {
            finalizers.Add(SkiffApi.Finalizer);
        }

        // resourceVersion in the patch makes it conditional: a 409 means someone else changed the list; retry.
        var patch = new JsonObject
        {
            ["metadata"] = new JsonObject
            {
                ["finalizers"] = new JsonArray(finalizers.Select(f => (JsonNode)JsonValue.Create(f)!).ToArray()),
                ["resourceVersion"] = resource.Metadata.ResourceVersion,
            },
        };
        var response = await client.CustomObjects.PatchNamespacedCustomObjectAsync(
            new V1Patch(patch.ToJsonString(), V1Patch.PatchType.MergePatch),
            SkiffApi.Group, SkiffApi.Version, resource.Metadata.NamespaceProperty ?? "default", AppDeployment.Plural, resource.Metadata.Name,
            cancellationToken: ct);
        resource.Metadata.Finalizers = finalizers;
        if (ResourceVersionOf(response) is > 0 and var rv)
        {
            resource.Metadata.ResourceVersion = rv.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
    }

    private static long ResourceVersionOf(object response)
    {
        var json = KubernetesResponses.Element(response);
        return json.TryGetProperty("metadata", out var metadata)
            && metadata.TryGetProperty("resourceVersion", out var rv)
            && long.TryParse(rv.GetString(), out var value) ? value : 0;
    }
}
