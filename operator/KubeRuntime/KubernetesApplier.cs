using System.Net;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using k8s;
using k8s.Autorest;
using k8s.Models;

namespace Skiff.KubeRuntime;

/// <summary>One field another field manager owns, which Skiff's apply would have changed.</summary>
/// <param name="Field">The field as the API server prints it, e.g. <c>.spec.replicas</c>.</param>
/// <param name="Manager">The other manager as the API server describes it, e.g. <c>"hpa" using apps/v1</c>.</param>
public sealed record FieldConflict(string Field, string Manager);

/// <summary>Skiff's server-side apply of an object was refused because other managers own some of its fields.</summary>
public sealed class FieldConflictException(string kind, string @namespace, string name, IReadOnlyList<FieldConflict> conflicts)
    : Exception($"{kind} {@namespace}/{name}: " + string.Join("; ", conflicts.Select(c => $"{c.Field} is managed by {c.Manager}")))
{
    public string Kind { get; } = kind;

    public string Namespace { get; } = @namespace;

    public string Name { get; } = name;

    public IReadOnlyList<FieldConflict> Conflicts { get; } = conflicts;
}

/// <summary>The API server refused an apply as invalid (422): typically a field Kubernetes does not let change, such as a StatefulSet's claim size.</summary>
public sealed class ApplyRefusedException(string kind, string @namespace, string name, string reason)
    : Exception($"{kind} {@namespace}/{name}: the API server refused the change: {reason}")
{
    public string Kind { get; } = kind;

    public string Namespace { get; } = @namespace;

    public string Name { get; } = name;
}

/// <summary>
/// Applies rendered objects with server-side apply as the field manager <c>skiff</c>, lists a stack's objects by its
/// labels and deletes them.
/// </summary>
/// <remarks>
/// # Force
/// A forced apply takes every field it sets from whoever owned it. Skiff forces only where every field it sets is its
/// own to set:
/// - objects it creates and owns entirely (<c>force: true</c> at once): a revision's migration Job (named after the
///   revision, immutable, written by no one else) and the <c>NAME-db</c> Secret (its values are the credentials Skiff
///   generated and reads back from it);
/// - every other object is applied without force, so a field another manager took (a <c>kubectl scale</c>, an HPA
///   on <c>replicas</c>, a <c>kubectl edit</c> of the image) is a <see cref="FieldConflictException"/>, never
///   overwritten; except that a conflict whose every other manager is Skiff itself (<c>skiff</c> writing with a
///   create or update, as the Kubernetes source creates the <c>NAME-db</c> Secret) is applied again with force: those
///   fields are Skiff's.
/// </remarks>
public sealed partial class KubernetesApplier(IKubernetes client)
{
    /// <summary>Skiff's field manager name.</summary>
    public const string FieldManager = "skiff";

    /// <summary>Applies one object as the field manager skiff; see the remarks for <paramref name="force"/>.</summary>
    public async Task ApplyAsync(IKubernetesObject<V1ObjectMeta> obj, bool force, CancellationToken ct)
    {
        try
        {
            await PatchAsync(obj, force, ct);
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.Conflict && !force)
        {
            var conflicts = Conflicts(e.Response.Content);
            if (conflicts.Count > 0 && conflicts.All(c => ManagerName(c.Manager) == FieldManager))
            {
                await PatchAsync(obj, force: true, ct);
                return;
            }

            throw new FieldConflictException(obj.Kind, obj.Metadata.NamespaceProperty ?? "", obj.Metadata.Name, conflicts);
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.UnprocessableEntity)
        {
            throw new ApplyRefusedException(obj.Kind, obj.Metadata.NamespaceProperty ?? "", obj.Metadata.Name, StatusMessage(e.Response.Content));
        }
    }

    /// <summary>The message of a Status body, or the body itself.</summary>
    private static string StatusMessage(string? body)
    {
        try
        {
            return JsonNode.Parse(body ?? "")?["message"]?.GetValue<string>() ?? body ?? "";
        }
        catch (System.Text.Json.JsonException)
        {
            return body ?? "";
        }
    }

    private Task PatchAsync(IKubernetesObject<V1ObjectMeta> obj, bool force, CancellationToken ct)
    {
        var patch = new V1Patch(obj, V1Patch.PatchType.ApplyPatch);
        var name = obj.Metadata.Name;
        var ns = obj.Metadata.NamespaceProperty;
        return obj switch
        {
            V1Deployment => client.AppsV1.PatchNamespacedDeploymentAsync(patch, name, ns, fieldManager: FieldManager, force: force, cancellationToken: ct),
            V1StatefulSet => client.AppsV1.PatchNamespacedStatefulSetAsync(patch, name, ns, fieldManager: FieldManager, force: force, cancellationToken: ct),
            V1Job => client.BatchV1.PatchNamespacedJobAsync(patch, name, ns, fieldManager: FieldManager, force: force, cancellationToken: ct),
            V1Service => client.CoreV1.PatchNamespacedServiceAsync(patch, name, ns, fieldManager: FieldManager, force: force, cancellationToken: ct),
            V1Secret => client.CoreV1.PatchNamespacedSecretAsync(patch, name, ns, fieldManager: FieldManager, force: force, cancellationToken: ct),
            V1NetworkPolicy => client.NetworkingV1.PatchNamespacedNetworkPolicyAsync(patch, name, ns, fieldManager: FieldManager, force: force, cancellationToken: ct),
            _ => throw new ArgumentException($"no server-side apply for {obj.GetType().Name}", nameof(obj)),
        };
    }

    /// <summary>The conflicts of a 409 Status from an apply: its causes (field and "conflict with MANAGER").</summary>
    internal static IReadOnlyList<FieldConflict> Conflicts(string? statusJson)
    {
        var list = new List<FieldConflict>();
        JsonNode? status;
        try
        {
            status = JsonNode.Parse(statusJson ?? "");
        }
        catch (System.Text.Json.JsonException)
        {
            return list;
        }

        foreach (var cause in status?["details"]?["causes"] as JsonArray ?? [])
        {
            if (cause?["reason"]?.GetValue<string>() != "FieldManagerConflict")
            {
                continue;
            }

            var message = cause["message"]?.GetValue<string>() ?? "";
            var manager = message.StartsWith("conflict with ", StringComparison.Ordinal) ? message["conflict with ".Length..] : message;
            list.Add(new FieldConflict(cause["field"]?.GetValue<string>() ?? "", manager));
        }

        return list;
    }

    /// <summary>The bare manager name of a description such as <c>"hpa" using apps/v1</c>.</summary>
    internal static string ManagerName(string described) =>
        QuotedName().Match(described) is { Success: true } m ? m.Groups[1].Value : described;

    [GeneratedRegex("^\"([^\"]*)\"")]
    private static partial Regex QuotedName();

    /// <summary>The stack's objects of one kind by Skiff's labels (<c>dev.skiff.managed-by=skiff,dev.skiff.app=NAME</c>).</summary>
    public async Task<IReadOnlyList<IKubernetesObject<V1ObjectMeta>>> ListAsync(string kind, string ns, string selector, CancellationToken ct) => kind switch
    {
        "Deployment" => (await client.AppsV1.ListNamespacedDeploymentAsync(ns, labelSelector: selector, cancellationToken: ct)).Items.Cast<IKubernetesObject<V1ObjectMeta>>().ToList(),
        "StatefulSet" => (await client.AppsV1.ListNamespacedStatefulSetAsync(ns, labelSelector: selector, cancellationToken: ct)).Items.Cast<IKubernetesObject<V1ObjectMeta>>().ToList(),
        "Job" => (await client.BatchV1.ListNamespacedJobAsync(ns, labelSelector: selector, cancellationToken: ct)).Items.Cast<IKubernetesObject<V1ObjectMeta>>().ToList(),
        "Service" => (await client.CoreV1.ListNamespacedServiceAsync(ns, labelSelector: selector, cancellationToken: ct)).Items.Cast<IKubernetesObject<V1ObjectMeta>>().ToList(),
        "NetworkPolicy" => (await client.NetworkingV1.ListNamespacedNetworkPolicyAsync(ns, labelSelector: selector, cancellationToken: ct)).Items.Cast<IKubernetesObject<V1ObjectMeta>>().ToList(),
        "PersistentVolumeClaim" => (await client.CoreV1.ListNamespacedPersistentVolumeClaimAsync(ns, labelSelector: selector, cancellationToken: ct)).Items.Cast<IKubernetesObject<V1ObjectMeta>>().ToList(),
        _ => throw new ArgumentException($"no list for {kind}", nameof(kind)),
    };

    /// <summary>Deletes an object (its dependents, such as a Job's pods, in the background); one already gone is fine.</summary>
    public async Task DeleteAsync(string kind, string ns, string name, CancellationToken ct)
    {
        var options = new V1DeleteOptions { PropagationPolicy = "Background" };
        try
        {
            Task task = kind switch
            {
                "Deployment" => client.AppsV1.DeleteNamespacedDeploymentAsync(name, ns, options, cancellationToken: ct),
                "StatefulSet" => client.AppsV1.DeleteNamespacedStatefulSetAsync(name, ns, options, cancellationToken: ct),
                "Job" => client.BatchV1.DeleteNamespacedJobAsync(name, ns, options, cancellationToken: ct),
                "Service" => client.CoreV1.DeleteNamespacedServiceAsync(name, ns, options, cancellationToken: ct),
                "NetworkPolicy" => client.NetworkingV1.DeleteNamespacedNetworkPolicyAsync(name, ns, options, cancellationToken: ct),
                "PersistentVolumeClaim" => client.CoreV1.DeleteNamespacedPersistentVolumeClaimAsync(name, ns, options, cancellationToken: ct),
                "Secret" => client.CoreV1.DeleteNamespacedSecretAsync(name, ns, options, cancellationToken: ct),
                _ => throw new ArgumentException($"no delete for {kind}", nameof(kind)),
            };
            await task;
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
        {
        }
    }
}
