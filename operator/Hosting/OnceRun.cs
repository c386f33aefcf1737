using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Skiff.Api;
using Skiff.Docker;
using Skiff.Reconcile;
using Skiff.Runtime;
using Skiff.State;

namespace Skiff.Hosting;

/// <summary>
/// What <c>skiff run --once</c> does the same way for every source: reconcile each key until its rollout is over (Ready
/// or failed), then print the status table and say whether everything is Ready. The source supplies the keys and the
/// records to show; the GC pass between the two is the source's too (its policies and reporter differ).
/// </summary>
public static class OnceRun
{

    /// <summary>
    /// How long the whole run may take: each stack may need its images (each bounded by the pull timeout), its
    /// database (its health check, or the progress deadline if longer, at most 2 minutes otherwise), its migration
    /// (<c>migrate.timeoutSeconds</c>) and its app (the progress deadline) in turn, plus a minute of slack.
    /// </summary>
    public static TimeSpan Deadline(IEnumerable<AppDeploymentSpec> specs, TimeSpan pullTimeout)
    {
        var longest = specs.Select(Defaults.Apply).Select(spec =>
        {
            var progress = spec.Rollout!.ProgressDeadlineSeconds!.Value;
            return (int)Math.Max(progress, StackPlanner.DataHealthBackstop.TotalSeconds) + progress + (spec.App.Migrate?.TimeoutSeconds ?? 0);
        }).DefaultIfEmpty(0).Max();
        return pullTimeout + TimeSpan.FromSeconds(longest + 60);
    }

    /// <summary>
    /// Reconciles every key, four at a time, until its rollout is over: a reconcile never waits for the world, so a key
    /// whose status says a rollout is in progress is reconciled again after the interval the reconcile asked for. A
    /// reconcile that throws is retried with backoff (0.5 s doubling to 10 s). Stops at <paramref name="deadline"/>;
    /// returns the keys that did not settle in time.
    /// </summary>
    /// <param name="reconciler">The source's reconciler.</param>
    /// <param name="keys">The resources (and pruned stacks) to settle.</param>
    /// <param name="inProgress">Whether the key's latest status says its rollout goes on (read after each reconcile).</param>
    /// <param name="deadline">How long the whole run may take.</param>
    /// <param name="log">Where retries are told.</param>
    /// <param name="ct">Ends the run.</param>
    /// <param name="wake">Ends a key's wait early when its containers change (<see cref="StackWake"/>), or null.</param>
    /// <exception cref="EngineUnreachableException">The Docker engine stopped answering (exit code 3).</exception>
    /// <exception cref="OperationCanceledException"><paramref name="ct"/> ended.</exception>
    public static async Task<IReadOnlyCollection<ObjectKey>> ReconcileAllAsync(
        IReconciler reconciler, IReadOnlyCollection<ObjectKey> keys, Func<ObjectKey, bool> inProgress, TimeSpan deadline, ILogger log, CancellationToken ct,
        StackWake? wake = null)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(deadline);
        var failed = new ConcurrentBag<ObjectKey>();
        await Parallel.ForEachAsync(keys, new ParallelOptions { MaxDegreeOfParallelism = 4, CancellationToken = ct }, async (key, _) =>
        {
            var delay = TimeSpan.FromMilliseconds(500);
            while (true)
            {
                try
                {
                    var result = await reconciler.ReconcileAsync(key, timeout.Token);
                    if (!inProgress(key))
                    {
                        return;
                    }

                    var interval = result.RequeueAfter > TimeSpan.Zero ? result.RequeueAfter : StackAction.PollInterval;
                    await (wake is null ? Task.Delay(interval, timeout.Token) : wake.WaitAsync(key, interval, timeout.Token));
                    delay = TimeSpan.FromMilliseconds(500);
                }
                catch (OperationCanceledException) when (timeout.IsCancellationRequested && !ct.IsCancellationRequested)
                {
                    failed.Add(key);
                    return;
                }
                catch (Exception e) when (e is not EngineUnreachableException && !timeout.IsCancellationRequested)
                {
                    log.LogWarning("{Key}: reconcile failed, retrying in {Delay}: {Message}", key, delay, e.Message);
                    try
                    {
                        await Task.Delay(delay, timeout.Token);
                    }
                    catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                    {
                        failed.Add(key);
                        return;
                    }

                    delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(10).Ticks));
                }
            }
        });
        return failed;
    }

    /// <summary>
    /// Prints the status table, then one line per resource that is not Ready (why), per problem of the source, and per
    /// key that did not converge. Returns the exit code: 0 only when every resource is Ready and nothing else is wrong.
    /// </summary>
    /// <param name="shown">The resources to show.</param>
    /// <param name="problems">The source's problems (unreadable documents).</param>
    /// <param name="failed">The keys that did not settle before the deadline.</param>
    /// <param name="output">Where the table goes.</param>
    /// <param name="printTable">How the command prints the status table and why each resource that is not Ready is not.</param>
    public static int Report(
        IReadOnlyCollection<StatusRecord> shown, IReadOnlyCollection<string> problems, IReadOnlyCollection<ObjectKey> failed, TextWriter output,
        Action<IReadOnlyCollection<StatusRecord>, TextWriter> printTable)
    {
        printTable(shown, output);
        foreach (var problem in problems)
        {
            output.WriteLine(problem);
        }

        foreach (var key in failed)
        {
            output.WriteLine($"{key}: did not converge before the deadline");
        }

        var allReady = shown.All(r => Conditions.IsTrue(r.Status, ConditionTypes.Ready));
        return allReady && problems.Count == 0 && failed.Count == 0 ? ExitCodes.Ok : ExitCodes.NotOk;
    }
}

/// <summary>
/// How a run speaks to its terminal, given by the command: the live pull lines of <c>--once</c> (null when standard
/// error is not a terminal) and the status table <c>--once</c> ends with.
/// </summary>
/// <param name="Display">The live pull lines, or null.</param>
/// <param name="PrintTable">Prints the status table and why each resource that is not Ready is not.</param>
public sealed record RunConsole(IPullListener? Display, Action<IReadOnlyCollection<StatusRecord>, TextWriter> PrintTable);
