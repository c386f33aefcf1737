using System.Diagnostics;
using Microsoft.Extensions.Logging;

namespace Skiff.Runtime;

/// <summary>Settings of a <see cref="Controller"/>.</summary>
public sealed record ControllerOptions
{
    /// <summary>Names the controller in logs, traces and metrics.</summary>
    public required string Name { get; init; }

    /// <summary>How many keys are reconciled at once (controller-runtime's default is 1).</summary>
    public int MaxConcurrentReconciles { get; init; } = 1;

    /// <summary>How long in-flight reconciles may run on after shutdown starts before they are cancelled.</summary>
    public TimeSpan ShutdownTimeout { get; init; } = TimeSpan.FromSeconds(30);
}

/// <summary>
/// Runs <see cref="ControllerOptions.MaxConcurrentReconciles"/> workers that take keys from a
/// <see cref="WorkQueue{TKey}"/> and reconcile them, like controller-runtime's controller.
/// </summary>
/// <remarks>
/// # Guarantees
/// - Success: the key's backoff is forgotten; <see cref="ReconcileResult.RequeueAfter"/> queues it
///   again after that delay, <see cref="ReconcileResult.Requeue"/> through the rate limiter.
/// - An exception: the key is retried through the rate limiter (5 ms doubling to 1000 s).
/// - A <see cref="TerminalException"/>: logged at error, backoff forgotten, no retry.
/// - Logging: the first failure of a streak is logged at error with its exception, and so is a
///   failure whose message differs from the previous one (that is news); a repeat of the same
///   failure is logged at debug only, so a broken object does not flood the log at every retry.
///   When the key succeeds again after failing, one information line says after how many retries.
/// - Every reconcile runs in a logging scope (Controller, Namespace, Name, ReconcileId) and in an
///   <see cref="Activity"/> of <see cref="RuntimeTelemetry.ActivitySource"/>.
/// - Shutdown (cancelling <see cref="RunAsync"/>'s token): no new work is taken, in-flight
///   reconciles finish; after <see cref="ControllerOptions.ShutdownTimeout"/> their token is
///   cancelled and RunAsync returns without waiting further.
///
/// # Caveats
/// The controller owns the queue's shutdown: it shuts the queue down when it stops.
/// </remarks>
public sealed class Controller(
    ControllerOptions options,
    WorkQueue<ObjectKey> queue,
    IReconciler reconciler,
    ILogger<Controller> logger,
    IReconcileMetrics? metrics = null,
    TimeProvider? time = null)
{
    private readonly IReconcileMetrics metrics = metrics ?? NoopReconcileMetrics.Instance;
    private readonly TimeProvider time = time ?? TimeProvider.System;
    private readonly Lock gate = new();
    private readonly Dictionary<ObjectKey, string> failing = [];
    private int activeWorkers;

    public string Name => options.Name;

    /// <summary>The queue the sources feed.</summary>
    public WorkQueue<ObjectKey> Queue => queue;

    /// <summary>Runs the workers until <paramref name="cancellationToken"/> is cancelled, then shuts down gracefully.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxConcurrentReconciles, 1);
        metrics.SetMaxConcurrentReconciles(options.MaxConcurrentReconciles);
        logger.LogInformation("Starting controller {Controller} with {Workers} workers", options.Name, options.MaxConcurrentReconciles);

        // Reconciles get their own token: stopping the controller must not abort them halfway,
        // only the shutdown timeout does.
        using var hardStop = new CancellationTokenSource();
        var workers = Enumerable.Range(0, options.MaxConcurrentReconciles)
            .Select(_ => Task.Run(() => WorkerAsync(hardStop.Token), CancellationToken.None))
            .ToArray();

        try
        {
            await Task.Delay(Timeout.InfiniteTimeSpan, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        logger.LogInformation("Stopping controller {Controller}: waiting for in-flight reconciles", options.Name);
        queue.ShutDown();
        var all = Task.WhenAll(workers);
        try
        {
            await all.WaitAsync(options.ShutdownTimeout, time, CancellationToken.None).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            logger.LogWarning("Controller {Controller}: reconciles still running after {Timeout}; cancelling them", options.Name, options.ShutdownTimeout);
            await hardStop.CancelAsync().ConfigureAwait(false);
        }

        logger.LogInformation("Stopped controller {Controller}", options.Name);
    }

    private async Task WorkerAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var (key, shutDown) = await queue.GetAsync(CancellationToken.None).ConfigureAwait(false);
            if (shutDown)
            {
                return;
            }

            try
            {
                metrics.SetActiveWorkers(Interlocked.Increment(ref activeWorkers));
                await ReconcileHandlerAsync(key, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                metrics.SetActiveWorkers(Interlocked.Decrement(ref activeWorkers));
                queue.Done(key);
            }
        }
    }

    // Internal so tests can drive one reconcile at a time without workers.
    internal async Task ReconcileHandlerAsync(ObjectKey key, CancellationToken cancellationToken)
    {
        var reconcileId = Convert.ToHexStringLower(Guid.NewGuid().ToByteArray(), 0, 4);
        using var scope = logger.BeginScope(new Dictionary<string, object?>
        {
            ["Controller"] = options.Name,
            ["Namespace"] = key.Namespace,
            ["Name"] = key.Name,
            ["ReconcileId"] = reconcileId,
        });
        using var activity = RuntimeTelemetry.ActivitySource.StartActivity("Reconcile " + options.Name);
        activity?.SetTag("skiff.controller", options.Name);
        activity?.SetTag("k8s.namespace.name", key.Namespace);
        activity?.SetTag("skiff.object.name", key.Name);
        activity?.SetTag("skiff.reconcile_id", reconcileId);

        var started = time.GetTimestamp();
        ReconcileResult result;
        try
        {
            result = await reconciler.ReconcileAsync(key, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Cut short by the shutdown timeout: not a failure of the object.
            activity?.SetStatus(ActivityStatusCode.Error, "cancelled at shutdown");
            return;
        }
        catch (Exception ex)
        {
            var elapsed = time.GetElapsedTime(started);
            metrics.ReconcileError();
            metrics.ObserveReconcile(ReconcileOutcome.Error, elapsed);
            activity?.AddException(ex);
            activity?.SetStatus(ActivityStatusCode.Error, ex.Message);
            if (ex is TerminalException)
            {
                metrics.TerminalReconcileError();
                ClearFailure(key);
                queue.Forget(key);
                logger.LogError(ex, "Reconcile of {Key} failed with a terminal error; not retrying until the object changes", key);
                return;
            }

            var retries = queue.NumRequeues(key);
            queue.AddRateLimited(key);
            if (IsNewFailure(key, ex))
            {
                logger.LogError(ex, "Reconcile of {Key} failed; retrying with backoff", key);
            }
            else
            {
                logger.LogDebug("Reconcile of {Key} failed again ({Retries} retries): {Error}", key, retries + 1, ex.Message);
            }

            return;
        }

        var duration = time.GetElapsedTime(started);
        if (ClearFailure(key))
        {
            logger.LogInformation("Reconcile of {Key} succeeded after {Retries} retries", key, queue.NumRequeues(key));
        }

        if (result.RequeueAfter > TimeSpan.Zero)
        {
            queue.Forget(key);
            queue.AddAfter(key, result.RequeueAfter);
            metrics.ObserveReconcile(ReconcileOutcome.RequeueAfter, duration);
        }
        else if (result.Requeue)
        {
            queue.AddRateLimited(key);
            metrics.ObserveReconcile(ReconcileOutcome.Requeue, duration);
        }
        else
        {
            queue.Forget(key);
            metrics.ObserveReconcile(ReconcileOutcome.Success, duration);
        }

        logger.LogDebug("Reconciled {Key} in {ElapsedMs:F1} ms", key, duration.TotalMilliseconds);
    }

    private bool IsNewFailure(ObjectKey key, Exception ex)
    {
        var signature = ex.GetType().FullName + ": " + ex.Message;
        lock (gate)
        {
            if (failing.TryGetValue(key, out var previous) && previous == signature)
            {
                return false;
            }

            failing[key] = signature;
            return true;
        }
    }

    private bool ClearFailure(ObjectKey key)
    {
        lock (gate)
        {
            return failing.Remove(key);
        }
    }
}
