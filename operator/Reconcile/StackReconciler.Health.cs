using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.Extensions.Logging;
using Skiff.Api;

namespace Skiff.Reconcile;

public sealed partial class StackReconciler
{
    /// <summary>
    /// Per stack: the container watched, its consecutive failed probes and the restart count last seen.
    /// Keyed by container too, so a new revision's container starts from its own count.
    /// </summary>
    private readonly ConcurrentDictionary<string, (string ContainerId, int Failures, long Restarts)> watch = new();


    /// <summary>Nothing left to do: describe the stack as it stands and watch the live app's health.</summary>
    private async Task<StackResult> FinishAsync(RolloutRun run, ObservedStack observed, CancellationToken ct)
    {
        var desired = run.Desired;
        var status = run.Status;
        var generation = run.Generation;
        var now = time.GetUtcNow();
        status.ObservedGeneration = generation;
        status.Components = Components(observed);

        foreach (var data in new[] { desired.Database, desired.Cache }.OfType<DataComponent>())
        {
            var c = observed.Component(data.Component).FirstOrDefault();
            var up = c is { Running: true, Health: "healthy" };
            Conditions.Set(status, data.Component == StackNames.DatabaseComponent ? ConditionTypes.DatabaseReady : ConditionTypes.CacheReady,
                up, up ? Reasons.Healthy : Reasons.NotHealthy, up ? $"{data.Component} is healthy" : $"{data.Component} is {c?.State ?? "missing"}", generation, now);
        }

        if (desired.Database is null)
        {
            Conditions.Remove(status, ConditionTypes.DatabaseReady);
        }

        if (desired.Cache is null)
        {
            Conditions.Remove(status, ConditionTypes.CacheReady);
        }

        if (desired.Spec.App.Migrate is null)
        {
            Conditions.Remove(status, ConditionTypes.Migrated);
        }

        var record = status.History?.LastOrDefault(h => h.SpecHash == desired.Hash);
        var app = observed.Component(StackNames.AppComponent).Where(c => c.Running).OrderByDescending(c => c.Revision).FirstOrDefault();
        if (app is not null)
        {
            status.Image = app.Label(SkiffLabels.ImageRef) is { } imageRef
                ? status.History?.LastOrDefault(h => h.Revision == app.Revision && h.Outcome == Outcomes.Succeeded)?.Image ?? imageRef
                : app.Image;
            status.ImageId = app.ImageId;
            status.Revision = app.Revision;
        }

        if (record?.Outcome is Outcomes.Failed or Outcomes.RolledBack)
        {
            // The spec failed: the resource stays Stalled until the spec changes, whatever serves meanwhile.
            var existing = Conditions.Get(status, ConditionTypes.Stalled);
            var message = existing is { Status: "True" } && existing.Reason == record.Reason && existing.Message is { } m
                ? m
                : $"revision {record.Revision} ({record.Image}) failed: {record.Reason}";
            Conditions.Summarize(status, Summary.Stalled, record.Reason ?? Reasons.RolloutFailed, message, generation, now);
            Conditions.Set(status, ConditionTypes.AppReady, app is not null, app is null ? Reasons.NoRevisionServing : Reasons.ServingLastGood,
                app is null ? "no revision is serving" : $"revision {app.Revision} is serving", generation, now);
            status.Phase = app is not null ? Phases.Degraded : Phases.Failed;
            return new StackResult(status, TimeSpan.FromMinutes(1));
        }

        var (healthy, reason, detail) = app is null
            ? (false, Reasons.AppNotRunning, "the app container is not running")
            : await WatchHealthAsync(desired, app, ct);
        Conditions.Set(status, ConditionTypes.AppReady, healthy, healthy ? Reasons.Healthy : reason, detail, generation, now);
        var dataHealthy = !(status.Conditions ?? []).Any(c => c.Type is ConditionTypes.DatabaseReady or ConditionTypes.CacheReady && c.Status != "True");
        var ready = healthy && dataHealthy;
        var readyMessage = ready ? $"revision {status.Revision} ({status.Image}) is ready" : detail;
        Conditions.Summarize(status, ready ? Summary.Ready : Summary.NotReady, ready ? Reasons.Ready : reason, readyMessage, generation, now);
        status.Phase = ready ? Phases.Ready : Phases.Degraded;

        // Health is probed every periodSeconds, as documented: failureThreshold probes in a row then take
        // about failureThreshold × periodSeconds to flip Ready, as a Kubernetes readiness probe does.
        var period = desired.Health?.Period ?? TimeSpan.FromSeconds(10);
        return new StackResult(status, period);
    }

    private async Task<(bool Healthy, string Reason, string Message)> WatchHealthAsync(DesiredStack desired, ObservedContainer app, CancellationToken ct)
    {
        var key = desired.Names.Key;
        var (containerId, failures, restarts) = watch.GetOrAdd(key, _ => (app.Id, 0, app.RestartCount));
        if (containerId != app.Id)
        {
            (failures, restarts) = (0, app.RestartCount);
        }

        var crashed = app.State == "restarting" || app.RestartCount > restarts;
        var probed = desired.Health is not { } h || await probe.ProbeAsync(app, h.Port, h.Path, ct);
        failures = probed ? 0 : failures + 1;
        watch[key] = (app.Id, failures, app.RestartCount);
        if (crashed)
        {
            logger.LogWarning("{Stack}: app container {Container} restarted ({Restarts} restarts)", key, app.Name, app.RestartCount);
            return (false, Reasons.CrashLooping, $"the app container {app.Name} is restarting (restarted {app.RestartCount} times)");
        }

        if (desired.Health is { } hc && failures >= hc.FailureThreshold)
        {
            return (false, Reasons.HealthCheckFailed, $"GET {hc.Path} on port {hc.Port} failed {failures} times in a row");
        }

        return (true, Reasons.Healthy, $"revision {app.Revision} is healthy");
    }

    private static List<ComponentStatus> Components(ObservedStack observed) =>
        new[] { StackNames.AppComponent, StackNames.DatabaseComponent, StackNames.CacheComponent }
            .Select(name => observed.Component(name).Where(c => c.Running).OrderByDescending(c => c.Revision).FirstOrDefault()
                ?? observed.Component(name).FirstOrDefault())
            .OfType<ObservedContainer>()
            .Select(c => new ComponentStatus
            {
                Name = c.Component!,
                ContainerId = c.Id.Length > 12 ? c.Id[..12] : c.Id,
                Image = c.Image,
                State = c.State,
                Health = c.Health ?? "none",
                Restarts = c.RestartCount,
            })
            .ToList();
}

/// <summary>The operator's HTTP health check: one GET against the container on the stack's network; 2xx and 3xx are healthy.</summary>
public sealed class HttpAppProbe : IAppProbe
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(2) };

    public async Task<bool> ProbeAsync(ObservedContainer container, int port, string path, CancellationToken ct)
    {
        var ip = container.NetworkIps.Values.FirstOrDefault();
        if (ip is null || port <= 0)
        {
            return false;
        }

        try
        {
            using var response = await Http.GetAsync(new Uri($"http://{ip}:{port.ToString(CultureInfo.InvariantCulture)}{path}"), ct);
            return (int)response.StatusCode is >= 200 and < 400;
        }
        catch (HttpRequestException)
        {
            return false;
        }
        catch (TaskCanceledException) when (!ct.IsCancellationRequested)
        {
            return false;
        }
    }
}
