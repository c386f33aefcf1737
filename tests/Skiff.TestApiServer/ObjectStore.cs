using System.Threading.Channels;
using System.Text.Json.Nodes;

namespace Skiff.TestApiServer;

/// <summary>One change as watchers see it. <see cref="Previous"/> lets a filtered watch turn MODIFIED into ADDED or DELETED when an object enters or leaves its selector.</summary>
internal sealed record WatchEvent(string Type, string StorageKey, long Rv, JsonObject? Object, JsonObject? Previous = null, bool InitialEventsEnd = false);

/// <summary>An open watch: the store pushes every event of its resource here, in resourceVersion order, under the store's lock.</summary>
internal sealed class Watcher(string storageKey, bool bookmarks) : IDisposable
{
    public Channel<WatchEvent> Events { get; } = Channel.CreateUnbounded<WatchEvent>(new UnboundedChannelOptions { SingleReader = true });

    public string StorageKey { get; } = storageKey;

    public bool WantsBookmarks { get; } = bookmarks;

    public CancellationTokenSource Dropped { get; } = new();

    public void Dispose() => Dropped.Dispose();
}

/// <summary>Thrown when a watch asks for a resourceVersion older than the history kept: the apiserver's 410 Expired.</summary>
internal sealed class ExpiredException(long requested, long oldest) : Exception($"too old resource version: {requested} ({oldest})")
{
    public long Requested { get; } = requested;

    public long Oldest { get; } = oldest;
}

/// <summary>
/// The objects, one resourceVersion counter for the whole server (as etcd's revision), a bounded history of events for
/// watches that resume from a resourceVersion, and the open watches. Stored objects are never mutated: every write stores
/// a new JsonObject, so readers may serialize what they got outside the lock.
/// </summary>
internal sealed class ObjectStore(int historySize)
{
    private readonly Dictionary<string, SortedDictionary<string, JsonObject>> _objects = [];
    private readonly LinkedList<WatchEvent> _history = new();
    private readonly List<Watcher> _watchers = [];
    private long _rv = 1;
    private long _historyFloor;
    private long _expiredBelow;

    public object Lock { get; } = new();

    public long CurrentRv
    {
        get
        {
            lock (Lock)
            {
                return _rv;
            }
        }
    }

    private static string Key(string ns, string name) => ns.Length == 0 ? name : $"{ns}/{name}";

    private SortedDictionary<string, JsonObject> Bucket(string storageKey)
    {
        if (!_objects.TryGetValue(storageKey, out var bucket))
        {
            bucket = new SortedDictionary<string, JsonObject>(StringComparer.Ordinal);
            _objects[storageKey] = bucket;
        }

        return bucket;
    }

    public JsonObject? Get(ResourceType type, string ns, string name)
    {
        lock (Lock)
        {
            return Bucket(type.StorageKey).GetValueOrDefault(Key(type.Namespaced ? ns : "", name));
        }
    }

    /// <summary>Objects of one resource (in one namespace, or all when <paramref name="ns"/> is null), by namespace then name, with the current resourceVersion.</summary>
    public (List<JsonObject> Items, long Rv) List(ResourceType type, string? ns)
    {
        lock (Lock)
        {
            var items = Bucket(type.StorageKey).Values.Where(o => ns is null || Json.Namespace(o) == ns).ToList();
            return (items, _rv);
        }
    }

    /// <summary>Stores a new version of an object under the next resourceVersion and tells the watchers.</summary>
    public JsonObject Put(ResourceType type, JsonObject obj, JsonObject? previous)
    {
        lock (Lock)
        {
            var rv = ++_rv;
            Json.Metadata(obj)["resourceVersion"] = rv.ToString(System.Globalization.CultureInfo.InvariantCulture);
            Bucket(type.StorageKey)[Key(type.Namespaced ? Json.Namespace(obj) : "", Json.Name(obj))] = obj;
            Publish(new WatchEvent(previous is null ? "ADDED" : "MODIFIED", type.StorageKey, rv, obj, previous));
            return obj;
        }
    }

    /// <summary>Removes an object; the DELETED event carries it with the resourceVersion of the deletion, as the real server's does.</summary>
    public JsonObject Remove(ResourceType type, JsonObject obj)
    {
        lock (Lock)
        {
            var rv = ++_rv;
            var gone = Json.Clone(obj);
            Json.Metadata(gone)["resourceVersion"] = rv.ToString(System.Globalization.CultureInfo.InvariantCulture);
            Bucket(type.StorageKey).Remove(Key(type.Namespaced ? Json.Namespace(obj) : "", Json.Name(obj)));
            Publish(new WatchEvent("DELETED", type.StorageKey, rv, gone, obj));
            return gone;
        }
    }

    private void Publish(WatchEvent e)
    {
        _history.AddLast(e);
        while (_history.Count > historySize)
        {
            _historyFloor = _history.First!.Value.Rv;
            _history.RemoveFirst();
        }

        foreach (var w in _watchers)
        {
            if (w.StorageKey == e.StorageKey)
            {
                w.Events.Writer.TryWrite(e);
            }
        }
    }

    /// <summary>
    /// Opens a watch. From resourceVersion 0 or none: the current objects first, as ADDED. From a later one: the events
    /// after it from history, or <see cref="ExpiredException"/> when history no longer reaches back that far.
    /// </summary>
    public Watcher Subscribe(ResourceType type, long? fromRv, bool bookmarks, bool sendInitialEvents)
    {
        lock (Lock)
        {
            var w = new Watcher(type.StorageKey, bookmarks);
            if (fromRv is null or 0 || sendInitialEvents)
            {
                foreach (var o in Bucket(type.StorageKey).Values)
                {
                    w.Events.Writer.TryWrite(new WatchEvent("ADDED", type.StorageKey, Json.Rv(o), o));
                }

                if (sendInitialEvents)
                {
                    w.Events.Writer.TryWrite(new WatchEvent("BOOKMARK", type.StorageKey, _rv, null, InitialEventsEnd: true));
                }
            }
            else
            {
                var oldest = Math.Max(_historyFloor, _expiredBelow);
                if (fromRv < oldest)
                {
                    throw new ExpiredException(fromRv.Value, oldest);
                }

                foreach (var e in _history)
                {
                    if (e.Rv > fromRv && e.StorageKey == type.StorageKey)
                    {
                        w.Events.Writer.TryWrite(e);
                    }
                }
            }

            _watchers.Add(w);
            return w;
        }
    }

    public void Unsubscribe(Watcher w)
    {
        lock (Lock)
        {
            _watchers.Remove(w);
        }
    }

    /// <summary>Queues a BOOKMARK at the current resourceVersion to every watch that asked for bookmarks; under the lock, so it follows every event before it.</summary>
    public void Bookmark()
    {
        lock (Lock)
        {
            foreach (var w in _watchers.Where(w => w.WantsBookmarks))
            {
                w.Events.Writer.TryWrite(new WatchEvent("BOOKMARK", w.StorageKey, _rv, null));
            }
        }
    }

    public void DropAllWatches()
    {
        lock (Lock)
        {
            foreach (var w in _watchers)
            {
                w.Dropped.Cancel();
            }
        }
    }

    public void ExpireBelow(long rv)
    {
        lock (Lock)
        {
            _expiredBelow = Math.Max(_expiredBelow, rv);
        }
    }

    /// <summary>Every namespaced object of every resource in one namespace, for namespace deletion.</summary>
    public List<(string StorageKey, JsonObject Obj)> InNamespace(string ns)
    {
        lock (Lock)
        {
            return _objects.SelectMany(b => b.Value.Values.Where(o => Json.Namespace(o) == ns).Select(o => (b.Key, o))).ToList();
        }
    }
}
