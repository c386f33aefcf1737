namespace Skiff.Observability;

/// <summary>The outcome of one set of checks: which failed, in registration order.</summary>
/// <param name="Passed">The names of the checks that passed.</param>
/// <param name="Failed">The names of the checks that failed (threw, timed out or said no).</param>
public sealed record HealthReport(IReadOnlyList<string> Passed, IReadOnlyList<string> Failed)
{
    /// <summary>True when no check failed.</summary>
    public bool Healthy => Failed.Count == 0;
}

/// <summary>
/// Named liveness checks (<c>/healthz</c>: is the process able to make progress, else restart it)
/// and readiness checks (<c>/readyz</c>: should it get work or traffic yet), as controller-runtime's
/// <c>AddHealthzCheck</c>/<c>AddReadyzCheck</c>.
/// </summary>
/// <remarks>
/// # Guarantees
/// - A check that throws or takes longer than its timeout has failed.
/// - An async check registered with a cache duration runs at most once per duration, however
///   often the probes come, and concurrent probes share the run in flight.
///
/// # Caveats
/// Keep liveness checks cheap and local: a liveness check that depends on the Docker engine or
/// the API server would restart the operator for someone else's outage. Those belong in readiness.
/// </remarks>
/// <param name="time">The clock of the caches (a fake one in tests).</param>
/// <param name="checkTimeout">How long one check may take before it counts as failed; <see cref="DefaultCheckTimeout"/> when null.</param>
public sealed class HealthChecks(TimeProvider? time = null, TimeSpan? checkTimeout = null)
{
    /// <summary>How long one check may take by default; give the kubelet's probes a longer <c>timeoutSeconds</c> so the answer names the check.</summary>
    public static readonly TimeSpan DefaultCheckTimeout = TimeSpan.FromSeconds(3);

    private readonly TimeProvider time = time ?? TimeProvider.System;
    private readonly TimeSpan checkTimeout = checkTimeout ?? DefaultCheckTimeout;
    private readonly Lock gate = new();
    private readonly List<(string Name, Check Check)> liveness = [];
    private readonly List<(string Name, Check Check)> readiness = [];

    /// <summary>Adds a liveness check; <c>/healthz</c> fails while it returns false.</summary>
    /// <param name="name">Its name in the probe's output (for example <c>workers</c>).</param>
    /// <param name="check">True when healthy.</param>
    public void AddLiveness(string name, Func<bool> check) => Add(liveness, name, new Check(_ => Task.FromResult(check()), TimeSpan.Zero, this.time, this.checkTimeout));

    /// <summary>Adds a readiness check; <c>/readyz</c> fails while it returns false.</summary>
    /// <param name="name">Its name in the probe's output (for example <c>cache-synced</c>).</param>
    /// <param name="check">True when ready.</param>
    public void AddReadiness(string name, Func<bool> check) => Add(readiness, name, new Check(_ => Task.FromResult(check()), TimeSpan.Zero, this.time, this.checkTimeout));

    /// <summary>Adds an async readiness check whose result is reused for <paramref name="cacheFor"/> (for example "the Docker engine answers", every 2 s).</summary>
    /// <param name="name">Its name in the probe's output.</param>
    /// <param name="check">True when ready; its token is cancelled after the check timeout.</param>
    /// <param name="cacheFor">How long a result stands; zero to run it on every probe.</param>
    public void AddReadiness(string name, Func<CancellationToken, Task<bool>> check, TimeSpan cacheFor) =>
        Add(readiness, name, new Check(check, cacheFor, this.time, this.checkTimeout));

    /// <summary>Runs the liveness checks.</summary>
    /// <param name="cancellationToken">Cancels the run (the probe went away).</param>
    public Task<HealthReport> CheckLivenessAsync(CancellationToken cancellationToken) => RunAsync(liveness, cancellationToken);

    /// <summary>Runs the readiness checks.</summary>
    /// <param name="cancellationToken">Cancels the run (the probe went away).</param>
    public Task<HealthReport> CheckReadinessAsync(CancellationToken cancellationToken) => RunAsync(readiness, cancellationToken);

    private void Add(List<(string Name, Check Check)> list, string name, Check check)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        lock (gate)
        {
            if (list.Any(c => c.Name == name))
            {
                throw new ArgumentException($"a health check named \"{name}\" is already registered", nameof(name));
            }

            list.Add((name, check));
        }
    }

    private async Task<HealthReport> RunAsync(List<(string Name, Check Check)> list, CancellationToken cancellationToken)
    {
        (string Name, Check Check)[] checks;
        lock (gate)
        {
            checks = [.. list];
        }

        var results = await Task.WhenAll(checks.Select(c => c.Check.RunAsync(cancellationToken))).ConfigureAwait(false);
        var passed = new List<string>();
        var failed = new List<string>();
        for (var i = 0; i < checks.Length; i++)
        {
            (results[i] ? passed : failed).Add(checks[i].Name);
        }

        return new HealthReport(passed, failed);
    }

    private sealed class Check(Func<CancellationToken, Task<bool>> probe, TimeSpan cacheFor, TimeProvider time, TimeSpan timeout)
    {
        private readonly Lock gate = new();
        private Task<bool>? inFlight;
        private long ranAt;

        public Task<bool> RunAsync(CancellationToken cancellationToken)
        {
            if (cacheFor <= TimeSpan.Zero)
            {
                return GuardedAsync(cancellationToken);
            }

            lock (gate)
            {
                // A cached run is not the caller's: it must not be cancelled by one probe going away.
                if (inFlight is null || (inFlight.IsCompleted && time.GetElapsedTime(ranAt) >= cacheFor))
                {
                    ranAt = time.GetTimestamp();
                    inFlight = GuardedAsync(CancellationToken.None);
                }

                return inFlight.WaitAsync(cancellationToken);
            }
        }

        private async Task<bool> GuardedAsync(CancellationToken cancellationToken)
        {
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            cts.CancelAfter(timeout);
            try
            {
                return await probe(cts.Token).WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception) when (!cancellationToken.IsCancellationRequested)
            {
                return false;
            }
        }
    }
}
