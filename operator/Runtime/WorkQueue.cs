namespace Skiff.Runtime;

/// <summary>
/// A work queue of keys like client-go's rate-limiting workqueue: it de-duplicates, never hands
/// one key to two workers at once, delays keys (<see cref="AddAfter"/>) and retries them with
/// backoff (<see cref="AddRateLimited"/>).
/// </summary>
/// <remarks>
/// # Guarantees
/// - A key is queued at most once however often it is added before a worker takes it.
/// - A key being processed (taken by <see cref="GetAsync"/>, not yet <see cref="Done"/>) is never
///   handed out again; if it is added meanwhile it is queued again once, right after Done.
/// - Two priorities, like controller-runtime's priority queue: a key added with <see cref="Add"/>
///   (a change: a watch event, an edited file, a container that died) is handed out before every
///   key that became ready by a delay (<see cref="AddAfter"/>: a health period, a requeue, a retry).
///   A change waits for a free worker, not behind a burst of routine looks that fell due together.
///   A queued routine key that is added again is moved up, once.
/// - Within a priority, keys are handed out in the order they became ready; delayed keys become
///   ready in the order of their due time (ties in the order they were added). A key delayed twice
///   keeps the earlier due time.
/// - All time comes from the injected <see cref="TimeProvider"/>, so tests run on fake time.
///
/// # Caveats
/// - Unlike client-go, once <see cref="ShutDown"/> is called no more keys are handed out, even
///   those still queued: the controller stops taking work and the next start relists everything
///   (reconciles are level-based). Adds after shutdown are ignored.
/// - Every caller of <see cref="GetAsync"/> must call <see cref="Done"/> for the key it got.
/// </remarks>
public sealed class WorkQueue<TKey> : IDisposable
    where TKey : notnull
{
    // client-go refreshes the unfinished-work gauges on this period.
    private static readonly TimeSpan UnfinishedWorkPeriod = TimeSpan.FromMilliseconds(500);

    private readonly Lock gate = new();
    private readonly TimeProvider time;
    private readonly IRateLimiter<TKey> rateLimiter;
    private readonly IWorkQueueMetrics metrics;

    // Ready keys, changes first; an entry whose ticket is not the key's ticket in `queued` is stale
    // (the key moved up, or was handed out) and is skipped.
    private readonly Queue<(TKey Key, long Ticket)> urgent = new();
    private readonly Queue<(TKey Key, long Ticket)> routine = new();
    private readonly Dictionary<TKey, long> queued = [];
    private long tickets;

    // Keys added and not yet handed out (queued, or to be queued again after Done), and whether a
    // change (true) or only a delay (false) added them.
    private readonly Dictionary<TKey, bool> dirty = [];
    private readonly Dictionary<TKey, long> processing = [];
    private readonly Dictionary<TKey, long> enqueuedAt = [];

    private readonly PriorityQueue<TKey, (DateTimeOffset Due, long Seq)> waiting = new();
    private readonly Dictionary<TKey, DateTimeOffset> waitingDue = [];
    private long waitingSeq;
    private ITimer? waitTimer;
    private readonly ITimer? unfinishedWorkTimer;

    private TaskCompletionSource changed = NewSignal();
    private bool shuttingDown;

    public WorkQueue(string name, IRateLimiter<TKey>? rateLimiter = null, TimeProvider? time = null, IWorkQueueMetrics? metrics = null)
    {
        Name = name;
        this.time = time ?? TimeProvider.System;
        this.rateLimiter = rateLimiter ?? RateLimiters.Default<TKey>(this.time);
        this.metrics = metrics ?? NoopWorkQueueMetrics.Instance;
        if (this.metrics is not NoopWorkQueueMetrics)
        {
            unfinishedWorkTimer = this.time.CreateTimer(_ => UpdateUnfinishedWork(), null, UnfinishedWorkPeriod, UnfinishedWorkPeriod);
        }
    }

    /// <summary>The queue's name, used as the <c>name</c> label of its metrics.</summary>
    public string Name { get; }

    /// <summary>The number of keys ready to be handed out (not counting delayed or in-progress ones).</summary>
    public int Len
    {
        get
        {
            lock (gate)
            {
                return queued.Count;
            }
        }
    }

    /// <summary>True once <see cref="ShutDown"/> was called.</summary>
    public bool IsShuttingDown
    {
        get
        {
            lock (gate)
            {
                return shuttingDown;
            }
        }
    }

    /// <summary>Queues the key, as a change (handed out before delayed keys), unless it is already queued; ignored after shutdown.</summary>
    public void Add(TKey key)
    {
        lock (gate)
        {
            AddLocked(key, urgent: true);
        }
    }

    /// <summary>Queues the key once <paramref name="delay"/> has passed (now if it is not positive).</summary>
    public void AddAfter(TKey key, TimeSpan delay)
    {
        lock (gate)
        {
            if (shuttingDown)
            {
                return;
            }

            if (delay <= TimeSpan.Zero)
            {
                AddLocked(key, urgent: false);
                return;
            }

            var due = time.GetUtcNow() + delay;
            if (waitingDue.TryGetValue(key, out var existing) && existing <= due)
            {
                return;
            }

            waitingDue[key] = due;
            waiting.Enqueue(key, (due, waitingSeq++));
            ArmWaitTimerLocked();
        }
    }

    /// <summary>Queues the key after the rate limiter's delay for it (a retry).</summary>
    public void AddRateLimited(TKey key)
    {
        TimeSpan delay;
        lock (gate)
        {
            if (shuttingDown)
            {
                return;
            }

            metrics.Retried();
            delay = rateLimiter.When(key);
        }

        AddAfter(key, delay);
    }

    /// <summary>Resets the key's backoff; call it when the key was processed successfully.</summary>
    public void Forget(TKey key) => rateLimiter.Forget(key);

    /// <summary>How often the key was retried since it was last forgotten.</summary>
    public int NumRequeues(TKey key) => rateLimiter.NumRequeues(key);

    /// <summary>
    /// Waits for a key and marks it as being processed. Returns <c>ShutDown = true</c> (and a
    /// default key) once the queue is shut down.
    /// </summary>
    public async Task<(TKey Key, bool ShutDown)> GetAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            Task signal;
            lock (gate)
            {
                if (shuttingDown)
                {
                    return (default!, true);
                }

                if (TryDequeueLocked(out var key))
                {
                    var now = time.GetTimestamp();
                    dirty.Remove(key);
                    processing[key] = now;
                    if (enqueuedAt.Remove(key, out var since))
                    {
                        metrics.ObserveQueueDuration(time.GetElapsedTime(since, now));
                    }

                    metrics.SetDepth(queued.Count);
                    return (key, false);
                }

                signal = changed.Task;
            }

            await signal.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Marks the key as processed. If it was added while being processed, it is queued again now.
    /// </summary>
    public void Done(TKey key)
    {
        lock (gate)
        {
            if (processing.Remove(key, out var started))
            {
                metrics.ObserveWorkDuration(time.GetElapsedTime(started));
            }

            if (!shuttingDown && dirty.TryGetValue(key, out var isUrgent))
            {
                EnqueueLocked(key, isUrgent);
            }

            // Wakes getters for a re-queued key and ShutDownWithDrainAsync alike.
            SignalLocked();
        }
    }

    /// <summary>Stops handing out keys and ignores further adds; waiting getters return at once.</summary>
    public void ShutDown()
    {
        lock (gate)
        {
            if (shuttingDown)
            {
                return;
            }

            shuttingDown = true;
            waitTimer?.Dispose();
            waitTimer = null;
            waiting.Clear();
            waitingDue.Clear();
            SignalLocked();
        }

        unfinishedWorkTimer?.Dispose();
    }

    /// <summary>
    /// Shuts down, then waits until every key handed out has been marked <see cref="Done"/>.
    /// Cancel <paramref name="cancellationToken"/> to bound the wait.
    /// </summary>
    public async Task ShutDownWithDrainAsync(CancellationToken cancellationToken)
    {
        ShutDown();
        while (true)
        {
            Task signal;
            lock (gate)
            {
                if (processing.Count == 0)
                {
                    return;
                }

                signal = changed.Task;
            }

            await signal.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Reports the unfinished-work gauges now (also done every 500 ms when metrics are on).</summary>
    public void UpdateUnfinishedWork()
    {
        lock (gate)
        {
            var now = time.GetTimestamp();
            var total = TimeSpan.Zero;
            var longest = TimeSpan.Zero;
            foreach (var started in processing.Values)
            {
                var running = time.GetElapsedTime(started, now);
                total += running;
                if (running > longest)
                {
                    longest = running;
                }
            }

            metrics.SetUnfinishedWork(total, longest);
        }
    }

    public void Dispose() => ShutDown();

    private void AddLocked(TKey key, bool urgent)
    {
        if (shuttingDown)
        {
            return;
        }

        if (dirty.TryGetValue(key, out var wasUrgent))
        {
            if (urgent && !wasUrgent)
            {
                // A change to a key waiting as routine: it moves up (its routine entry goes stale).
                dirty[key] = true;
                if (queued.ContainsKey(key))
                {
                    var ticket = ++tickets;
                    queued[key] = ticket;
                    this.urgent.Enqueue((key, ticket));
                    SignalLocked();
                }
            }

            return;
        }

        dirty[key] = urgent;
        metrics.Added();
        if (processing.ContainsKey(key))
        {
            // Done queues it again; handing it out now would run it twice at once.
            return;
        }

        EnqueueLocked(key, urgent);
        SignalLocked();
    }

    private void EnqueueLocked(TKey key, bool isUrgent)
    {
        var ticket = ++tickets;
        queued[key] = ticket;
        (isUrgent ? urgent : routine).Enqueue((key, ticket));
        enqueuedAt[key] = time.GetTimestamp();
        metrics.SetDepth(queued.Count);
    }

    private bool TryDequeueLocked(out TKey key)
    {
        foreach (var q in new[] { urgent, routine })
        {
            while (q.TryDequeue(out var entry))
            {
                if (queued.TryGetValue(entry.Key, out var ticket) && ticket == entry.Ticket)
                {
                    queued.Remove(entry.Key);
                    key = entry.Key;
                    return true;
                }
            }
        }

        key = default!;
        return false;
    }

    private void SignalLocked()
    {
        var previous = changed;
        changed = NewSignal();
        previous.TrySetResult();
    }

    private void OnWaitTimer()
    {
        lock (gate)
        {
            if (!shuttingDown)
            {
                ArmWaitTimerLocked();
            }
        }
    }

    // Moves every delayed key that is due into the queue, then arms the timer for the next one.
    // Due keys are moved inline rather than through a zero-delay timer, so a timer callback never
    // runs inside this lock (fake time providers fire timers synchronously).
    private void ArmWaitTimerLocked()
    {
        var now = time.GetUtcNow();
        while (waiting.TryPeek(out var key, out var entry))
        {
            if (!waitingDue.TryGetValue(key, out var due) || due != entry.Due)
            {
                waiting.Dequeue(); // superseded by an earlier due time
                continue;
            }

            if (due > now)
            {
                var delay = due - now;
                if (waitTimer is null)
                {
                    waitTimer = time.CreateTimer(_ => OnWaitTimer(), null, delay, Timeout.InfiniteTimeSpan);
                }
                else
                {
                    waitTimer.Change(delay, Timeout.InfiniteTimeSpan);
                }

                return;
            }

            waiting.Dequeue();
            waitingDue.Remove(key);
            AddLocked(key, urgent: false);
        }
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
