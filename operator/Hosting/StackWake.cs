using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Skiff.Docker;
using Skiff.Reconcile;
using Skiff.Runtime;

namespace Skiff.Hosting;

/// <summary>
/// Ends a <c>run --once</c> wait early when the engine says something happened to the stack: a container of it exited
/// (a migration that finished, an app that crashed) or changed health. The long-running operator is woken the same
/// way by its container copy's events (<see cref="CachedContainerEngine.StackChanged"/>); <c>--once</c> does not keep
/// that copy, so it follows only these events. Without the stream (it failed, or the engine has none) every wait runs
/// its full interval, as it did before: the events only shorten waits, they never decide anything.
/// </summary>
public sealed class StackWake
{
    private readonly ConcurrentDictionary<ObjectKey, SemaphoreSlim> signals = new();

    /// <summary>Follows <paramref name="engine"/>'s container events until <paramref name="ct"/> ends (in the background).</summary>
    public static StackWake Follow(DockerEngine engine, ILogger log, CancellationToken ct)
    {
        var wake = new StackWake();
        var filters = new Dictionary<string, string[]>
        {
            ["type"] = ["container"],
            ["event"] = ["die", "oom", "health_status"],
            ["label"] = [$"{SkiffLabels.ManagedBy}={SkiffLabels.ManagedByValue}"],
        };
        _ = Task.Run(
            async () =>
            {
                try
                {
                    await engine.MonitorEventsAsync(filters, e =>
                    {
                        if (e.Attributes.GetValueOrDefault(SkiffLabels.App) is { Length: > 0 } stack)
                        {
                            wake.Signal(ObjectKey.Parse(stack));
                        }
                    }, ct);
                }
                catch (OperationCanceledException) when (ct.IsCancellationRequested)
                {
                    // The run is over.
                }
                catch (Exception e)
                {
                    log.LogDebug(e, "The engine's event stream ended; waits run their full interval");
                }
            },
            CancellationToken.None);
        return wake;
    }

    /// <summary>Something happened to <paramref name="key"/>'s containers: its wait (now or next) ends.</summary>
    public void Signal(ObjectKey key)
    {
        try
        {
            For(key).Release();
        }
        catch (SemaphoreFullException)
        {
            // Already signalled and not yet waited for: one wake is enough.
        }
    }

    /// <summary>
    /// Waits <paramref name="interval"/>, or less when <paramref name="key"/> is signalled meanwhile or was signalled
    /// since its last wait (an event that came while its reconcile ran is not lost).
    /// </summary>
    public Task WaitAsync(ObjectKey key, TimeSpan interval, CancellationToken ct) => For(key).WaitAsync(interval, ct);

    private SemaphoreSlim For(ObjectKey key) => signals.GetOrAdd(key, _ => new SemaphoreSlim(0, 1));
}
