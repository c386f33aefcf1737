using System.Globalization;
using Skiff.Api;

namespace Skiff.Reconcile;

/// <summary>One Event to record: Normal or Warning, a PascalCase reason, a human message.</summary>
public sealed record StatusEvent(EventKind Kind, string Reason, string Message);

/// <summary>
/// Every change of state is an Event (DESIGN §1), derived in this one place from the status before and
/// after a write, so no transition can forget its Event and no Event can be recorded twice for one
/// transition. Steps that leave no trace in the status (a volume created, an image pulled) are recorded
/// where they happen.
/// </summary>
/// <remarks>
/// # Guarantees
/// - A revision that starts, succeeds, fails or is rolled back gives one Event each time its outcome changes.
/// - Stalled turning True (or changing its reason) is a Warning with that reason and message; Ready turning
///   True is Normal <c>Ready</c>, turning False a Warning with its reason unless Stalled said it already.
/// - DiskPressure rising is a Warning, clearing a Normal <c>DiskSpaceAvailable</c>.
///
/// # Caveats
/// The sources call it after the status was written, so an Event never announces a state the API never had;
/// a write that failed is retried with the same before, and the Event comes with the retry.
/// </remarks>
public static class StatusEvents
{
    public static IReadOnlyList<StatusEvent> Between(AppDeploymentStatus? before, AppDeploymentStatus after, DateTimeOffset now)
    {
        var events = new List<StatusEvent>();
        HistoryEvents(before, after, now, events);
        ConditionEvents(before, after, events);
        return events;
    }

    /// <summary>Records the Events of a status write on <paramref name="sink"/>.</summary>
    public static void Record(IEventSink sink, AppDeployment resource, AppDeploymentStatus? before, AppDeploymentStatus after, DateTimeOffset now)
    {
        foreach (var e in Between(before, after, now))
        {
            sink.Record(resource, e.Kind, e.Reason, e.Message);
        }
    }

    private static void HistoryEvents(AppDeploymentStatus? before, AppDeploymentStatus after, DateTimeOffset now, List<StatusEvent> events)
    {
        var previous = (before?.History ?? []).ToDictionary(h => h.Revision);
        foreach (var record in after.History ?? [])
        {
            var old = previous.GetValueOrDefault(record.Revision);
            if (old?.SpecHash != record.SpecHash)
            {
                old = null;
            }

            var revision = record.Revision.ToString(CultureInfo.InvariantCulture);
            if (old is null)
            {
                events.Add(new(EventKind.Normal, Reasons.RolloutStarted, $"Rolling out revision {revision} ({record.Image})"));
            }

            if (old?.Outcome == record.Outcome)
            {
                continue;
            }

            switch (record.Outcome)
            {
                case Outcomes.Succeeded:
                    var took = record.DeployedAt is { } at ? $" after {(now - at).TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture)}s" : "";
                    events.Add(new(EventKind.Normal, Reasons.RolloutSucceeded, $"Revision {revision} ({record.Image}) is live{took}"));
                    break;
                case Outcomes.Failed or Outcomes.RolledBack:
                    var reason = record.Reason ?? Reasons.RolloutFailed;
                    var stalled = Conditions.Get(after, ConditionTypes.Stalled);
                    var message = stalled is { Status: "True" } && stalled.Reason == reason && stalled.Message is { } m
                        ? m
                        : $"revision {revision} ({record.Image}) failed: {reason}";
                    events.Add(new(EventKind.Warning, reason, message));
                    if (record.Outcome == Outcomes.RolledBack)
                    {
                        var good = (after.History ?? []).LastOrDefault(h => h.Outcome == Outcomes.Succeeded && h.Revision != record.Revision);
                        events.Add(new(EventKind.Warning, Reasons.RolledBack, good is null
                            ? $"Revision {revision} was rolled back"
                            : $"Revision {revision} was rolled back: serving revision {good.Revision.ToString(CultureInfo.InvariantCulture)} ({good.Image}) again"));
                    }

                    break;
            }
        }
    }

    private static void ConditionEvents(AppDeploymentStatus? before, AppDeploymentStatus after, List<StatusEvent> events)
    {
        var said = events.Select(e => e.Reason).ToHashSet(StringComparer.Ordinal);
        void Add(EventKind kind, string reason, string message)
        {
            if (said.Add(reason))
            {
                events.Add(new(kind, reason, message));
            }
        }

        var stalledBefore = Conditions.Get(before, ConditionTypes.Stalled);
        var stalled = Conditions.Get(after, ConditionTypes.Stalled);
        if (stalled is { Status: "True" } && (stalledBefore?.Status != "True" || stalledBefore.Reason != stalled.Reason))
        {
            Add(EventKind.Warning, stalled.Reason ?? "Stalled", stalled.Message ?? "");
        }

        var readyBefore = Conditions.Get(before, ConditionTypes.Ready);
        var ready = Conditions.Get(after, ConditionTypes.Ready);
        if (ready is not null && (readyBefore?.Status ?? "Unknown") != ready.Status)
        {
            switch (ready.Status, ready.Reason)
            {
                case ("True", _):
                    Add(EventKind.Normal, Reasons.Ready, ready.Message ?? "ready");
                    break;
                case (_, Reasons.RolloutInProgress):
                    // RolloutStarted says it.
                    break;
                case (_, Reasons.Replacing):
                    // The expected gap of a stop-first replacement, not a fault.
                    Add(EventKind.Normal, Reasons.Replacing, ready.Message ?? "");
                    break;
                default:
                    Add(EventKind.Warning, ready.Reason ?? "NotReady", ready.Message ?? "");
                    break;
            }
        }

        var pressureBefore = Conditions.Get(before, ConditionTypes.DiskPressure);
        var pressure = Conditions.Get(after, ConditionTypes.DiskPressure);
        if (pressure is not null && (pressureBefore?.Status ?? "False") != pressure.Status)
        {
            if (pressure.Status == "True")
            {
                Add(EventKind.Warning, Reasons.DiskPressure, pressure.Message ?? "");
            }
            else
            {
                Add(EventKind.Normal, Reasons.DiskSpaceAvailable, pressure.Message ?? "");
            }
        }

        var certificateBefore = Conditions.Get(before, ConditionTypes.CertificateNotReady);
        var certificate = Conditions.Get(after, ConditionTypes.CertificateNotReady);
        if (certificate is not null && (certificateBefore?.Status ?? "False") != certificate.Status)
        {
            Add(certificate.Status == "True" ? EventKind.Warning : EventKind.Normal, certificate.Reason ?? Reasons.CertificateNotReady, certificate.Message ?? "");
        }

        var unservedBefore = Conditions.Get(before, ConditionTypes.DomainsNotServed);
        var unserved = Conditions.Get(after, ConditionTypes.DomainsNotServed);
        if (unserved is { Status: "True" } && (unservedBefore?.Status != "True" || unservedBefore.Message != unserved.Message))
        {
            Add(EventKind.Warning, unserved.Reason ?? Reasons.ProxyRequired, unserved.Message ?? "");
        }
    }
}
