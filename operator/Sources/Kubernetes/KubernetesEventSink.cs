using System.Collections.Concurrent;
using k8s;
using k8s.Models;
using Microsoft.Extensions.Logging;
using Skiff.Api;
using Skiff.Reconcile;

namespace Skiff.Sources.Kubernetes;

/// <summary>
/// Writes core/v1 Events for a resource, aggregated like client-go's recorder: the same reason and
/// message on the same object within ten minutes bumps the count of one Event instead of creating
/// another, so a crash loop cannot flood the API. Failures to record are logged, never thrown.
/// </summary>
public sealed class KubernetesEventSink(IKubernetes client, string node, ILogger<KubernetesEventSink> logger, TimeProvider? timeProvider = null) : IEventSink
{
    private static readonly TimeSpan Window = TimeSpan.FromMinutes(10);
    private readonly TimeProvider time = timeProvider ?? TimeProvider.System;
    private readonly ConcurrentDictionary<string, (string Name, int Count, DateTimeOffset First)> seen = new();

    public void Record(AppDeployment resource, EventKind kind, string reason, string message)
    {
        if (kind == EventKind.Warning)
        {
            logger.LogWarning("{Namespace}/{Name} {Reason}: {Message}", resource.Metadata.NamespaceProperty, resource.Metadata.Name, reason, message);
        }
        else
        {
            logger.LogInformation("{Namespace}/{Name} {Reason}: {Message}", resource.Metadata.NamespaceProperty, resource.Metadata.Name, reason, message);
        }

        // Fire and forget: an event must never slow down or fail a reconcile.
        _ = WriteAsync(resource, kind, reason, message);
    }

    private async Task WriteAsync(AppDeployment resource, EventKind kind, string reason, string message)
    {
        var ns = resource.Metadata.NamespaceProperty ?? "default";
        var now = time.GetUtcNow();
        if (message.Length > 1024)
        {
            message = message[..1021] + "...";
        }

        var key = $"{resource.Metadata.Uid}|{reason}|{message}";
        try
        {
            if (seen.TryGetValue(key, out var previous) && now - previous.First < Window)
            {
                var count = previous.Count + 1;
                seen[key] = previous with { Count = count };
                var patch = new V1Patch(
                    $$"""{"count":{{count}},"lastTimestamp":"{{now.UtcDateTime:yyyy-MM-ddTHH:mm:ssZ}}"}""",
                    V1Patch.PatchType.MergePatch);
                await client.CoreV1.PatchNamespacedEventAsync(patch, previous.Name, ns);
                return;
            }

            var name = $"{resource.Metadata.Name}.{now.ToUnixTimeMilliseconds():x}{Random.Shared.Next(0x1000):x3}";
            var ev = new Corev1Event
            {
                ApiVersion = "v1",
                Kind = "Event",
                Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = ns },
                InvolvedObject = new V1ObjectReference
                {
                    ApiVersion = SkiffApi.ApiVersion,
                    Kind = AppDeployment.KindName,
                    Name = resource.Metadata.Name,
                    NamespaceProperty = ns,
                    Uid = resource.Metadata.Uid,
                    ResourceVersion = resource.Metadata.ResourceVersion,
                },
                Reason = reason,
                Message = message,
                Type = kind == EventKind.Warning ? "Warning" : "Normal",
                Count = 1,
                FirstTimestamp = now.UtcDateTime,
                LastTimestamp = now.UtcDateTime,
                Source = new V1EventSource { Component = "skiff", Host = node },
                ReportingComponent = "skiff.dev/operator",
                ReportingInstance = node,
            };
            await client.CoreV1.CreateNamespacedEventAsync(ev, ns);
            seen[key] = (name, 1, now);
            foreach (var stale in seen.Where(kv => now - kv.Value.First > Window).Select(kv => kv.Key).ToList())
            {
                seen.TryRemove(stale, out _);
            }
        }
        catch (Exception e)
        {
            logger.LogDebug(e, "Could not record event {Reason} on {Namespace}/{Name}", reason, ns, resource.Metadata.Name);
        }
    }
}
