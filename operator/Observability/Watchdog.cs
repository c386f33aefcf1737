using Skiff.Runtime;

namespace Skiff.Observability;

/// <summary>
/// Tells a wedged process from an idle one, for the liveness probe. A component (the workers of a
/// controller, a watch) is registered with the silence it is allowed; while it works it holds a
/// <see cref="WatchdogClaim"/> ("I am busy"); progress is a <see cref="WatchdogClaim.Beat"/> or
/// <see cref="Beat"/>. The process is unhealthy when some claim has gone longer than its
/// component's allowed silence without progress.
/// </summary>
/// <remarks>
/// # How components use it
/// - **Queue workers**: wrap the reconciler in <see cref="WatchdogReconciler"/>: each reconcile
///   holds a claim, and its end is the beat. An idle worker holds no claim, so waiting an hour
///   for work is healthy; one stuck in a reconcile for longer than the limit (10 min by default,
///   well above the rollout deadlines) is not, and the kubelet restarts the pod.
/// - **Watches**: hold one claim for the life of the watch loop and call <see cref="Beat"/> (or the
///   claim's Beat) on every event, bookmark and relist. Allow more silence than the watch's
///   timeout, since a quiet cluster sends nothing until the watch is renewed.
///
/// # Guarantees
/// - An idle component (no open claim) is always healthy, however long it has been silent.
/// - Each claim has its own clock: two workers of one controller do not cover for each other.
///   <see cref="Beat"/> counts as progress for every open claim of the component, so give
///   concurrent workers a claim each and let them beat their own.
///
/// # Caveats
/// Tests wedge a worker by opening a claim (or a reconcile that never returns) and moving the
/// clock given to the constructor past the allowed silence.
/// </remarks>
/// <param name="time">The clock (a fake one in tests).</param>
public sealed class Watchdog(TimeProvider? time = null)
{
    /// <summary>The allowed silence of a queue worker inside one reconcile.</summary>
    public static readonly TimeSpan DefaultReconcileLimit = TimeSpan.FromMinutes(10);

    private readonly TimeProvider time = time ?? TimeProvider.System;
    private readonly Lock gate = new();
    private readonly Dictionary<string, Component> components = new(StringComparer.Ordinal);

    /// <summary>True unless some component is stuck (see <see cref="Stuck"/>).</summary>
    public bool Healthy => Stuck().Count == 0;

    /// <summary>Registers a component, or changes its allowed silence.</summary>
    /// <param name="component">Its name (for example <c>controller/appdeployment</c>).</param>
    /// <param name="allowedSilence">How long a claim of it may go without progress.</param>
    public void Register(string component, TimeSpan allowedSilence)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(component);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(allowedSilence, TimeSpan.Zero);
        lock (gate)
        {
            if (components.TryGetValue(component, out var existing))
            {
                existing.AllowedSilence = allowedSilence;
            }
            else
            {
                components[component] = new Component(allowedSilence);
            }
        }
    }

    /// <summary>The component made progress: every open claim of it starts its silence anew.</summary>
    /// <param name="component">A registered component; unknown names are ignored.</param>
    public void Beat(string component)
    {
        var now = time.GetTimestamp();
        lock (gate)
        {
            if (components.TryGetValue(component, out var c))
            {
                foreach (var claim in c.Claims)
                {
                    claim.LastProgress = now;
                }
            }
        }
    }

    /// <summary>Claims that the component is busy until the claim is disposed.</summary>
    /// <param name="component">A registered component.</param>
    /// <exception cref="InvalidOperationException">The component was not registered.</exception>
    public WatchdogClaim Busy(string component)
    {
        lock (gate)
        {
            if (!components.TryGetValue(component, out var c))
            {
                throw new InvalidOperationException($"watchdog component \"{component}\" is not registered");
            }

            var claim = new WatchdogClaim(this, c, time.GetTimestamp());
            c.Claims.Add(claim);
            return claim;
        }
    }

    /// <summary>The components with a claim silent for longer than allowed, by name.</summary>
    public IReadOnlyList<string> Stuck()
    {
        lock (gate)
        {
            return components
                .Where(c => c.Value.Claims.Any(claim => time.GetElapsedTime(claim.LastProgress) > c.Value.AllowedSilence))
                .Select(c => c.Key)
                .Order(StringComparer.Ordinal)
                .ToList();
        }
    }

    internal void Progress(WatchdogClaim claim)
    {
        var now = time.GetTimestamp();
        lock (gate)
        {
            claim.LastProgress = now;
        }
    }

    internal void Release(WatchdogClaim claim, Component component)
    {
        lock (gate)
        {
            component.Claims.Remove(claim);
        }
    }

    internal sealed class Component(TimeSpan allowedSilence)
    {
        public TimeSpan AllowedSilence { get; set; } = allowedSilence;

        public HashSet<WatchdogClaim> Claims { get; } = [];
    }
}

/// <summary>One "I am busy" of a <see cref="Watchdog"/> component; dispose it when the work ends.</summary>
public sealed class WatchdogClaim : IDisposable
{
    private readonly Watchdog owner;
    private readonly Watchdog.Component component;

    internal WatchdogClaim(Watchdog owner, Watchdog.Component component, long started)
    {
        this.owner = owner;
        this.component = component;
        LastProgress = started;
    }

    internal long LastProgress { get; set; }

    /// <summary>This claim's work made progress: its silence starts anew.</summary>
    public void Beat() => owner.Progress(this);

    /// <summary>The work ended: the component no longer claims to be busy for it.</summary>
    public void Dispose() => owner.Release(this, component);
}

/// <summary>
/// Holds a <see cref="Watchdog"/> claim around every reconcile of the wrapped reconciler, so a
/// worker stuck in one reconcile turns <c>/healthz</c> red while an idle one stays green.
/// </summary>
/// <param name="inner">The reconciler doing the work.</param>
/// <param name="watchdog">The watchdog to report to.</param>
/// <param name="component">The component, registered on <paramref name="watchdog"/> by the caller (for example <c>controller/appdeployment</c>).</param>
public sealed class WatchdogReconciler(IReconciler inner, Watchdog watchdog, string component) : IReconciler
{
    /// <inheritdoc/>
    public async Task<ReconcileResult> ReconcileAsync(ObjectKey key, CancellationToken cancellationToken)
    {
        using var claim = watchdog.Busy(component);
        return await inner.ReconcileAsync(key, cancellationToken).ConfigureAwait(false);
    }
}
