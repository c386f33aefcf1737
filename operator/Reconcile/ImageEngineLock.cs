using Skiff.Validation;

namespace Skiff.Reconcile;

/// <summary>
/// The per-node lock between rollouts and image GC: an async reader/writer lock whose readers also
/// say which images they are about to pull or start.
/// </summary>
/// <remarks>
/// <para><b>Guarantees.</b> A rollout holds a <see cref="EnterUseAsync">use lease</see> (shared)
/// from before it pulls an image until its containers are created and started; GC takes the
/// <see cref="EnterRemovalAsync">removal lock</see> around each single image deletion and nothing
/// else. Removals exclude every lease but not each other (a pass without disk pressure removes a few
/// images at a time). So GC never deletes while Skiff pulls or starts, and a rollout waits at most
/// for the deletions under way, never for a queued one. While a lease is held, its images are in <see cref="InUseNow"/>, so a plan
/// made meanwhile protects them (reason BeingPulledOrStarted); a deletion planned before the lease
/// runs only after it ends, when the new containers exist and the engine refuses (409).</para>
/// <para><b>Caveats.</b> Leases are preferred: a steady stream of overlapping rollouts delays GC
/// (it waits, it is never wrong). Process-local: <c>skiff gc</c> and <c>skiff run</c> are kept
/// apart by the state folder's lock instead.</para>
/// </remarks>
public sealed class ImageEngineLock
{
    private readonly Lock gate = new();
    private readonly Dictionary<string, int> inUse = new(StringComparer.Ordinal);
    private readonly List<Waiter> waitingLeases = [];
    private readonly LinkedList<Waiter> waitingRemovals = [];
    private int leases;
    private int removals;

    /// <summary>Image ids and references held by use leases right now (a snapshot).</summary>
    public IReadOnlySet<string> InUseNow()
    {
        lock (gate)
        {
            return inUse.Keys.ToHashSet(StringComparer.Ordinal);
        }
    }

    /// <summary>How many use leases are held (tests and diagnostics).</summary>
    public int Leases
    {
        get
        {
            lock (gate)
            {
                return leases;
            }
        }
    }

    /// <summary>
    /// A shared lease for pulling and starting <paramref name="images"/> (ids or references); waits
    /// only while a deletion is under way. Dispose it once the containers exist: from then on the
    /// engine itself refuses to remove their images.
    /// </summary>
    public async Task<UseLease> EnterUseAsync(IEnumerable<string> images, CancellationToken ct)
    {
        Waiter? waiter = null;
        lock (gate)
        {
            if (removals == 0)
            {
                leases++;
            }
            else
            {
                waiter = new Waiter();
                waitingLeases.Add(waiter);
            }
        }

        if (waiter is not null)
        {
            await WaitAsync(waiter, () => waitingLeases.Remove(waiter), ct);
        }

        var lease = new UseLease(this);
        foreach (var image in images)
        {
            lease.Add(image);
        }

        return lease;
    }

    /// <summary>
    /// The lock for one image deletion: waits until no use lease is held or waiting; shared with other deletions.
    /// </summary>
    public async Task<IDisposable> EnterRemovalAsync(CancellationToken ct)
    {
        Waiter? waiter = null;
        lock (gate)
        {
            if (leases == 0 && waitingLeases.Count == 0)
            {
                removals++;
            }
            else
            {
                waiter = new Waiter();
                waitingRemovals.AddLast(waiter);
            }
        }

        if (waiter is not null)
        {
            await WaitAsync(waiter, () => waitingRemovals.Remove(waiter), ct);
        }

        return new Removal(this);
    }

    private async Task WaitAsync(Waiter waiter, Func<bool> dequeue, CancellationToken ct)
    {
        using (ct.Register(() =>
        {
            lock (gate)
            {
                // Only a waiter still queued can be cancelled; a granted one owns the lock already.
                if (dequeue())
                {
                    waiter.Tcs.TrySetCanceled(ct);
                }
            }
        }))
        {
            await waiter.Tcs.Task.ConfigureAwait(false);
        }
    }

    private void ExitUse(IEnumerable<string> keys)
    {
        lock (gate)
        {
            foreach (var key in keys)
            {
                if (inUse.TryGetValue(key, out var n))
                {
                    if (n <= 1)
                    {
                        inUse.Remove(key);
                    }
                    else
                    {
                        inUse[key] = n - 1;
                    }
                }
            }

            leases--;
            if (leases == 0)
            {
                GrantWaitingRemovals();
            }
        }
    }

    private void ExitRemoval()
    {
        lock (gate)
        {
            removals--;
            if (removals > 0)
            {
                return;
            }

            if (waitingLeases.Count > 0)
            {
                leases += waitingLeases.Count;
                foreach (var w in waitingLeases)
                {
                    w.Tcs.TrySetResult();
                }

                waitingLeases.Clear();
            }
            else
            {
                GrantWaitingRemovals();
            }
        }
    }

    /// <summary>Under <see cref="gate"/>, with no lease held or waiting: every queued deletion may go.</summary>
    private void GrantWaitingRemovals()
    {
        removals += waitingRemovals.Count;
        foreach (var w in waitingRemovals)
        {
            w.Tcs.TrySetResult();
        }

        waitingRemovals.Clear();
    }

    private string AddInUse(string image)
    {
        var key = Key(image);
        lock (gate)
        {
            inUse[key] = inUse.GetValueOrDefault(key) + 1;
        }

        return key;
    }

    private static string Key(string image) =>
        ImageReference.LooksLikeId(image) ? ImageReference.NormalizeId(image) : ImageReference.Normalize(image);

    /// <summary>A held use lease; <see cref="Add"/> registers more images (the id resolved after a pull).</summary>
    public sealed class UseLease : IDisposable
    {
        private readonly ImageEngineLock owner;
        private readonly List<string> keys = [];
        private int disposed;

        internal UseLease(ImageEngineLock owner) => this.owner = owner;

        public void Add(string image)
        {
            if (!string.IsNullOrWhiteSpace(image) && Volatile.Read(ref disposed) == 0)
            {
                lock (keys)
                {
                    keys.Add(owner.AddInUse(image));
                }
            }
        }

        public void Dispose()
        {
            if (Interlocked.Exchange(ref disposed, 1) == 0)
            {
                lock (keys)
                {
                    owner.ExitUse(keys);
                }
            }
        }
    }

    private sealed class Removal(ImageEngineLock owner) : IDisposable
    {
        private int disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref disposed, 1) == 0)
            {
                owner.ExitRemoval();
            }
        }
    }

    private sealed class Waiter
    {
        public TaskCompletionSource Tcs { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
