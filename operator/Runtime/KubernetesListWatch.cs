using System.Net;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Serialization;
using k8s;
using k8s.Autorest;
using k8s.Models;

namespace Skiff.Runtime;

/// <summary>
/// <see cref="IListWatch{T}"/> on KubernetesClient, for custom resources
/// (<see cref="ForCustomResource"/>) and Secrets (<see cref="KubernetesListWatch.ForSecrets"/>).
/// </summary>
/// <remarks>
/// # Guarantees
/// - Watches ask for bookmarks (<c>allowWatchBookmarks=true</c>) and a server-side timeout of
///   5–10 minutes (randomised, as client-go does), so the stream is renewed regularly.
/// - An ERROR event with code 410, or an HTTP 410 on opening the watch, becomes
///   <see cref="WatchExpiredException"/>; any other ERROR event or undecodable line ends the
///   watch with a <see cref="KubernetesException"/> / the decoding error, so the informer reopens it.
///
/// # Caveats
/// - Lists are not paginated: fine for the tens of objects one node serves.
/// </remarks>
public sealed class KubernetesListWatch<T> : IListWatch<T>
    where T : IKubernetesObject<V1ObjectMeta>
{
    private readonly Func<CancellationToken, Task<(IReadOnlyList<T>, string)>> list;
    private readonly Func<string, int, Action<Exception>, CancellationToken, IAsyncEnumerable<(WatchEventType, T)>> watch;

    internal KubernetesListWatch(
        Func<CancellationToken, Task<(IReadOnlyList<T>, string)>> list,
        Func<string, int, Action<Exception>, CancellationToken, IAsyncEnumerable<(WatchEventType, T)>> watch)
    {
        this.list = list;
        this.watch = watch;
    }

    /// <summary>
    /// Lists and watches a custom resource through the CustomObjects API, in one namespace or
    /// (when <paramref name="namespace"/> is null) in all of them, or cluster-scoped.
    /// </summary>
    public static KubernetesListWatch<T> ForCustomResource(
        IKubernetes client,
        string group,
        string version,
        string plural,
        string? @namespace = null,
        string? labelSelector = null,
        string? fieldSelector = null)
    {
        ArgumentNullException.ThrowIfNull(client);
        return new KubernetesListWatch<T>(
            async ct =>
            {
                var response = @namespace is null
                    ? await client.CustomObjects.ListClusterCustomObjectWithHttpMessagesAsync<ResourceList<T>>(
                        group, version, plural, fieldSelector: fieldSelector, labelSelector: labelSelector, cancellationToken: ct).ConfigureAwait(false)
                    : await client.CustomObjects.ListNamespacedCustomObjectWithHttpMessagesAsync<ResourceList<T>>(
                        group, version, @namespace, plural, fieldSelector: fieldSelector, labelSelector: labelSelector, cancellationToken: ct).ConfigureAwait(false);
                using (response)
                {
                    var body = response.Body;
                    return ((IReadOnlyList<T>)[.. body.Items ?? []], body.Metadata?.ResourceVersion ?? "");
                }
            },
            (resourceVersion, timeoutSeconds, onError, ct) =>
            {
                var events = @namespace is null
                    ? client.CustomObjects.WatchListClusterCustomObjectAsync(
                        group, version, plural, allowWatchBookmarks: true, fieldSelector: fieldSelector, labelSelector: labelSelector,
                        resourceVersion: resourceVersion, timeoutSeconds: timeoutSeconds, onError: onError, cancellationToken: ct)
                    : client.CustomObjects.WatchListNamespacedCustomObjectAsync(
                        group, version, @namespace, plural, allowWatchBookmarks: true, fieldSelector: fieldSelector, labelSelector: labelSelector,
                        resourceVersion: resourceVersion, timeoutSeconds: timeoutSeconds, onError: onError, cancellationToken: ct);
                return Typed(events, ct);
            });
    }

    public Task<(IReadOnlyList<T> Items, string ResourceVersion)> ListAsync(CancellationToken cancellationToken) =>
        list(cancellationToken)!;

    public async IAsyncEnumerable<(WatchEventType Type, T Object)> WatchAsync(
        string resourceVersion,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        // KubernetesClient reports ERROR events (and lines it cannot decode) through onError and
        // keeps reading; the server closes the stream after an ERROR, but after a line that could not
        // be decoded it may send nothing more for minutes. So the first error also ends the watch at
        // once, and is thrown where the informer sees it (it logs it and lists again: nothing is missed).
        Exception? error = null;
        var timeoutSeconds = 300 + Random.Shared.Next(300);
        using var abort = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        void OnError(Exception e)
        {
            error ??= e;
            abort.Cancel();
        }

        await using var events = watch(resourceVersion, timeoutSeconds, OnError, abort.Token).GetAsyncEnumerator(abort.Token);
        while (true)
        {
            bool more;
            try
            {
                more = await events.MoveNextAsync().ConfigureAwait(false);
            }
            catch (HttpOperationException ex) when (ex.Response?.StatusCode == HttpStatusCode.Gone)
            {
                throw new WatchExpiredException($"watch from resourceVersion {resourceVersion} expired", ex);
            }
            catch (OperationCanceledException) when (error is not null && !cancellationToken.IsCancellationRequested)
            {
                throw Translate(error, resourceVersion);
            }

            if (error is not null)
            {
                throw Translate(error, resourceVersion);
            }

            if (!more)
            {
                yield break;
            }

            yield return events.Current;
        }
    }

    private static Exception Translate(Exception error, string resourceVersion) =>
        error is KubernetesException { Status.Code: (int)HttpStatusCode.Gone }
            ? new WatchExpiredException($"watch from resourceVersion {resourceVersion} expired: {error.Message}", error)
            : error;

    // The CustomObjects watch yields untyped JSON; decode each object with the client's own options.
    internal static async IAsyncEnumerable<(WatchEventType, T)> Typed(
        IAsyncEnumerable<(WatchEventType, object)> events,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await foreach (var (type, obj) in events.WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            var typed = obj switch
            {
                T t => t,
                JsonElement json => KubernetesJson.Deserialize<T>(json.GetRawText()),
                _ => KubernetesJson.Deserialize<T>(KubernetesJson.Serialize(obj)),
            };
            yield return (type, typed);
        }
    }
}

/// <summary>Factories for the built-in kinds Skiff watches.</summary>
public static class KubernetesListWatch
{
    /// <summary>Lists and watches Secrets in one namespace, or in all of them when <paramref name="namespace"/> is null.</summary>
    public static KubernetesListWatch<V1Secret> ForSecrets(
        IKubernetes client,
        string? @namespace = null,
        string? labelSelector = null,
        string? fieldSelector = null)
    {
        ArgumentNullException.ThrowIfNull(client);
        return new KubernetesListWatch<V1Secret>(
            async ct =>
            {
                var secrets = @namespace is null
                    ? await client.CoreV1.ListSecretForAllNamespacesAsync(fieldSelector: fieldSelector, labelSelector: labelSelector, cancellationToken: ct).ConfigureAwait(false)
                    : await client.CoreV1.ListNamespacedSecretAsync(@namespace, fieldSelector: fieldSelector, labelSelector: labelSelector, cancellationToken: ct).ConfigureAwait(false);
                return ((IReadOnlyList<V1Secret>)[.. secrets.Items ?? []], secrets.Metadata?.ResourceVersion ?? "");
            },
            (resourceVersion, timeoutSeconds, onError, ct) => @namespace is null
                ? client.CoreV1.WatchListSecretForAllNamespacesAsync(
                    allowWatchBookmarks: true, fieldSelector: fieldSelector, labelSelector: labelSelector,
                    resourceVersion: resourceVersion, timeoutSeconds: timeoutSeconds, onError: onError, cancellationToken: ct)
                : client.CoreV1.WatchListNamespacedSecretAsync(
                    @namespace, allowWatchBookmarks: true, fieldSelector: fieldSelector, labelSelector: labelSelector,
                    resourceVersion: resourceVersion, timeoutSeconds: timeoutSeconds, onError: onError, cancellationToken: ct));
    }
}

/// <summary>The list envelope the API server returns for any kind (<c>{"items": [...], "metadata": {...}}</c>).</summary>
public sealed class ResourceList<T> : IKubernetesObject<V1ListMeta>, IItems<T>
{
    [JsonPropertyName("apiVersion")]
    public string ApiVersion { get; set; } = "";

    [JsonPropertyName("kind")]
    public string Kind { get; set; } = "";

    [JsonPropertyName("metadata")]
    public V1ListMeta Metadata { get; set; } = new();

    [JsonPropertyName("items")]
    public IList<T> Items { get; set; } = [];
}
