using Skiff.Api;

namespace Skiff.Reconcile;

/// <summary>Where a resource stands, as kstatus's three conditions say it together.</summary>
public enum Summary
{
    /// <summary>Ready=True, Stalled=False, Reconciling=False.</summary>
    Ready,

    /// <summary>Reconciling=True (a rollout step is under way), Stalled=False; Ready stays True if it was, else False.</summary>
    Progressing,

    /// <summary>Stalled=True: nothing moves until something outside changes; Ready=False, Reconciling=False.</summary>
    Stalled,

    /// <summary>Ready=False for a live app that turned unhealthy; Stalled=False, Reconciling=False (it may recover by itself).</summary>
    NotReady,

    /// <summary>Ready=Unknown, Reconciling=True: the engine cannot be asked; Stalled is left as it was.</summary>
    Unknown,
}

/// <summary>kstatus condition helpers: keyed by type, lastTransitionTime moves only when the status flips.</summary>
public static class Conditions
{
    /// <summary>Sets Ready, Stalled and Reconciling together (the one place they are set), with one reason and message.</summary>
    public static void Summarize(AppDeploymentStatus status, Summary summary, string reason, string message, long? generation, DateTimeOffset now)
    {
        switch (summary)
        {
            case Summary.Ready:
                Set(status, ConditionTypes.Ready, true, reason, message, generation, now);
                Set(status, ConditionTypes.Stalled, false, reason, message, generation, now);
                Set(status, ConditionTypes.Reconciling, false, reason, message, generation, now);
                break;
            case Summary.Progressing:
                Set(status, ConditionTypes.Reconciling, true, reason, message, generation, now);
                Set(status, ConditionTypes.Stalled, false, reason, message, generation, now);
                if (Get(status, ConditionTypes.Ready) is not { Status: "True" } and not { Reason: Reasons.Replacing })
                {
                    Set(status, ConditionTypes.Ready, false, reason, message, generation, now);
                }

                break;
            case Summary.Stalled:
                Set(status, ConditionTypes.Ready, false, reason, message, generation, now);
                Set(status, ConditionTypes.Stalled, true, reason, message, generation, now);
                Set(status, ConditionTypes.Reconciling, false, reason, message, generation, now);
                break;
            case Summary.NotReady:
                Set(status, ConditionTypes.Ready, false, reason, message, generation, now);
                Set(status, ConditionTypes.Stalled, false, reason, message, generation, now);
                Set(status, ConditionTypes.Reconciling, false, reason, message, generation, now);
                break;
            case Summary.Unknown:
                Set(status, ConditionTypes.Ready, "Unknown", reason, message, generation, now);
                Set(status, ConditionTypes.Reconciling, true, reason, message, generation, now);
                break;
        }
    }

    public static void Set(AppDeploymentStatus status, string type, bool value, string reason, string message, long? generation, DateTimeOffset now) =>
        Set(status, type, value ? "True" : "False", reason, message, generation, now);

    public static void Set(AppDeploymentStatus status, string type, string value, string reason, string message, long? generation, DateTimeOffset now)
    {
        status.Conditions ??= [];
        var existing = status.Conditions.FirstOrDefault(c => c.Type == type);
        if (existing is null)
        {
            status.Conditions.Add(new Condition
            {
                Type = type,
                Status = value,
                Reason = reason,
                Message = message,
                ObservedGeneration = generation,
                LastTransitionTime = now,
            });
            return;
        }

        if (existing.Status != value)
        {
            existing.LastTransitionTime = now;
        }

        existing.Status = value;
        existing.Reason = reason;
        existing.Message = message;
        existing.ObservedGeneration = generation;
    }

    public static void Remove(AppDeploymentStatus status, string type) => status.Conditions?.RemoveAll(c => c.Type == type);

    public static Condition? Get(AppDeploymentStatus? status, string type) => status?.Conditions?.FirstOrDefault(c => c.Type == type);

    public static bool IsTrue(AppDeploymentStatus? status, string type) => Get(status, type)?.Status == "True";

    /// <summary>
    /// A rollout step is under way and the stack will be reconciled again by itself shortly (a pull, the database
    /// starting, a migration, the new revision warming up): <c>Reconciling</c> True with reason <c>RolloutInProgress</c>.
    /// </summary>
    public static bool RolloutInProgress(AppDeploymentStatus? status) =>
        Get(status, ConditionTypes.Reconciling) is { Status: "True", Reason: Reasons.RolloutInProgress };
}
