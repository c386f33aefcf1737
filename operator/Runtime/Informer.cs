using k8s;
using k8s.Models;
using Microsoft.Extensions.Logging;

namespace Skiff.Runtime;

/// <summary>Settings of an <see cref="Informer{T}"/>.</summary>
public sealed record InformerOptions
{
    /// <summary>The first retry delay after a failed list or watch (client-go and kube-rs use 800 ms).</summary>
    public TimeSpan InitialBackoff { get; init; } = TimeSpan.FromMilliseconds(800);

    /// <summary>The longest retry delay (client-go and kube-rs use 30 s).</summary>
    public TimeSpan MaxBackoff { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>A number in [0, 1) that spreads retries; injectable so tests are deterministic.</summary>
    public Func<double> Jitter { get; init; } = Random.Shared.NextDouble;
}

/// <summary>
/// Lists and watches one kind, keeps a local cache of it, and tells handlers what changed, like
/// client-go's shared informer (reflector + indexer) and kube-rs's <c>watcher</c> + <c>reflector</c>.
/// </summary>
/// <remarks>
/// # Guarantees
/// - <see cref="HasSynced"/> turns true once the first list is in the cache, and stays true.
/// - The cache is updated before handlers run, so a handler (or a reconcile it queues) that reads
///   the cache sees the event's state.
/// - After a watch expires (410) the informer lists again and diffs the new list against its
///   cache: objects gone meanwhile get <see cref="OnDelete"/> (with their last known state), new
///   ones <see cref="OnAdd"/>, ones whose resourceVersion changed <see cref="OnUpdate"/>.
/// - A watch that breaks (a network error, a server error) is reopened from the last
///   resourceVersion seen, bookmarks included, so no event is replayed or lost.
/// - Failures are retried with jittered exponential backoff (800 ms doubling to 30 s by
///   default); the backoff resets once a list succeeds or a watch delivers an event.
/// - Handlers run one at a time, on the informer's loop, in event order. A handler that throws
///   is logged and does not stop the informer.
///
/// # Caveats
/// - Handlers must be quick (typically: queue the key); a slow handler holds up every event.
/// - <see cref="LastActivity"/> moves on every list and watch event, bookmarks included: a
///   watchdog may call the informer stuck when it stays still for much longer than the API
///   server's bookmark interval (about a minute).
/// - Objects handed to handlers and returned by the cache are shared: do not modify them.
/// </remarks>
public sealed class Informer<T>(IListWatch<T> listWatch, ILogger<Informer<T>> logger, InformerOptions? options = null, TimeProvider? time = null)
    : IObjectCache<T>
    where T : class, IKubernetesObject<V1ObjectMeta>
{
    private readonly InformerOptions options = options ?? new InformerOptions();
    private readonly TimeProvider time = time ?? TimeProvider.System;
    private readonly Lock gate = new();
    private readonly TaskCompletionSource synced = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Dictionary<ObjectKey, T> cache = [];
    private long lastActivityTicks;
    private bool backingOff;

    /// <summary>An object appeared (in a watch event, or in a relist that had not seen it).</summary>
    public event Action<T>? OnAdd;

    /// <summary>An object changed: old and new state.</summary>
    public event Action<T, T>? OnUpdate;

    /// <summary>An object went away: its last known state.</summary>
    public event Action<T>? OnDelete;

    /// <summary>True once the first list has filled the cache.</summary>
    public bool HasSynced => synced.Task.IsCompleted;

    /// <summary>When the informer last heard from the API server (a list or any watch event).</summary>
    public DateTimeOffset LastActivity => new(Interlocked.Read(ref lastActivityTicks), TimeSpan.Zero);

    /// <summary>The resourceVersion the next watch starts from.</summary>
    public string ResourceVersion { get; private set; } = "";

    /// <summary>Queues the key of every added, updated or deleted object: the usual way to feed a controller.</summary>
    public void EnqueueTo(WorkQueue<ObjectKey> queue)
    {
        ArgumentNullException.ThrowIfNull(queue);
        OnAdd += obj => queue.Add(ObjectKey.From(obj));
        OnUpdate += (_, obj) => queue.Add(ObjectKey.From(obj));
        OnDelete += obj => queue.Add(ObjectKey.From(obj));
    }

    /// <summary>The cached object with this key, or null.</summary>
    public T? Get(ObjectKey key)
    {
        lock (gate)
        {
            return cache.GetValueOrDefault(key);
        }
    }

    /// <summary>A snapshot of every cached object.</summary>
    public IReadOnlyList<T> List()
    {
        lock (gate)
        {
            return [.. cache.Values];
        }
    }

    /// <summary>Completes when the first list is in the cache.</summary>
    public Task WaitForSyncAsync(CancellationToken cancellationToken) => synced.Task.WaitAsync(cancellationToken);

    /// <summary>Lists, then watches, until <paramref name="cancellationToken"/> is cancelled.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var needList = true;
        var failures = 0;
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                if (needList)
                {
                    var (items, resourceVersion) = await listWatch.ListAsync(cancellationToken).ConfigureAwait(false);
                    Touch();
                    Replace(items);
                    ResourceVersion = resourceVersion;
                    needList = false;
                    failures = 0;
                    if (synced.TrySetResult())
                    {
                        logger.LogInformation("Informer for {Kind} synced with {Count} objects", typeof(T).Name, items.Count);
                    }
                }

                var events = 0;
                await foreach (var (type, obj) in listWatch.WatchAsync(ResourceVersion, cancellationToken).ConfigureAwait(false))
                {
                    Touch();
                    Apply(type, obj);
                    events++;
                    failures = 0;
                }

                // The server closed the watch (its timeout): reopen from where we are. A server
                // that closes at once every time must not turn this into a busy loop.
                if (events == 0)
                {
                    await DelayAsync(++failures, cancellationToken).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (WatchExpiredException)
            {
                logger.LogInformation("Watch of {Kind} expired at resourceVersion {ResourceVersion}; listing again", typeof(T).Name, ResourceVersion);
                needList = true;
                await DelayAsync(++failures, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                failures++;
                if (failures == 1 && IsTransport(ex))
                {
                    // The API server went away or cut the stream (a restart, a proxy's timeout): the message says it all,
                    // a stack trace per informer would bury the lines that matter.
                    logger.LogWarning("{Operation} of {Kind} failed: {Error}; retrying with backoff", needList ? "List" : "Watch", typeof(T).Name, Messages(ex));
                }
                else if (failures == 1)
                {
                    logger.LogWarning(ex, "{Operation} of {Kind} failed; retrying with backoff", needList ? "List" : "Watch", typeof(T).Name);
                }
                else
                {
                    logger.LogDebug("{Operation} of {Kind} failed again ({Failures} times): {Error}", needList ? "List" : "Watch", typeof(T).Name, failures, ex.Message);
                }

                await DelayAsync(failures, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private static bool IsTransport(Exception ex) => ex is HttpRequestException or IOException || ex.InnerException is HttpRequestException or IOException;

    /// <summary>The exception's message and its inner ones', as "outer (inner)".</summary>
    private static string Messages(Exception ex) => ex.InnerException is { } inner && inner.Message != ex.Message ? $"{ex.Message} ({Messages(inner)})" : ex.Message;

    /// <summary>Jittered exponential backoff: the n-th consecutive failure waits about initial·2ⁿ⁻¹, capped.</summary>
    internal TimeSpan Backoff(int failures)
    {
        var exponent = Math.Min(Math.Max(failures - 1, 0), 30);
        var ticks = Math.Min(options.InitialBackoff.Ticks * Math.Pow(2, exponent), options.MaxBackoff.Ticks);
        // "Equal jitter": half fixed, half random, so retries of many informers spread out
        // without ever collapsing to zero.
        return TimeSpan.FromTicks((long)(ticks / 2 * (1 + options.Jitter())));
    }

    /// <summary>True while the informer waits out a backoff (its timer already started); for tests.</summary>
    internal bool IsBackingOff => Volatile.Read(ref backingOff);

    private async Task DelayAsync(int failures, CancellationToken cancellationToken)
    {
        try
        {
            var delay = Task.Delay(Backoff(failures), time, cancellationToken);
            Volatile.Write(ref backingOff, true);
            await delay.ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        finally
        {
            Volatile.Write(ref backingOff, false);
        }
    }

    private void Touch() => Interlocked.Exchange(ref lastActivityTicks, time.GetUtcNow().UtcTicks);

    private void Apply(WatchEventType type, T obj)
    {
        var version = obj.Metadata?.ResourceVersion;
        switch (type)
        {
            case WatchEventType.Added or WatchEventType.Modified:
            {
                var key = ObjectKey.From(obj);
                T? old;
                lock (gate)
                {
                    old = cache.GetValueOrDefault(key);
                    cache[key] = obj;
                }

                if (old is null)
                {
                    Notify(OnAdd, h => h(obj));
                }
                else
                {
                    Notify(OnUpdate, h => h(old, obj));
                }

                break;
            }

            case WatchEventType.Deleted:
            {
                var key = ObjectKey.From(obj);
                lock (gate)
                {
                    cache.Remove(key);
                }

                Notify(OnDelete, h => h(obj));
                break;
            }

            case WatchEventType.Bookmark:
                break;

            default:
                // An adapter turns ERROR events into exceptions; one that did not is a broken stream.
                throw new InvalidOperationException($"unexpected watch event {type}");
        }

        if (!string.IsNullOrEmpty(version))
        {
            ResourceVersion = version;
        }
    }

    // Swaps in a fresh list and tells handlers what differs from the old cache.
    private void Replace(IReadOnlyList<T> items)
    {
        var fresh = new Dictionary<ObjectKey, T>(items.Count);
        foreach (var item in items)
        {
            fresh[ObjectKey.From(item)] = item;
        }

        Dictionary<ObjectKey, T> old;
        lock (gate)
        {
            old = cache;
            cache = fresh;
        }

        foreach (var (key, obj) in fresh)
        {
            if (!old.TryGetValue(key, out var previous))
            {
                Notify(OnAdd, h => h(obj));
            }
            else if (previous.Metadata?.ResourceVersion != obj.Metadata?.ResourceVersion)
            {
                Notify(OnUpdate, h => h(previous, obj));
            }
        }

        foreach (var (key, obj) in old)
        {
            if (!fresh.ContainsKey(key))
            {
                Notify(OnDelete, h => h(obj));
            }
        }
    }

    // Each subscriber separately, so one that throws does not starve the others.
    private void Notify<THandler>(THandler? handlers, Action<THandler> invoke)
        where THandler : Delegate
    {
        if (handlers is null)
        {
            return;
        }

        foreach (var handler in handlers.GetInvocationList())
        {
            try
            {
                invoke((THandler)handler);
            }
            catch (Exception ex)
            {
                logger.LogError(ex, "An event handler of the {Kind} informer threw", typeof(T).Name);
            }
        }
    }
}
