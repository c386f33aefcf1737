using Microsoft.Extensions.Logging;
using Skiff.Sources.Kubernetes;

namespace Skiff.Hosting;

/// <summary>One long-running part of the operator: an informer, a controller, the folder watch, image GC.</summary>
/// <param name="Name">For the log.</param>
/// <param name="RunAsync">Runs until its token ends.</param>
public sealed record Runnable(string Name, Func<CancellationToken, Task> RunAsync);

/// <summary>
/// Runs the runnables of one operator process, as controller-runtime's manager does: all of them together, under the
/// node's lease when there is one (nothing runs before it is held, everything stops the moment it is given up), until
/// shutdown; the folder source and the Kubernetes source, long-running or <c>--once</c>, go through it alike.
/// </summary>
/// <remarks>
/// # Guarantees
/// - With a lease, no runnable starts before it is held, and the runnables' token is cancelled as soon as it is given
///   up (another instance may take the node when it expires): the exit code then says so (1).
/// - A runnable that fails stops the others (the process exits for its supervisor to restart it).
/// </remarks>
public sealed class OperatorHost(OperatorServices services, ILogger logger)
{
    /// <summary>
    /// Runs <paramref name="runnables"/> until <paramref name="ct"/> ends (or one of them fails), under
    /// <paramref name="lease"/> when given; returns the exit code. <paramref name="lost"/> is cancelled when the lease
    /// is given up, for the reconciles in flight to stop at once.
    /// </summary>
    public async Task<int> RunAsync(IReadOnlyList<Runnable> runnables, LeaseGate? lease, CancellationTokenSource lost, TextWriter error, CancellationToken ct)
    {
        return lease is null
            ? await RunAllAsync(runnables, ct)
            : await RunLeadingAsync(lease, token => RunAllAsync(runnables, token), lost, error, ct);
    }

    /// <summary>How long the work is given to stop once the lease is lost, before the process exits anyway.</summary>
    public static readonly TimeSpan StopAfterLostLease = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Runs <paramref name="work"/> (the runnables, or <c>--once</c>'s run) under the lease: takes it, renews it while the work
    /// runs, and stops the work at once when it is given up. <c>--once</c> does not wait behind a running instance of the node
    /// (it would work beside it as soon as that one is stopped for an upgrade) and gives the lease back when it is done.
    /// </summary>
    public async Task<int> RunLeadingAsync(LeaseGate gate, Func<CancellationToken, Task<int>> work, CancellationTokenSource lost, TextWriter error, CancellationToken ct)
    {
        var lease = gate.Elector;
        services.Metrics.SetLeader(gate.MetricName, false);
        logger.LogInformation("Waiting for lease {Lease} as {Identity}", lease.Name, lease.Identity);
        var acquired = await lease.AcquireAsync(yieldToLiveHolder: gate.Once, ct);
        if (!acquired.Acquired)
        {
            error.WriteLine($"skiff run --once: lease {lease.Name} is held by {acquired.Holder}, a running instance serving node {gate.Node}; " +
                "run --once only where no instance serves the node (that one reconciles the resources already), or stop it first");
            return ExitCodes.UsageOrIo;
        }

        services.Metrics.SetLeader(gate.MetricName, true);
        logger.LogInformation("Acquired lease {Lease}; starting to reconcile", lease.Name);
        using var working = CancellationTokenSource.CreateLinkedTokenSource(ct, lost.Token);
        // Renewed until the work is over, shutdown included: in-flight reconciles may finish after ct ends.
        using var holding = new CancellationTokenSource();
        var renewing = lease.HoldAsync(holding.Token);
        var running = work(working.Token);
        if (await Task.WhenAny(running, renewing) == renewing && await renewing is { } reason)
        {
            // Stop at once: another instance may take the node as soon as the lease expires.
            services.Metrics.SetLeader(gate.MetricName, false);
            await lost.CancelAsync();

            // Bounded: work that does not stop at once must not keep a process that lost its lease alive (the supervisor
            // restarts it; the next holder's work does not wait for this one's).
            var stopped = await Task.WhenAny(running, Task.Delay(StopAfterLostLease, CancellationToken.None)) == running;
            logger.LogError("Lost lease {Lease}: {Reason}; exiting so that the supervisor restarts this one", lease.Name, reason);
            if (!stopped)
            {
                logger.LogWarning("Work still running {Seconds} s after the lease was lost is abandoned: {Runnables}",
                    StopAfterLostLease.TotalSeconds, string.Join(", ", Unfinished.Keys.Order(StringComparer.Ordinal)));
            }

            return ExitCodes.NotOk;
        }

        try
        {
            return await running;
        }
        finally
        {
            await holding.CancelAsync();
            await renewing;
            services.Metrics.SetLeader(gate.MetricName, false);
            if (gate.Once)
            {
                // Its work is over: the next instance of the node need not wait for the lease to expire.
                using var release = new CancellationTokenSource(gate.RenewDeadline);
                await lease.ReleaseAsync(release.Token);
            }
        }
    }

    private async Task<int> RunAllAsync(IReadOnlyList<Runnable> runnables, CancellationToken ct)
    {
        using var stopping = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var running = runnables.Select(r => RunOneAsync(r, stopping)).ToList();

        // Beside the work, for as long as it runs: the heap a burst left committed goes back to the OS.
        using var trimming = CancellationTokenSource.CreateLinkedTokenSource(stopping.Token);
        var trim = Task.Run(() => new MemoryTrim(services.Logging.CreateLogger<MemoryTrim>()).RunAsync(trimming.Token), CancellationToken.None);
        await Task.WhenAll(running);
        await trimming.CancelAsync();
        await trim;
        var failed = running.Any(t => t.Result);
        return failed && !ct.IsCancellationRequested ? ExitCodes.NotOk : ExitCodes.Ok;
    }

    /// <summary>The runnables started and not yet returned, by name: what a stop that does not end is waiting for.</summary>
    private System.Collections.Concurrent.ConcurrentDictionary<string, bool> Unfinished { get; } = new(StringComparer.Ordinal);

    /// <summary>Runs one; true when it failed (and the others were asked to stop).</summary>
    private async Task<bool> RunOneAsync(Runnable runnable, CancellationTokenSource stopping)
    {
        Unfinished[runnable.Name] = true;
        try
        {
            await Task.Run(() => runnable.RunAsync(stopping.Token), CancellationToken.None);
            return false;
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            return false;
        }
        catch (Exception e)
        {
            logger.LogError(e, "{Runnable} failed: {Message}; stopping the operator", runnable.Name, e.Message);
            await stopping.CancelAsync();
            return true;
        }
        finally
        {
            Unfinished.TryRemove(runnable.Name, out _);
        }
    }
}

/// <summary>The node's lease, as the host holds it.</summary>
/// <param name="Elector">Takes, renews and releases the Lease.</param>
/// <param name="Node">The node it is for.</param>
/// <param name="Once">For <c>--once</c>: never wait behind a live holder; give the lease back at the end.</param>
/// <param name="RenewDeadline">How long giving the lease back may take.</param>
public sealed record LeaseGate(LeaseElector Elector, string Node, bool Once, TimeSpan RenewDeadline)
{
    /// <summary>The <c>name</c> label of <c>leader_election_master_status</c>.</summary>
    public string MetricName => $"skiff-{Node}";
}
