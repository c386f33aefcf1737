using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using k8s;
using k8s.Autorest;
using k8s.Models;
using Microsoft.Extensions.Logging;
using Skiff.Api;
using Skiff.Docker;
using Skiff.Reconcile;
using Skiff.Runtime;
using Skiff.Validation;

namespace Skiff.Sources.Kubernetes;

/// <summary>
/// Reconciles AppDeployments read from the Kubernetes API: finalizer first, then the stack, then
/// the status through the status subresource (only when it changed). Only the resources of this
/// instance's node are touched; a resource that moved away has its containers removed here.
/// </summary>
public sealed class KubernetesReconciler(
    IKubernetes client,
    IObjectCache<AppDeployment> cache,
    StackReconciler stacks,
    ILogger<KubernetesReconciler> logger,
    TimeProvider? timeProvider = null) : IReconciler
{
    private static readonly JsonSerializerOptions StatusJson = new() { DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };
    private readonly TimeProvider time = timeProvider ?? TimeProvider.System;

    /// <summary>The status this instance wrote last, by key, with the resourceVersion the server answered.</summary>
    private readonly ConcurrentDictionary<ObjectKey, (long ResourceVersion, AppDeploymentStatus Status)> written = new();

    /// <summary>
    /// The last accepted spec per key, whatever its node: the twin of the CEL transition rule needs the old object.
    /// Kept for other nodes' resources too, so that a stack with data moved here is refused rather than started empty.
    /// </summary>
    private readonly ConcurrentDictionary<ObjectKey, AppDeploymentSpec> lastSpec = new();

    /// <summary>Called after each reconcile with the status (null when the resource is gone or not this node's).</summary>
    public Action<ObjectKey, AppDeploymentStatus?>? Reconciled { get; set; }

    private string Node => stacks.Context.Node;

    public async Task<ReconcileResult> ReconcileAsync(ObjectKey key, CancellationToken cancellationToken)
    {
        var ns = key.Namespace ?? "default";
        var names = new StackNames(ns, key.Name);
        var cached = cache.Get(key);
        // Validated against the last accepted spec, as the API server would (with CEL) before storing an update.
        var accepted = lastSpec.GetValueOrDefault(key);
        var errors = cached is null ? [] : ResourceValidator.Validate(cached, accepted is null
            ? null
            : new AppDeployment { Metadata = cached.Metadata, Spec = accepted });

        // A move away from here that the API server would have refused (a stack with data: the CEL transition rule)
        // leaves the stack here, with its data, and gets reported below like any other invalid spec.
        var refusedMove = cached is not null && cached.Spec.Node != Node && accepted?.Node == Node && errors.Count > 0;
        if (cached is null || (cached.Spec.Node != Node && !refusedMove))
        {
            // Gone without our finalizer's cleanup (or moved to another node): remove our containers, keep all data.
            if ((await stacks.ListStacksAsync(cancellationToken)).Contains(names.Key))
            {
                logger.LogInformation("{Stack}: {Why}; removing its containers from node {Node} (volumes are kept)",
                    names.Key, cached is null ? "the resource is gone" : $"it moved to node {cached.Spec.Node}", Node);
                await stacks.DeleteAsync(names, null, cancellationToken);
            }

            written.TryRemove(key, out _);
            if (cached is null)
            {
                lastSpec.TryRemove(key, out _);
            }
            else if (errors.Count == 0)
            {
                // Another node's: remembered so that a stack with data moved here from there is refused, not started empty.
                lastSpec[key] = cached.Spec;
            }

            Reconciled?.Invoke(key, null);
            return ReconcileResult.Done;
        }

        var resource = Fresh(key, cached);
        if (resource.Metadata.DeletionTimestamp is not null)
        {
            if (resource.Metadata.Finalizers?.Contains(SkiffApi.Finalizer) == true)
            {
                logger.LogInformation("{Stack}: deleting (reclaimPolicy {Policy})", names.Key,
                    Defaults.Apply(resource.Spec).Database?.Storage?.ReclaimPolicy ?? ReclaimPolicies.Retain);
                await stacks.DeleteAsync(names, resource.Spec, cancellationToken);
                await SetFinalizerAsync(resource, present: false, cancellationToken);
            }

            written.TryRemove(key, out _);
            lastSpec.TryRemove(key, out _);
            Reconciled?.Invoke(key, null);
            return ReconcileResult.Done;
        }

        if (resource.Metadata.Finalizers?.Contains(SkiffApi.Finalizer) != true)
        {
            // Before anything is created, so that a delete always waits for the cleanup.
            await SetFinalizerAsync(resource, present: true, cancellationToken);
        }

        if (errors.Count > 0)
        {
            var status = StackReconciler.CloneStatus(resource.Status);
            var message = string.Join("; ", errors.Select(e => e.ToString()));
            var now = time.GetUtcNow();
            var generation = resource.Metadata.Generation;
            status.ObservedGeneration = generation;
            status.Phase = Phases.Failed;
            Conditions.Set(status, ConditionTypes.Ready, false, "InvalidSpec", message, generation, now);
            Conditions.Set(status, ConditionTypes.Stalled, true, "InvalidSpec", message, generation, now);
            Conditions.Set(status, ConditionTypes.Reconciling, false, "InvalidSpec", message, generation, now);
            logger.LogWarning("{Stack}: invalid spec, the running stack (if any) is left as it is: {Errors}", names.Key, message);
            await WriteStatusAsync(key, resource, status, cancellationToken);
            Reconciled?.Invoke(key, status);
            return ReconcileResult.Done;
        }

        lastSpec[key] = resource.Spec;
        try
        {
            var result = await stacks.ReconcileAsync(
                resource,
                (status, ct) => WriteStatusAsync(key, resource, status, ct),
                cancellationToken);
            await WriteStatusAsync(key, resource, result.Status, cancellationToken);
            Reconciled?.Invoke(key, result.Status);
            return result.RequeueAfter is { } after ? ReconcileResult.After(after) : ReconcileResult.Done;
        }
        catch (EngineUnreachableException e)
        {
            var status = StackReconciler.CloneStatus(resource.Status);
            var now = time.GetUtcNow();
            Conditions.Set(status, ConditionTypes.Ready, "Unknown", "EngineUnreachable", e.Message, resource.Metadata.Generation, now);
            Conditions.Set(status, ConditionTypes.Reconciling, true, "EngineUnreachable", e.Message, resource.Metadata.Generation, now);
            await WriteStatusAsync(key, resource, status, cancellationToken);
            throw;
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

    private async Task WriteStatusAsync(ObjectKey key, AppDeployment resource, AppDeploymentStatus status, CancellationToken ct)
    {
        var before = resource.Status is null ? "null" : JsonSerializer.Serialize(resource.Status, StatusJson);
        var after = JsonSerializer.Serialize(status, StatusJson);
        if (before == after)
        {
            return;
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
            var previous = resource.Status;
            resource.Status = StackReconciler.CloneStatus(status);
            written[key] = (rv, resource.Status);
            // After the write: an Event never announces a state the API does not have.
            StatusEvents.Record(stacks.Events, resource, previous, resource.Status, time.GetUtcNow());
            Reconciled?.Invoke(key, resource.Status);
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
        {
            // Deleted meanwhile: nothing to report to.
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
        var json = response is JsonElement element ? element : JsonSerializer.SerializeToElement(response);
        return json.TryGetProperty("metadata", out var metadata)
            && metadata.TryGetProperty("resourceVersion", out var rv)
            && long.TryParse(rv.GetString(), out var value) ? value : 0;
    }
}
