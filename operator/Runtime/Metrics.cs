namespace Skiff.Runtime;

/// <summary>
/// Hooks a <see cref="WorkQueue{TKey}"/> reports through. One instance serves one queue, so an
/// implementation binds its labels (name, controller) when it is created. The names
/// controller-runtime exports, which an implementation should keep: <c>workqueue_adds_total</c>,
/// <c>workqueue_depth</c>, <c>workqueue_queue_duration_seconds</c>,
/// <c>workqueue_work_duration_seconds</c>, <c>workqueue_unfinished_work_seconds</c>,
/// <c>workqueue_longest_running_processor_seconds</c>, <c>workqueue_retries_total</c>.
/// </summary>
/// <remarks>
/// # Caveats
/// Called under the queue's lock: implementations must be quick and must not call back into the queue.
/// </remarks>
public interface IWorkQueueMetrics
{
    /// <summary>A key was added (counted even when it was already queued).</summary>
    void Added();

    /// <summary>The number of keys waiting to be handed out changed.</summary>
    void SetDepth(int depth);

    /// <summary>How long a key waited in the queue before a worker took it.</summary>
    void ObserveQueueDuration(TimeSpan duration);

    /// <summary>How long a worker held a key (from Get to Done).</summary>
    void ObserveWorkDuration(TimeSpan duration);

    /// <summary>
    /// Work in progress that has not called Done: the sum of its running time, and the longest.
    /// Reported periodically, so a stuck reconcile shows up before it ends.
    /// </summary>
    void SetUnfinishedWork(TimeSpan unfinished, TimeSpan longestRunning);

    /// <summary>A key was added through the rate limiter (a retry).</summary>
    void Retried();
}

/// <summary>The metrics a queue reports when nobody listens.</summary>
public sealed class NoopWorkQueueMetrics : IWorkQueueMetrics
{
    public static readonly NoopWorkQueueMetrics Instance = new();

    public void Added()
    {
    }

    public void SetDepth(int depth)
    {
    }

    public void ObserveQueueDuration(TimeSpan duration)
    {
    }

    public void ObserveWorkDuration(TimeSpan duration)
    {
    }

    public void SetUnfinishedWork(TimeSpan unfinished, TimeSpan longestRunning)
    {
    }

    public void Retried()
    {
    }
}

/// <summary>How a reconcile ended, as controller-runtime's <c>result</c> label spells it.</summary>
public enum ReconcileOutcome
{
    /// <summary><c>success</c>: done, no requeue asked.</summary>
    Success,

    /// <summary><c>error</c>: threw (terminal errors too).</summary>
    Error,

    /// <summary><c>requeue</c>: asked to be retried through the rate limiter.</summary>
    Requeue,

    /// <summary><c>requeue_after</c>: asked to come back after a delay.</summary>
    RequeueAfter,
}

/// <summary>
/// Hooks a <see cref="Controller"/> reports through; one instance per controller. The names
/// controller-runtime exports: <c>controller_runtime_reconcile_total{result}</c>,
/// <c>controller_runtime_reconcile_errors_total</c>,
/// <c>controller_runtime_terminal_reconcile_errors_total</c>,
/// <c>controller_runtime_reconcile_time_seconds</c>, <c>controller_runtime_active_workers</c>,
/// <c>controller_runtime_max_concurrent_reconciles</c>.
/// </summary>
public interface IReconcileMetrics
{
    /// <summary>A reconcile ended: count it by outcome and observe its duration.</summary>
    void ObserveReconcile(ReconcileOutcome outcome, TimeSpan duration);

    /// <summary>A reconcile threw (terminal or not).</summary>
    void ReconcileError();

    /// <summary>A reconcile threw a <see cref="TerminalException"/>.</summary>
    void TerminalReconcileError();

    /// <summary>The number of workers busy reconciling changed.</summary>
    void SetActiveWorkers(int active);

    /// <summary>The configured worker count, set once at start.</summary>
    void SetMaxConcurrentReconciles(int max);
}

/// <summary>The metrics a controller reports when nobody listens.</summary>
public sealed class NoopReconcileMetrics : IReconcileMetrics
{
    public static readonly NoopReconcileMetrics Instance = new();

    public void ObserveReconcile(ReconcileOutcome outcome, TimeSpan duration)
    {
    }

    public void ReconcileError()
    {
    }

    public void TerminalReconcileError()
    {
    }

    public void SetActiveWorkers(int active)
    {
    }

    public void SetMaxConcurrentReconciles(int max)
    {
    }
}
