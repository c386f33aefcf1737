using System.Runtime.CompilerServices;
using System.Threading.Channels;
using k8s;
using k8s.Models;
using Skiff.Runtime;

namespace Skiff.Tests.Runtime;

/// <summary>
/// An in-memory API server for one kind: tests set what a list returns and push events into the
/// watch that is open, then end it normally, as expired, or broken.
/// </summary>
internal sealed class FakeListWatch : IListWatch<V1ConfigMap>
{
    private readonly Lock gate = new();
    private Channel<(WatchEventType, V1ConfigMap)>? current;

    public List<V1ConfigMap> Items { get; set; } = [];

    public string ListResourceVersion { get; set; } = "1";

    public Exception? ListError { get; set; }

    public int ListCalls { get; private set; }

    public List<string> WatchCalls { get; } = [];

    public int WatchCount
    {
        get
        {
            lock (gate)
            {
                return WatchCalls.Count;
            }
        }
    }

    public Task<(IReadOnlyList<V1ConfigMap> Items, string ResourceVersion)> ListAsync(CancellationToken cancellationToken)
    {
        lock (gate)
        {
            ListCalls++;
            if (ListError is { } error)
            {
                return Task.FromException<(IReadOnlyList<V1ConfigMap>, string)>(error);
            }

            return Task.FromResult<(IReadOnlyList<V1ConfigMap>, string)>(([.. Items], ListResourceVersion));
        }
    }

    public async IAsyncEnumerable<(WatchEventType Type, V1ConfigMap Object)> WatchAsync(
        string resourceVersion,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var channel = Channel.CreateUnbounded<(WatchEventType, V1ConfigMap)>();
        lock (gate)
        {
            WatchCalls.Add(resourceVersion);
            current = channel;
        }

        await foreach (var e in channel.Reader.ReadAllAsync(cancellationToken))
        {
            yield return e;
        }
    }

    public void Send(WatchEventType type, V1ConfigMap obj) => Current().Writer.TryWrite((type, obj));

    /// <summary>The server closes the watch (its timeout).</summary>
    public void Close() => Current().Writer.TryComplete();

    /// <summary>The watch's resourceVersion is too old.</summary>
    public void Expire() => Current().Writer.TryComplete(new WatchExpiredException());

    /// <summary>The connection drops.</summary>
    public void Break() => Current().Writer.TryComplete(new IOException("connection reset"));

    public static V1ConfigMap Object(string name, string resourceVersion, string ns = "prod") =>
        new() { Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = ns, ResourceVersion = resourceVersion } };

    public static V1ConfigMap Bookmark(string resourceVersion) =>
        new() { Metadata = new V1ObjectMeta { ResourceVersion = resourceVersion } };

    private Channel<(WatchEventType, V1ConfigMap)> Current()
    {
        lock (gate)
        {
            return current ?? throw new InvalidOperationException("no watch is open");
        }
    }
}
