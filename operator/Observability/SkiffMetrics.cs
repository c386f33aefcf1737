using System.Text.RegularExpressions;
using Prometheus;
using Skiff.Api;
using Skiff.Runtime;

namespace Skiff.Observability;

/// <summary>How an image GC run ended, as the <c>result</c> label of <c>skiff_image_gc_runs_total</c> spells it.</summary>
public enum ImageGcResult
{
    /// <summary><c>success</c>: the run finished (usage under the low threshold, or no pressure).</summary>
    Success,

    /// <summary><c>incomplete</c>: the run finished but usage stays above the high threshold.</summary>
    Incomplete,

    /// <summary><c>error</c>: the run failed (engine unreachable, for example).</summary>
    Error,

    /// <summary><c>dry_run</c>: nothing was removed on purpose.</summary>
    DryRun,
}

/// <summary>
/// Every metric Skiff exports, on a <see cref="CollectorRegistry"/> of the caller's (never the
/// static default, so tests and several instances in one process do not collide). The runtime's
/// metrics keep controller-runtime's names, types, labels and buckets so its dashboards and
/// alerts work unchanged; Skiff's own start with <c>skiff_</c>. docs/OBSERVABILITY.md lists them.
/// </summary>
/// <remarks>
/// # Guarantees
/// - Label values are bounded: controller and queue names come from code; <c>namespace</c>/<c>name</c>
///   series of a resource go away with <see cref="ForgetAppDeployment"/>; reasons, phases, results
///   and Docker operations outside their fixed sets are reported as <c>Other</c>/<c>other</c>.
/// - Thread-safe; every method is cheap enough to call under a lock.
/// </remarks>
public sealed partial class SkiffMetrics
{
    /// <summary>The rollback reasons reported as themselves; any other is <c>Other</c>.</summary>
    public static readonly IReadOnlySet<string> RollbackReasons = new HashSet<string>(StringComparer.Ordinal)
    {
        "RolloutFailed", "MigrationFailed", "HealthCheckFailed", "ImageNotFound", "ContainerExited", "ProgressDeadlineExceeded",
    };

    /// <summary>The phases <c>skiff_appdeployment_phase</c> reports, one series each.</summary>
    public static readonly IReadOnlyList<string> AppDeploymentPhases =
        [Phases.Pending, Phases.Progressing, Phases.Ready, Phases.Degraded, Phases.Failed];

    // controller-runtime's buckets (pkg/internal/controller/metrics).
    private static readonly double[] ReconcileBuckets =
    [
        0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0,
        1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 60,
    ];

    // client-go's and controller-runtime's ExponentialBuckets(10e-9, 10, 12): 1e-8 s .. 1000 s.
    private static readonly double[] WorkQueueBuckets = Histogram.ExponentialBuckets(10e-9, 10, 12);

    // A rollout pulls, migrates and waits for health: seconds to many minutes.
    private static readonly double[] RolloutBuckets = [1, 2.5, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600, 900, 1800];

    // A backup: a small database in seconds, a large one in many minutes.
    private static readonly double[] BackupBuckets = [1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200];

    // A pull: a layer check in well under a second, a fresh database image in tens of seconds, a slow link in minutes.
    private static readonly double[] PullBuckets = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600];

    private readonly Counter reconcileTotal;
    private readonly Counter reconcileErrors;
    private readonly Counter terminalReconcileErrors;
    private readonly Histogram reconcileTime;
    private readonly Gauge maxConcurrentReconciles;
    private readonly Gauge activeWorkers;

    private readonly Gauge queueDepth;
    private readonly Counter queueAdds;
    private readonly Histogram queueDuration;
    private readonly Histogram workDuration;
    private readonly Gauge unfinishedWork;
    private readonly Gauge longestRunning;
    private readonly Counter queueRetries;

    private readonly Gauge leaderStatus;
    private readonly Counter restRequests;

    private readonly Gauge appReady;
    private readonly Gauge appPhase;
    private readonly Counter rollouts;
    private readonly Counter rollbacks;
    private readonly Histogram rolloutDuration;
    private readonly Counter gcRuns;
    private readonly Counter gcImagesRemoved;
    private readonly Counter gcBytesReclaimed;
    private readonly Gauge gcProtectedImages;
    private readonly Gauge diskUsage;
    private readonly Counter dockerRequests;
    private readonly Histogram pullDuration;
    private readonly Gauge backupLastSuccess;
    private readonly Histogram backupDuration;
    private readonly Gauge backupBytes;
    private readonly Gauge backupInterval;
    private readonly Counter backups;

    /// <summary>Creates every metric on <paramref name="registry"/>.</summary>
    /// <param name="registry">Where the metrics live; <c>/metrics</c> serves this registry.</param>
    public SkiffMetrics(CollectorRegistry registry)
    {
        ArgumentNullException.ThrowIfNull(registry);
        Registry = registry;
        var f = Metrics.WithCustomRegistry(registry);

        reconcileTotal = f.CreateCounter("controller_runtime_reconcile_total", "Total number of reconciliations per controller", ["controller", "result"]);
        reconcileErrors = f.CreateCounter("controller_runtime_reconcile_errors_total", "Total number of reconciliation errors per controller", ["controller"]);
        terminalReconcileErrors = f.CreateCounter("controller_runtime_terminal_reconcile_errors_total",
            "Total number of terminal reconciliation errors per controller", ["controller"]);
        reconcileTime = f.CreateHistogram("controller_runtime_reconcile_time_seconds", "Length of time per reconciliation per controller",
            new HistogramConfiguration { LabelNames = ["controller"], Buckets = ReconcileBuckets });
        maxConcurrentReconciles = f.CreateGauge("controller_runtime_max_concurrent_reconciles", "Maximum number of concurrent reconciles per controller", ["controller"]);
        activeWorkers = f.CreateGauge("controller_runtime_active_workers", "Number of currently used workers per controller", ["controller"]);

        // controller-runtime added "priority" to the depth gauge; it is empty for queues without priorities, like ours.
        queueDepth = f.CreateGauge("workqueue_depth", "Current depth of workqueue by workqueue and priority", ["name", "controller", "priority"]);
        queueAdds = f.CreateCounter("workqueue_adds_total", "Total number of adds handled by workqueue", ["name", "controller"]);
        queueDuration = f.CreateHistogram("workqueue_queue_duration_seconds", "How long in seconds an item stays in workqueue before being requested",
            new HistogramConfiguration { LabelNames = ["name", "controller"], Buckets = WorkQueueBuckets });
        workDuration = f.CreateHistogram("workqueue_work_duration_seconds", "How long in seconds processing an item from workqueue takes.",
            new HistogramConfiguration { LabelNames = ["name", "controller"], Buckets = WorkQueueBuckets });
        unfinishedWork = f.CreateGauge("workqueue_unfinished_work_seconds",
            "How many seconds of work has been done that is in progress and hasn't been observed by work_duration. " +
            "Large values indicate stuck threads. One can deduce the number of stuck threads by observing the rate at which this increases.",
            ["name", "controller"]);
        longestRunning = f.CreateGauge("workqueue_longest_running_processor_seconds",
            "How many seconds has the longest running processor for workqueue been running.", ["name", "controller"]);
        queueRetries = f.CreateCounter("workqueue_retries_total", "Total number of retries handled by workqueue", ["name", "controller"]);

        leaderStatus = f.CreateGauge("leader_election_master_status",
            "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. " +
            "'name' is the string used to identify the lease. Please make sure to group by name.", ["name"]);
        restRequests = f.CreateCounter("rest_client_requests_total", "Number of HTTP requests, partitioned by status code, method, and host.",
            ["code", "method", "host"]);

        appReady = f.CreateGauge("skiff_appdeployment_ready", "Whether the AppDeployment's Ready condition is True (1) or not (0).", ["namespace", "name"]);
        appPhase = f.CreateGauge("skiff_appdeployment_phase", "The AppDeployment's phase: 1 for the current phase, 0 for the others.",
            ["namespace", "name", "phase"]);
        rollouts = f.CreateCounter("skiff_rollouts_total", "Rollouts that ended, by result (succeeded, failed, rolled_back).", ["result"]);
        rollbacks = f.CreateCounter("skiff_rollbacks_total", "Automatic rollbacks to the last good revision, by the failure's reason.", ["reason"]);
        rolloutDuration = f.CreateHistogram("skiff_rollout_duration_seconds", "Time from the start of a rollout until the new revision is live.",
            new HistogramConfiguration { Buckets = RolloutBuckets });
        gcRuns = f.CreateCounter("skiff_image_gc_runs_total", "Image GC runs, by result (success, incomplete, error, dry_run).", ["result"]);
        gcImagesRemoved = f.CreateCounter("skiff_image_gc_images_removed_total", "Images removed by image GC.");
        gcBytesReclaimed = f.CreateCounter("skiff_image_gc_bytes_reclaimed_total", "Bytes reclaimed by image GC.");
        gcProtectedImages = f.CreateGauge("skiff_image_gc_protected_images", "Images the last GC run kept because a rule protects them.");
        diskUsage = f.CreateGauge("skiff_disk_usage_ratio", "Used fraction (0..1) of the filesystem holding Docker's data root.", ["node"]);
        dockerRequests = f.CreateCounter("skiff_docker_requests_total", "Docker engine API calls, by operation and result (success, error, unreachable).",
            ["operation", "result"]);

        pullDuration = f.CreateHistogram("skiff_image_pull_duration_seconds",
            "Image pulls, by result (success, not_found, failed, timeout): how long each took.",
            new HistogramConfiguration { LabelNames = ["result"], Buckets = PullBuckets });

        backupLastSuccess = f.CreateGauge("skiff_backup_last_success_timestamp_seconds",
            "When the stack's newest verified backup was taken (Unix seconds).", ["namespace", "name"]);
        backupDuration = f.CreateHistogram("skiff_backup_duration_seconds", "Backups (dump, verification, retention), by result (success, failure): how long each took.",
            new HistogramConfiguration { LabelNames = ["result"], Buckets = BackupBuckets });
        backupBytes = f.CreateGauge("skiff_backup_bytes", "Size of the stack's newest verified backup.", ["namespace", "name"]);
        backupInterval = f.CreateGauge("skiff_backup_schedule_interval_seconds",
            "Seconds between two runs of the stack's backup schedule (the alert fires when the last success is older than twice this).", ["namespace", "name"]);
        backups = f.CreateCounter("skiff_backups_total", "Backups that ended, by result (success, failure).", ["result"]);

        Docker = new DockerMetrics(this);
    }

    /// <summary>A backup ended.</summary>
    /// <param name="ns">The stack's namespace.</param>
    /// <param name="name">The stack's name.</param>
    /// <param name="ok">It was verified and kept.</param>
    /// <param name="duration">How long it took.</param>
    /// <param name="bytes">The dump's size, when ok.</param>
    /// <param name="at">When it was taken, when ok.</param>
    public void BackupEnded(string ns, string name, bool ok, TimeSpan duration, long? bytes, DateTimeOffset? at)
    {
        var result = ok ? "success" : "failure";
        backups.WithLabels(result).Inc();
        backupDuration.WithLabels(result).Observe(duration.TotalSeconds);
        if (ok && bytes is { } b && at is { } t)
        {
            backupBytes.WithLabels(ns, name).Set(b);
            backupLastSuccess.WithLabels(ns, name).Set(t.ToUnixTimeMilliseconds() / 1000.0);
        }
    }

    /// <summary>The stack's backup schedule, as the time between two runs.</summary>
    /// <param name="ns">The stack's namespace.</param>
    /// <param name="name">The stack's name.</param>
    /// <param name="interval">The time between two runs.</param>
    public void SetBackupInterval(string ns, string name, TimeSpan interval) => backupInterval.WithLabels(ns, name).Set(interval.TotalSeconds);

    /// <summary>The results <c>skiff_image_pull_duration_seconds</c> reports as themselves; any other is <c>other</c>.</summary>
    public static readonly IReadOnlySet<string> PullResultLabels = new HashSet<string>(StringComparer.Ordinal) { "success", "not_found", "failed", "timeout" };

    /// <summary>The registry the metrics live on.</summary>
    public CollectorRegistry Registry { get; }

    /// <summary>The hook to give the Docker engine (<c>Docker.DockerEngine</c>).</summary>
    public IDockerMetrics Docker { get; }

    /// <summary>The hooks of one work queue; <paramref name="name"/> is its name and controller label, as in controller-runtime.</summary>
    /// <param name="name">The queue's (and its controller's) name.</param>
    public IWorkQueueMetrics ForQueue(string name) => new QueueMetrics(this, name);

    /// <summary>The hooks of one controller.</summary>
    /// <param name="name">The controller's name, its <c>controller</c> label.</param>
    public IReconcileMetrics ForController(string name) => new ReconcileMetrics(this, name);

    /// <summary>Whether this instance holds the lease <paramref name="name"/>.</summary>
    /// <param name="name">The lease's name.</param>
    /// <param name="leader">True while it leads.</param>
    public void SetLeader(string name, bool leader) => leaderStatus.WithLabels(name).Set(leader ? 1 : 0);

    /// <summary>A revision went live after <paramref name="duration"/>.</summary>
    /// <param name="duration">From the start of the rollout until the revision was live.</param>
    public void RolloutSucceeded(TimeSpan duration)
    {
        rollouts.WithLabels("succeeded").Inc();
        rolloutDuration.Observe(Math.Max(0, duration.TotalSeconds));
    }

    /// <summary>A revision failed; with <paramref name="rolledBack"/> the last good one serves again.</summary>
    /// <param name="reason">The condition reason (MigrationFailed, HealthCheckFailed, …); others count as <c>Other</c>.</param>
    /// <param name="rolledBack">True when the app was rolled back to the last good revision.</param>
    public void RolloutFailed(string reason, bool rolledBack)
    {
        rollouts.WithLabels(rolledBack ? "rolled_back" : "failed").Inc();
        if (rolledBack)
        {
            rollbacks.WithLabels(RollbackReasons.Contains(reason) ? reason : "Other").Inc();
        }
    }

    /// <summary>Reports an AppDeployment's readiness and phase (kube-state-metrics style: one series per known phase).</summary>
    /// <param name="ns">Its namespace.</param>
    /// <param name="name">Its name.</param>
    /// <param name="ready">Whether its Ready condition is True.</param>
    /// <param name="phase">Its phase; one outside <see cref="AppDeploymentPhases"/> sets every phase series to 0.</param>
    public void SetAppDeployment(string ns, string name, bool ready, string? phase)
    {
        appReady.WithLabels(ns, name).Set(ready ? 1 : 0);
        foreach (var p in AppDeploymentPhases)
        {
            appPhase.WithLabels(ns, name, p).Set(p == phase ? 1 : 0);
        }
    }

    /// <summary>The AppDeployment is gone: drop its series so deleted resources do not linger.</summary>
    /// <param name="ns">Its namespace.</param>
    /// <param name="name">Its name.</param>
    public void ForgetAppDeployment(string ns, string name)
    {
        appReady.RemoveLabelled(ns, name);
        foreach (var p in AppDeploymentPhases)
        {
            appPhase.RemoveLabelled(ns, name, p);
        }

        backupLastSuccess.RemoveLabelled(ns, name);
        backupBytes.RemoveLabelled(ns, name);
        backupInterval.RemoveLabelled(ns, name);
    }

    /// <summary>An image GC run ended.</summary>
    /// <param name="result">How it ended.</param>
    /// <param name="imagesRemoved">Images it removed (ignored for a dry run).</param>
    /// <param name="bytesReclaimed">Bytes it reclaimed (ignored for a dry run).</param>
    /// <param name="protectedImages">Images it kept because a rule protects them.</param>
    public void ImageGcRun(ImageGcResult result, int imagesRemoved, long bytesReclaimed, int protectedImages)
    {
        gcRuns.WithLabels(result switch
        {
            ImageGcResult.Success => "success",
            ImageGcResult.Incomplete => "incomplete",
            ImageGcResult.DryRun => "dry_run",
            _ => "error",
        }).Inc();
        if (result != ImageGcResult.DryRun)
        {
            gcImagesRemoved.Inc(Math.Max(0, imagesRemoved));
            gcBytesReclaimed.Inc(Math.Max(0, bytesReclaimed));
        }

        if (result != ImageGcResult.Error)
        {
            gcProtectedImages.Set(Math.Max(0, protectedImages));
        }
    }

    /// <summary>One image pull ended.</summary>
    /// <param name="result">success, not_found, failed or timeout; others count as <c>other</c>.</param>
    /// <param name="duration">How long it took.</param>
    public void ImagePulled(string result, TimeSpan duration) =>
        pullDuration.WithLabels(PullResultLabels.Contains(result) ? result : "other").Observe(Math.Max(0, duration.TotalSeconds));

    /// <summary>The used fraction of the filesystem holding Docker's data root on <paramref name="node"/>.</summary>
    /// <param name="node">The node (this instance's).</param>
    /// <param name="ratio">Used bytes over capacity, 0..1.</param>
    public void SetDiskUsage(string node, double ratio) => diskUsage.WithLabels(node).Set(Math.Clamp(ratio, 0, 1));

    /// <summary>Counts one request of the Kubernetes client (see <see cref="RestClientMetricsHandler"/>).</summary>
    internal void RestRequest(string code, string method, string host) => restRequests.WithLabels(code, method, host).Inc();

    [GeneratedRegex("^[a-z][a-z0-9_]{0,39}$")]
    private static partial Regex OperationPattern();

    private sealed class QueueMetrics(SkiffMetrics m, string name) : IWorkQueueMetrics
    {
        private readonly Gauge.Child depth = m.queueDepth.WithLabels(name, name, "");
        private readonly Counter.Child adds = m.queueAdds.WithLabels(name, name);
        private readonly Histogram.Child queueDuration = m.queueDuration.WithLabels(name, name);
        private readonly Histogram.Child workDuration = m.workDuration.WithLabels(name, name);
        private readonly Gauge.Child unfinished = m.unfinishedWork.WithLabels(name, name);
        private readonly Gauge.Child longest = m.longestRunning.WithLabels(name, name);
        private readonly Counter.Child retries = m.queueRetries.WithLabels(name, name);

        public void Added() => adds.Inc();

        public void SetDepth(int depth) => this.depth.Set(depth);

        public void ObserveQueueDuration(TimeSpan duration) => queueDuration.Observe(duration.TotalSeconds);

        public void ObserveWorkDuration(TimeSpan duration) => workDuration.Observe(duration.TotalSeconds);

        public void SetUnfinishedWork(TimeSpan unfinished, TimeSpan longestRunning)
        {
            this.unfinished.Set(unfinished.TotalSeconds);
            longest.Set(longestRunning.TotalSeconds);
        }

        public void Retried() => retries.Inc();
    }

    private sealed class ReconcileMetrics : IReconcileMetrics
    {
        private readonly Counter.Child[] totals;
        private readonly Counter.Child errors;
        private readonly Counter.Child terminal;
        private readonly Histogram.Child time;
        private readonly Gauge.Child active;
        private readonly Gauge.Child max;

        public ReconcileMetrics(SkiffMetrics m, string name)
        {
            // Created up front, as controller-runtime does, so every result series exists at 0 from the start.
            totals =
            [
                m.reconcileTotal.WithLabels(name, "success"),
                m.reconcileTotal.WithLabels(name, "error"),
                m.reconcileTotal.WithLabels(name, "requeue"),
                m.reconcileTotal.WithLabels(name, "requeue_after"),
            ];
            errors = m.reconcileErrors.WithLabels(name);
            terminal = m.terminalReconcileErrors.WithLabels(name);
            time = m.reconcileTime.WithLabels(name);
            active = m.activeWorkers.WithLabels(name);
            max = m.maxConcurrentReconciles.WithLabels(name);
        }

        public void ObserveReconcile(ReconcileOutcome outcome, TimeSpan duration)
        {
            totals[outcome switch
            {
                ReconcileOutcome.Success => 0,
                ReconcileOutcome.Error => 1,
                ReconcileOutcome.Requeue => 2,
                _ => 3,
            }].Inc();
            time.Observe(duration.TotalSeconds);
        }

        public void ReconcileError() => errors.Inc();

        public void TerminalReconcileError() => terminal.Inc();

        public void SetActiveWorkers(int active) => this.active.Set(active);

        public void SetMaxConcurrentReconciles(int max) => this.max.Set(max);
    }

    private sealed class DockerMetrics(SkiffMetrics m) : IDockerMetrics
    {
        public void Request(string operation, string result) =>
            m.dockerRequests.WithLabels(
                OperationPattern().IsMatch(operation) ? operation : "other",
                result is "success" or "error" or "unreachable" ? result : "other").Inc();
    }
}
