using System.Threading.Channels;
using Microsoft.Extensions.Logging;

namespace Skiff.Reconcile;

/// <summary>A change to one of Skiff's containers, or to any network or volume, as the engine's event stream reports it.</summary>
/// <param name="Type"><see cref="Container"/>, <see cref="Network"/> or <see cref="Volume"/>.</param>
/// <param name="Id">A container's id; a network's or volume's name.</param>
/// <param name="Action">Docker's action: <c>create</c>, <c>start</c>, <c>die</c>, <c>health_status: healthy</c>, <c>destroy</c>…</param>
/// <param name="Stack">The stack a container belongs to (its <see cref="SkiffLabels.App"/> label), when it has one.</param>
public sealed record EngineChange(string Type, string Id, string Action, string? Stack)
{
    public const string Container = "container";
    public const string Network = "network";
    public const string Volume = "volume";
}

/// <summary>The engine's event stream; <c>Docker/</c> implements it on the node's engine.</summary>
public interface IEngineChanges
{
    /// <summary>The engine's own clock: events are replayed from a time on it, not on ours.</summary>
    Task<DateTimeOffset> EngineTimeAsync(CancellationToken ct);

    /// <summary>
    /// Calls <paramref name="onChange"/> (which must not block) for every event, from <paramref name="since"/> on, about
    /// a container carrying <see cref="SkiffLabels.ManagedBy"/> or about any network or volume, until
    /// <paramref name="ct"/> ends; throws when the stream drops, and the caller reconnects.
    /// </summary>
    Task WatchChangesAsync(DateTimeOffset since, Action<EngineChange> onChange, CancellationToken ct);
}

/// <summary>
/// The engine port with Skiff's containers, networks and volumes kept in memory, so that a reconcile observes its
/// stack without a call to the engine: one list of each at start-up and after each reconnect, then the engine's event
/// stream keeps the copy current (an event re-inspects the one object it names). A resync of a node's stacks then
/// costs three list calls in all, where each stack used to list and inspect its containers and ask for its network
/// and volumes (for 200 stacks: 200 container lists, ~400 inspects, 200 network and 50 volume requests).
/// </summary>
/// <remarks>
/// # Guarantees
/// - Read your writes: a create, start, stop, rename or remove through this port is in the copy when it returns, so
///   the next plan sees what the last one did (the planner's idempotence rests on that).
/// - Never older than the stream: until the first list after a (re)connect has landed, and whenever the stream is
///   down, reads go to the engine as before; events are replayed from just before that list, so a change made
///   between the list and the stream's start is not missed.
/// - An older answer never overwrites a newer one: every inspect takes a ticket before it asks, and lands only when no
///   later-asked answer landed first.
/// - Reads without <see cref="SkiffLabels.ManagedBy"/> among their labels, and every inspect by id or name, go to the
///   engine: the copy holds only Skiff's containers. Networks and volumes are listed by that label too (a list of
///   networks by labels that include it is answered from the copy: the source's stack scan); one the copy
///   does not know (made by someone else, or an older Skiff) is asked of the engine once, and its answer kept (an
///   event about that name, or a write through this port, asks again).
/// - A container of a stack that dies, is killed for memory or changes health without Skiff's doing is reported
///   through <see cref="StackChanged"/>, after the copy has it, so its stack is looked at at once rather than at its
///   next health period.
/// # Caveats
/// - Between a change on the engine and its event (milliseconds), a read sees the state before; a reconcile that acts
///   on it meets the engine's answer (a conflict, "already stopped"), which every action already tolerates, and its
///   event requeues the stack.
/// </remarks>
public sealed class CachedContainerEngine(IContainerEngine inner, IEngineChanges changes, ILogger logger) : IContainerEngine
{
    /// <summary>Events replayed from this long before the list, for the engine's clock to have moved past the list.</summary>
    private static readonly TimeSpan Replay = TimeSpan.FromSeconds(2);

    private static readonly IReadOnlyDictionary<string, string> Managed =
        new Dictionary<string, string> { [SkiffLabels.ManagedBy] = SkiffLabels.ManagedByValue };

    /// <summary>Actions that do not change what a container looks like to a plan (exec, logs, copies).</summary>
    private static readonly string[] Inert = ["exec_", "attach", "detach", "resize", "top", "export", "copy", "archive-path", "extract-to-dir", "commit"];

    private readonly object gate = new();
    private readonly Dictionary<string, Entry> entries = new(StringComparer.Ordinal);
    /// <summary>Networks by name: their labels, or null for a name the engine has no network of.</summary>
    private readonly Dictionary<string, Known<IReadOnlyDictionary<string, string>?>> networks = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Known<IReadOnlyDictionary<string, string>?>> volumes = new(StringComparer.Ordinal);
    private readonly Channel<EngineChange> pending = Channel.CreateUnbounded<EngineChange>(new UnboundedChannelOptions { SingleReader = true });
    private long tickets;
    private bool live;
    private CancellationTokenSource? session;
    private readonly TaskCompletionSource firstSync = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public string Endpoint => inner.Endpoint;

    /// <summary>Called with a stack's key when one of its containers changed without Skiff's doing (died, OOM, health).</summary>
    public Action<string>? StackChanged { get; set; }

    /// <summary>Reads are served from memory (the stream is up and the first list landed).</summary>
    public bool Live
    {
        get
        {
            lock (gate)
            {
                return live;
            }
        }
    }

    /// <summary>
    /// Until the first list has landed or failed (the engine down: reads go to it meanwhile, and say so). A slow engine
    /// is waited for: on a loaded node the first list of hundreds of containers takes seconds, and every stack reading
    /// the engine meanwhile would make it slower still.
    /// </summary>
    public Task WaitFirstSyncAsync(CancellationToken ct) => firstSync.Task.WaitAsync(ct);

    /// <summary>How many lists this copy made of the engine: one per (re)connect.</summary>
    public int Syncs { get; private set; }

    /// <summary>Keeps the copy current until <paramref name="ct"/> ends: list, follow the stream, and again after a break.</summary>
    public async Task RunAsync(CancellationToken ct)
    {
        var apply = Task.Run(() => ApplyEventsAsync(ct), CancellationToken.None);
        var backoff = TimeSpan.FromMilliseconds(250);
        try
        {
            while (!ct.IsCancellationRequested)
            {
                using var session = CancellationTokenSource.CreateLinkedTokenSource(ct);
                lock (gate)
                {
                    this.session = session;
                }

                try
                {
                    var since = await changes.EngineTimeAsync(session.Token) - Replay;
                    await SyncAsync(session.Token);
                    backoff = TimeSpan.FromMilliseconds(250);
                    await changes.WatchChangesAsync(since, c => pending.Writer.TryWrite(c), session.Token);
                }
                catch (OperationCanceledException) when (ct.IsCancellationRequested)
                {
                    break;
                }
                catch (Exception e)
                {
                    logger.LogDebug(e, "The container copy lost the engine's event stream; reading from the engine until it is back");
                }
                finally
                {
                    firstSync.TrySetResult();
                    Invalidate();
                    lock (gate)
                    {
                        this.session = null;
                    }
                }

                try
                {
                    await Task.Delay(backoff, ct);
                }
                catch (OperationCanceledException)
                {
                    break;
                }

                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, TimeSpan.FromSeconds(10).Ticks));
            }
        }
        finally
        {
            pending.Writer.TryComplete();
            await apply;
        }
    }

    /// <summary>Reads go to the engine again, and the stream starts over with a new list.</summary>
    private void Invalidate()
    {
        lock (gate)
        {
            live = false;
            // Inside the lock: a list landing concurrently sees the cancellation and does not go live on a stale copy.
            session?.Cancel();
        }
    }

    private async Task SyncAsync(CancellationToken ct)
    {
        var ticket = Interlocked.Increment(ref tickets);
        var listed = await inner.ListContainersAsync(Managed, ct);
        var listedNetworks = await inner.ListNetworksAsync(Managed, ct);
        var listedVolumes = await inner.ListVolumesAsync(Managed, ct);
        lock (gate)
        {
            ct.ThrowIfCancellationRequested();
            Replace(networks, ticket, listedNetworks.ToDictionary(n => n.Name, n => (IReadOnlyDictionary<string, string>?)n.Labels, StringComparer.Ordinal));
            Replace(volumes, ticket, listedVolumes.ToDictionary(v => v.Name, v => (IReadOnlyDictionary<string, string>?)v.Labels, StringComparer.Ordinal));
            var seen = listed.ToDictionary(c => c.Id, StringComparer.Ordinal);
            foreach (var (id, entry) in entries.ToList())
            {
                // What was answered after the list was asked for is newer than the list: it stays.
                if (entry.Ticket < ticket && !seen.ContainsKey(id))
                {
                    entries.Remove(id);
                }
            }

            foreach (var c in listed)
            {
                if (!entries.TryGetValue(c.Id, out var entry) || entry.Ticket < ticket)
                {
                    entries[c.Id] = new Entry(ticket, c);
                }
            }

            live = true;
            Syncs++;
        }

        if (!firstSync.Task.IsCompleted)
        {
            Skiff.Observability.StartupTrace.Mark($"container copy: first list landed ({listed.Count} containers)");
        }

        firstSync.TrySetResult();
    }

    /// <summary>
    /// A list's answers replace what was known before it was asked for; what was answered after (a later ticket) is
    /// newer and stays. A name the list does not hold is forgotten, to be asked again: it may have gone meanwhile.
    /// </summary>
    private static void Replace<T>(Dictionary<string, Known<T>> known, long ticket, Dictionary<string, T> listed)
    {
        foreach (var (name, entry) in known.ToList())
        {
            if (entry.Ticket < ticket && !listed.ContainsKey(name))
            {
                known.Remove(name);
            }
        }

        foreach (var (name, value) in listed)
        {
            if (!known.TryGetValue(name, out var entry) || entry.Ticket < ticket)
            {
                known[name] = new Known<T>(ticket, value);
            }
        }
    }

    private async Task ApplyEventsAsync(CancellationToken ct)
    {
        var batch = new Dictionary<(string Type, string Id), EngineChange>();
        try
        {
            while (await pending.Reader.WaitToReadAsync(CancellationToken.None))
            {
                batch.Clear();
                var external = new HashSet<string>(StringComparer.Ordinal);
                while (pending.Reader.TryRead(out var change))
                {
                    if (Inert.Any(a => change.Action.StartsWith(a, StringComparison.Ordinal)))
                    {
                        continue;
                    }

                    batch[(change.Type, change.Id)] = change;
                    if (change.Stack is { } stack && (change.Action is "die" or "oom" || change.Action.StartsWith("health_status", StringComparison.Ordinal)))
                    {
                        external.Add(stack);
                    }
                }

                foreach (var (type, id) in batch.Keys)
                {
                    try
                    {
                        await (type switch
                        {
                            EngineChange.Network => RefreshNetworkAsync(id, ct),
                            EngineChange.Volume => RefreshVolumeAsync(id, ct),
                            _ => RefreshAsync(id, ct),
                        });
                    }
                    catch (Exception e) when (e is not OperationCanceledException)
                    {
                        // The engine went away mid-event: the stream breaks too, and the next list starts over.
                        logger.LogDebug(e, "Could not inspect {Type} {Id} after its event", type, id);
                    }
                }

                foreach (var stack in external)
                {
                    StackChanged?.Invoke(stack);
                }
            }
        }
        catch (OperationCanceledException)
        {
            // Shutting down.
        }
    }

    /// <summary>Inspects one container and lands the answer unless a later-asked one landed first.</summary>
    private async Task RefreshAsync(string id, CancellationToken ct)
    {
        var ticket = Interlocked.Increment(ref tickets);
        ObservedContainer? container;
        try
        {
            container = await inner.InspectContainerAsync(id, ct);
        }
        catch
        {
            // Not knowing what the container looks like now: read from the engine until the next list.
            Invalidate();
            throw;
        }

        Land(id, ticket, container);
    }

    private Task<IReadOnlyDictionary<string, string>?> RefreshNetworkAsync(string name, CancellationToken ct) =>
        RefreshKnownAsync(networks, name, () => inner.InspectNetworkAsync(name, ct));

    private Task<IReadOnlyDictionary<string, string>?> RefreshVolumeAsync(string name, CancellationToken ct) =>
        RefreshKnownAsync(volumes, name, () => inner.InspectVolumeAsync(name, ct));

    /// <summary>
    /// Asks the engine about one network or volume and lands the answer unless a later-asked one landed first; when the
    /// engine cannot answer, reads go to the engine until the next list.
    /// </summary>
    private async Task<T> RefreshKnownAsync<T>(Dictionary<string, Known<T>> known, string name, Func<Task<T>> ask)
    {
        var ticket = Interlocked.Increment(ref tickets);
        T value;
        try
        {
            value = await ask();
        }
        catch
        {
            Invalidate();
            throw;
        }

        Land(known, name, ticket, value);
        return value;
    }

    private void Land<T>(Dictionary<string, Known<T>> known, string name, long ticket, T value)
    {
        lock (gate)
        {
            if (!known.TryGetValue(name, out var entry) || entry.Ticket < ticket)
            {
                known[name] = new Known<T>(ticket, value);
            }
        }
    }

    /// <summary>What the copy knows of a network or volume, when it is live; else not found (ask the engine).</summary>
    private bool TryKnown<T>(Dictionary<string, Known<T>> known, string name, out T value)
    {
        lock (gate)
        {
            if (live && known.TryGetValue(name, out var entry))
            {
                value = entry.Value;
                return true;
            }
        }

        value = default!;
        return false;
    }

    /// <summary>A network or volume write, after which (whether or not it went through) the copy asks what the engine has now.</summary>
    private async Task WriteThenSettleAsync(Func<Task> write, Func<CancellationToken, Task> refresh, string what, CancellationToken ct)
    {
        try
        {
            await write();
        }
        finally
        {
            await SettleAsync(refresh, what, ct);
        }
    }

    /// <summary>After a network or volume write, whether or not it went through: the copy asks what the engine has now.</summary>
    private async Task SettleAsync(Func<CancellationToken, Task> refresh, string what, CancellationToken ct)
    {
        try
        {
            await refresh(ct);
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            logger.LogDebug(e, "Could not look at {What} after changing it", what);
        }
    }

    /// <summary>After a write that went through: the copy learns its result, or reads go to the engine until it does.</summary>
    private async Task SettleAsync(string id, CancellationToken ct)
    {
        try
        {
            await RefreshAsync(id, ct);
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            logger.LogDebug(e, "Could not inspect container {Container} after changing it", id);
        }
    }

    private void Land(string id, long ticket, ObservedContainer? container)
    {
        lock (gate)
        {
            if (entries.TryGetValue(id, out var entry) && entry.Ticket > ticket)
            {
                return;
            }

            entries[id] = new Entry(ticket, container);
        }
    }

    private List<ObservedContainer>? Cached(IReadOnlyDictionary<string, string> labels)
    {
        if (!IsManaged(labels))
        {
            return null;
        }

        lock (gate)
        {
            if (!live)
            {
                return null;
            }

            return [.. entries.Values
                .Select(e => e.Container)
                .OfType<ObservedContainer>()
                .Where(c => Carries(c.Labels, labels))
                .OrderBy(c => c.Name, StringComparer.Ordinal)];
        }
    }

    /// <summary>A read the copy can answer: one by Skiff's label (the copy holds only what carries it).</summary>
    private static bool IsManaged(IReadOnlyDictionary<string, string> labels) =>
        labels.TryGetValue(SkiffLabels.ManagedBy, out var managed) && managed == SkiffLabels.ManagedByValue;

    /// <summary>Whether <paramref name="have"/> holds every label of <paramref name="want"/>, as the engine's label filter matches.</summary>
    private static bool Carries(IReadOnlyDictionary<string, string> have, IReadOnlyDictionary<string, string> want) =>
        want.All(l => have.TryGetValue(l.Key, out var v) && v == l.Value);

    public Task<(string Version, string ApiVersion)> VersionAsync(CancellationToken ct) => inner.VersionAsync(ct);

    public Task<IReadOnlyList<ObservedContainer>> ListContainersAsync(IReadOnlyDictionary<string, string> labels, CancellationToken ct) =>
        Cached(labels) is { } cached ? Task.FromResult<IReadOnlyList<ObservedContainer>>(cached) : inner.ListContainersAsync(labels, ct);

    public Task<IReadOnlyList<IReadOnlyDictionary<string, string>>> ListContainerLabelsAsync(IReadOnlyDictionary<string, string> labels, CancellationToken ct) =>
        Cached(labels) is { } cached
            ? Task.FromResult<IReadOnlyList<IReadOnlyDictionary<string, string>>>([.. cached.Select(c => c.Labels)])
            : inner.ListContainerLabelsAsync(labels, ct);

    public Task<ObservedContainer?> InspectContainerAsync(string idOrName, CancellationToken ct) => inner.InspectContainerAsync(idOrName, ct);

    public async Task<string> CreateContainerAsync(ContainerSpec spec, CancellationToken ct)
    {
        var id = await inner.CreateContainerAsync(spec, ct);
        await SettleAsync(id, ct);
        return id;
    }

    public async Task StartContainerAsync(string id, CancellationToken ct)
    {
        try
        {
            await inner.StartContainerAsync(id, ct);
        }
        finally
        {
            // A start that failed can still have changed the container (its endpoint, an exit at once).
            await SettleAsync(id, ct);
        }
    }

    public async Task StopContainerAsync(string id, TimeSpan timeout, CancellationToken ct)
    {
        await inner.StopContainerAsync(id, timeout, ct);
        await SettleAsync(id, ct);
    }

    public async Task RemoveContainerAsync(string id, CancellationToken ct)
    {
        await inner.RemoveContainerAsync(id, ct);
        await SettleAsync(id, ct);
    }

    public async Task RenameContainerAsync(string id, string name, CancellationToken ct)
    {
        await inner.RenameContainerAsync(id, name, ct);
        await SettleAsync(id, ct);
    }

    public Task<string> LogsAsync(string id, int tail, CancellationToken ct) => inner.LogsAsync(id, tail, ct);

    public Task<string?> ReadFileAsync(string id, string path, CancellationToken ct) => inner.ReadFileAsync(id, path, ct);

    public Task<ExecResult> ExecAsync(string id, IReadOnlyList<string> command, CancellationToken ct) => inner.ExecAsync(id, command, ct);

    public async Task<IReadOnlyDictionary<string, string>?> InspectNetworkAsync(string name, CancellationToken ct) =>
        TryKnown(networks, name, out var labels) ? labels : await RefreshNetworkAsync(name, ct);

    public Task CreateNetworkAsync(string name, IReadOnlyDictionary<string, string> labels, CancellationToken ct) =>
        WriteThenSettleAsync(() => inner.CreateNetworkAsync(name, labels, ct), c => RefreshNetworkAsync(name, c), "network " + name, ct);

    public Task RemoveNetworkAsync(string name, CancellationToken ct) =>
        WriteThenSettleAsync(() => inner.RemoveNetworkAsync(name, ct), c => RefreshNetworkAsync(name, c), "network " + name, ct);

    public Task<IReadOnlyList<(string Name, IReadOnlyDictionary<string, string> Labels)>> ListNetworksAsync(IReadOnlyDictionary<string, string> labels, CancellationToken ct) =>
        CachedNetworks(labels) is { } cached ? Task.FromResult(cached) : inner.ListNetworksAsync(labels, ct);

    /// <summary>Skiff's networks carrying <paramref name="labels"/>, from the copy (null: ask the engine).</summary>
    private IReadOnlyList<(string Name, IReadOnlyDictionary<string, string> Labels)>? CachedNetworks(IReadOnlyDictionary<string, string> labels)
    {
        if (!IsManaged(labels))
        {
            return null;
        }

        lock (gate)
        {
            if (!live)
            {
                return null;
            }

            return [.. networks
                .Where(n => n.Value.Value is { } have && Carries(have, labels))
                .Select(n => (n.Key, n.Value.Value!))
                .OrderBy(n => n.Key, StringComparer.Ordinal)];
        }
    }

    public async Task<IReadOnlyDictionary<string, string>?> InspectVolumeAsync(string name, CancellationToken ct) =>
        TryKnown(volumes, name, out var labels) ? labels : await RefreshVolumeAsync(name, ct);

    public Task<IReadOnlyList<(string Name, IReadOnlyDictionary<string, string> Labels)>> ListVolumesAsync(IReadOnlyDictionary<string, string> labels, CancellationToken ct) =>
        inner.ListVolumesAsync(labels, ct);

    public Task CreateVolumeAsync(string name, IReadOnlyDictionary<string, string> labels, CancellationToken ct) =>
        WriteThenSettleAsync(() => inner.CreateVolumeAsync(name, labels, ct), c => RefreshVolumeAsync(name, c), "volume " + name, ct);

    public Task RemoveVolumeAsync(string name, CancellationToken ct) =>
        WriteThenSettleAsync(() => inner.RemoveVolumeAsync(name, ct), c => RefreshVolumeAsync(name, c), "volume " + name, ct);

    public Task<ObservedImage?> InspectImageAsync(string reference, CancellationToken ct) => inner.InspectImageAsync(reference, ct);

    public Task<long> PullImageAsync(string reference, RegistryAuth? auth, IProgress<PullProgress>? progress, CancellationToken ct) =>
        inner.PullImageAsync(reference, auth, progress, ct);

    private sealed record Entry(long Ticket, ObservedContainer? Container);

    private sealed record Known<T>(long Ticket, T Value);
}
