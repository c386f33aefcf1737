using System.Net;
using System.Runtime.CompilerServices;
using System.Text.Json;
using k8s;
using k8s.Autorest;
using k8s.Models;
using Skiff.Runtime;

namespace Skiff.Tests.Runtime;

// The adapter's own logic: how KubernetesClient's ways of reporting a failed watch turn into
// what the informer understands. The calls to a real API server are covered by integration tests.
public class KubernetesListWatchTests
{
    private static readonly V1Secret Secret = new() { Metadata = new V1ObjectMeta { Name = "s", NamespaceProperty = "prod", ResourceVersion = "3" } };

    private static KubernetesListWatch<V1Secret> Adapter(Func<Action<Exception>, IAsyncEnumerable<(WatchEventType, V1Secret)>> watch) =>
        new(_ => Task.FromResult<(IReadOnlyList<V1Secret>, string)>(([], "1")), (_, _, onError, _) => watch(onError));

    private static async Task<List<(WatchEventType Type, V1Secret Object)>> DrainAsync(KubernetesListWatch<V1Secret> adapter)
    {
        var events = new List<(WatchEventType, V1Secret)>();
        await foreach (var e in adapter.WatchAsync("1", CancellationToken.None))
        {
            events.Add(e);
        }

        return events;
    }

    [Fact]
    public async Task ErrorEventWithCode410_BecomesWatchExpired()
    {
        var adapter = Adapter(onError => Stream(onError, new KubernetesException(new V1Status { Code = 410, Reason = "Expired" })));

        await Assert.ThrowsAsync<WatchExpiredException>(() => DrainAsync(adapter));
    }

    [Fact]
    public async Task Http410OnOpeningTheWatch_BecomesWatchExpired()
    {
        var gone = new HttpOperationException("gone") { Response = new HttpResponseMessageWrapper(new HttpResponseMessage(HttpStatusCode.Gone), "") };
        var adapter = Adapter(_ => Throwing(gone));

        await Assert.ThrowsAsync<WatchExpiredException>(() => DrainAsync(adapter));
    }

    [Fact]
    public async Task OtherErrorEvent_EndsTheWatchWithThatError()
    {
        var adapter = Adapter(onError => Stream(onError, new KubernetesException(new V1Status { Code = 500, Message = "etcd timeout" })));

        var ex = await Assert.ThrowsAsync<KubernetesException>(() => DrainAsync(adapter));
        Assert.Contains("etcd", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task EventsBeforeTheError_AreDelivered()
    {
        var events = new List<(WatchEventType, V1Secret)>();
        var adapter = Adapter(onError => Stream(onError, new KubernetesException(new V1Status { Code = 410 })));

        await Assert.ThrowsAsync<WatchExpiredException>(async () =>
        {
            await foreach (var e in adapter.WatchAsync("1", CancellationToken.None))
            {
                events.Add(e);
            }
        });
        Assert.Equal([(WatchEventType.Added, Secret)], events);
    }

    [Fact]
    public async Task ServerClosingTheWatch_EndsNormally()
    {
        var adapter = Adapter(onError => Stream(onError, error: null));

        Assert.Single(await DrainAsync(adapter));
    }

    [Fact]
    public void ResourceList_DecodesAnApiServerList()
    {
        var json = """{"apiVersion":"v1","kind":"SecretList","metadata":{"resourceVersion":"77"},"items":[{"metadata":{"name":"a","namespace":"prod"}}]}""";

        var list = KubernetesJson.Deserialize<ResourceList<V1Secret>>(json);

        Assert.Equal("77", list.Metadata.ResourceVersion);
        Assert.Equal("a", Assert.Single(list.Items).Metadata.Name);
        Assert.Equal(JsonValueKind.Object, JsonDocument.Parse(KubernetesJson.Serialize(list)).RootElement.ValueKind);
    }

    [Fact]
    public async Task CustomObjectEvents_AreDecodedToTheTypedObject()
    {
        var json = JsonDocument.Parse("""{"metadata":{"name":"a","namespace":"prod","resourceVersion":"9"},"type":"Opaque"}""").RootElement;

        var typed = new List<(WatchEventType, V1Secret)>();
        await foreach (var e in KubernetesListWatch<V1Secret>.Typed(Untyped(json), CancellationToken.None))
        {
            typed.Add(e);
        }

        var (type, secret) = Assert.Single(typed);
        Assert.Equal(WatchEventType.Modified, type);
        Assert.Equal("9", secret.Metadata.ResourceVersion);
        Assert.Equal("Opaque", secret.Type);
    }

    private static async IAsyncEnumerable<(WatchEventType, object)> Untyped(JsonElement json)
    {
        await Task.Yield();
        yield return (WatchEventType.Modified, json);
    }

    // Like KubernetesClient: one event, then the error reported through onError, then the server closes.
    private static async IAsyncEnumerable<(WatchEventType, V1Secret)> Stream(Action<Exception> onError, Exception? error, [EnumeratorCancellation] CancellationToken ct = default)
    {
        await Task.Yield();
        yield return (WatchEventType.Added, Secret);
        if (error is not null)
        {
            onError(error);
        }
    }

    private static async IAsyncEnumerable<(WatchEventType, V1Secret)> Throwing(Exception error)
    {
        await Task.Yield();
        if (error is not null)
        {
            throw error;
        }

        yield break;
    }
}
