using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using Skiff.Runtime;
using Skiff.IntegrationTests.Infrastructure;

namespace Skiff.Tests.Runtime;

public class ControllerTests
{
    private static readonly ObjectKey Key = new("prod", "api");

    private readonly FakeTimeProvider time = new();
    private readonly RecordingLogger<Controller> logger = new();

    private (Controller Controller, WorkQueue<ObjectKey> Queue) NewController(IReconciler reconciler, int workers = 1, TimeProvider? timeProvider = null, TimeSpan? shutdownTimeout = null)
    {
        var queue = new WorkQueue<ObjectKey>("appdeployment", time: timeProvider ?? time);
        var options = new ControllerOptions
        {
            Name = "appdeployment",
            MaxConcurrentReconciles = workers,
            ShutdownTimeout = shutdownTimeout ?? TimeSpan.FromSeconds(5),
        };
        return (new Controller(options, queue, reconciler, logger, time: timeProvider ?? time), queue);
    }

    [Fact]
    public async Task Error_IsRetriedThroughTheRateLimiter()
    {
        var (controller, queue) = NewController(new FuncReconciler(_ => throw new InvalidOperationException("docker down")));

        await controller.ReconcileHandlerAsync(Key, CancellationToken.None);

        Assert.Equal(1, queue.NumRequeues(Key));
        Assert.Equal(0, queue.Len);
        time.Advance(TimeSpan.FromMilliseconds(5));
        Assert.Equal(1, queue.Len);
    }

    [Fact]
    public async Task Terminal_IsNotRetried()
    {
        var (controller, queue) = NewController(new FuncReconciler(_ => throw new TerminalException("spec.node is required")));
        queue.AddRateLimited(Key); // an earlier failure streak
        time.Advance(TimeSpan.FromMilliseconds(5));
        queue.Done((await queue.GetAsync(CancellationToken.None)).Key);

        await controller.ReconcileHandlerAsync(Key, CancellationToken.None);

        Assert.Equal(0, queue.NumRequeues(Key));
        time.Advance(TimeSpan.FromHours(1));
        Assert.Equal(0, queue.Len);
        Assert.Single(logger.At(LogLevel.Error));
    }

    [Fact]
    public async Task RequeueAfter_ComesBackAfterTheDelay()
    {
        var (controller, queue) = NewController(new FuncReconciler(_ => ReconcileResult.After(TimeSpan.FromMinutes(1))));

        await controller.ReconcileHandlerAsync(Key, CancellationToken.None);

        time.Advance(TimeSpan.FromSeconds(59));
        Assert.Equal(0, queue.Len);
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(1, queue.Len);
        Assert.Equal(0, queue.NumRequeues(Key));
    }

    [Fact]
    public async Task Requeue_GoesThroughTheRateLimiterWithoutLoggingAnError()
    {
        var (controller, queue) = NewController(new FuncReconciler(_ => new ReconcileResult(Requeue: true)));

        await controller.ReconcileHandlerAsync(Key, CancellationToken.None);

        Assert.Equal(1, queue.NumRequeues(Key));
        Assert.Empty(logger.At(LogLevel.Error));
    }

    [Fact]
    public async Task Success_ForgetsTheBackoffAndDoesNotRequeue()
    {
        var fail = true;
        var (controller, queue) = NewController(new FuncReconciler(_ => fail ? throw new InvalidOperationException("boom") : ReconcileResult.Done));
        await controller.ReconcileHandlerAsync(Key, CancellationToken.None);
        await controller.ReconcileHandlerAsync(Key, CancellationToken.None);
        Assert.Equal(2, queue.NumRequeues(Key));

        fail = false;
        await controller.ReconcileHandlerAsync(Key, CancellationToken.None);

        Assert.Equal(0, queue.NumRequeues(Key));
        Assert.Contains(logger.At(LogLevel.Information), e => e.Message.Contains("succeeded after 2 retries", StringComparison.Ordinal));
    }

    [Fact]
    public async Task RepeatedFailure_IsLoggedAtErrorOncePerStreakAndWhenItChanges()
    {
        var message = "pull failed";
        var (controller, _) = NewController(new FuncReconciler(_ => throw new InvalidOperationException(message)));

        for (var i = 0; i < 4; i++)
        {
            await controller.ReconcileHandlerAsync(Key, CancellationToken.None);
        }

        Assert.Single(logger.At(LogLevel.Error));
        Assert.Equal(3, logger.At(LogLevel.Debug).Count(e => e.Message.Contains("failed again", StringComparison.Ordinal)));

        message = "disk full";
        await controller.ReconcileHandlerAsync(Key, CancellationToken.None);
        Assert.Equal(2, logger.At(LogLevel.Error).Count);
    }

    [Fact]
    public async Task Reconcile_RunsInALoggingScopeAndAnActivity()
    {
        var activities = new List<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == RuntimeTelemetry.ActivitySourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activities.Add,
        };
        ActivitySource.AddActivityListener(listener);
        var (controller, _) = NewController(new FuncReconciler(_ => throw new InvalidOperationException("boom")));

        await controller.ReconcileHandlerAsync(Key, CancellationToken.None);

        var entry = Assert.Single(logger.At(LogLevel.Error));
        Assert.Equal("prod", entry.Scope["Namespace"]);
        Assert.Equal("api", entry.Scope["Name"]);
        Assert.Matches("^[0-9a-f]{8}$", (string)entry.Scope["ReconcileId"]!);
        var activity = Assert.Single(activities, a => (string?)a.GetTagItem("skiff.reconcile_id") == (string)entry.Scope["ReconcileId"]!);
        Assert.Equal(ActivityStatusCode.Error, activity.Status);
    }

    [Fact]
    public async Task RunAsync_ReconcilesQueuedKeysWithSeveralWorkers()
    {
        var seen = new System.Collections.Concurrent.ConcurrentBag<ObjectKey>();
        var (controller, queue) = NewController(new FuncReconciler(k => { seen.Add(k); return ReconcileResult.Done; }), workers: 3, timeProvider: TimeProvider.System);
        using var cts = new CancellationTokenSource();
        var run = controller.RunAsync(cts.Token);

        for (var i = 0; i < 10; i++)
        {
            queue.Add(new ObjectKey("ns", "o" + i));
        }

        await Eventually.UntilAsync("ten reconciles", () => seen.Count, n => n >= 10, TimeSpan.FromSeconds(5), interval: TimeSpan.FromMilliseconds(5));

        await cts.CancelAsync();
        await run.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(10, seen.Distinct().Count());
    }

    [Fact]
    public async Task RunAsync_OnShutdown_LetsInFlightReconcilesFinish()
    {
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var finished = false;
        var reconciled = new System.Collections.Concurrent.ConcurrentBag<ObjectKey>();
        var (controller, queue) = NewController(
            new FuncReconciler(async (key, ct) =>
            {
                reconciled.Add(key);
                started.SetResult();
                await release.Task;
                ct.ThrowIfCancellationRequested();
                finished = true;
                return ReconcileResult.Done;
            }),
            timeProvider: TimeProvider.System);
        using var cts = new CancellationTokenSource();
        var run = controller.RunAsync(cts.Token);
        queue.Add(Key);
        await started.Task.WaitAsync(TimeSpan.FromSeconds(5));

        await cts.CancelAsync();
        queue.Add(new ObjectKey("prod", "other"));
        await Task.Delay(20);
        Assert.False(run.IsCompleted);

        release.SetResult();
        await run.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.True(finished);
        Assert.Equal([Key], reconciled); // no new work taken after shutdown began
    }

    [Fact]
    public async Task RunAsync_AfterShutdownTimeout_CancelsReconcilesAndReturns()
    {
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var cancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var (controller, queue) = NewController(
            new FuncReconciler(async (_, ct) =>
            {
                started.SetResult();
                await using (ct.Register(() => cancelled.SetResult()))
                {
                    await Task.Delay(Timeout.InfiniteTimeSpan, ct);
                }

                return ReconcileResult.Done;
            }),
            timeProvider: TimeProvider.System,
            shutdownTimeout: TimeSpan.FromMilliseconds(50));
        using var cts = new CancellationTokenSource();
        var run = controller.RunAsync(cts.Token);
        queue.Add(Key);
        await started.Task.WaitAsync(TimeSpan.FromSeconds(5));

        await cts.CancelAsync();

        await run.WaitAsync(TimeSpan.FromSeconds(5));
        await cancelled.Task.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Contains(logger.At(LogLevel.Warning), e => e.Message.Contains("still running", StringComparison.Ordinal));
    }

    private sealed class FuncReconciler(Func<ObjectKey, CancellationToken, Task<ReconcileResult>> reconcile) : IReconciler
    {
        public FuncReconciler(Func<ObjectKey, ReconcileResult> reconcile)
            : this((key, _) => Task.FromResult(reconcile(key)))
        {
        }

        public Task<ReconcileResult> ReconcileAsync(ObjectKey key, CancellationToken cancellationToken) => reconcile(key, cancellationToken);
    }
}
