using Skiff.Api;

namespace Skiff.Reconcile;

public sealed partial class StackReconciler
{
    /// <summary>
    /// The node's engine lock, shared with image GC: rollouts hold a use lease while they pull and
    /// start, so GC never deletes an image under them (see <see cref="ImageEngineLock"/>).
    /// </summary>
    public ImageEngineLock EngineLock => services.EngineLock;

    /// <summary>The node's disk guard, raised by image GC; null = never block (skiff plan, tests).</summary>
    public DiskGuard? DiskGuard => services.DiskGuard;

    /// <summary>Actions that pull an image or create and start a container from one.</summary>
    private static string? ImageUsedBy(StackAction action) => action switch
    {
        EnsureImage i => i.Image,
        RunMigration m => m.Spec.Image,
        StartApp a => a.Spec.Image,
        StartDataContainer d => d.Component.Container.Image,
        StartExisting s => s.Container.ImageId,
        _ => null,
    };

    /// <summary>DiskPressure follows the guard on every reconcile: True while raised, False once cleared (only if it was ever set).</summary>
    private void ApplyDiskPressure(AppDeploymentStatus status, long? generation)
    {
        if (DiskGuard is not { } guard)
        {
            return;
        }

        var now = time.GetUtcNow();
        if (guard.IsRaised)
        {
            Conditions.Set(status, ConditionTypes.DiskPressure, true, Reasons.DiskPressure, guard.Message, generation, now);
        }
        else if (Conditions.Get(status, ConditionTypes.DiskPressure) is not null)
        {
            Conditions.Set(status, ConditionTypes.DiskPressure, false, Reasons.DiskSpaceAvailable, guard.Message, generation, now);
        }
    }

    /// <summary>A new rollout that waits for disk space: nothing is started, the serving revision (if any) stays.</summary>
    private StackResult WaitForDisk(AppDeploymentStatus status, long? generation, string why)
    {
        var now = time.GetUtcNow();
        var message = $"the rollout waits for disk space: {why}";
        status.ObservedGeneration = generation;
        status.Phase = status.History?.Any(h => h.Outcome == Outcomes.Succeeded) == true ? Phases.Progressing : Phases.Pending;
        Conditions.Summarize(status, Summary.Progressing, Reasons.DiskPressure, message, generation, now);
        // Ready says False all the same: the spec asked for cannot be rolled out now.
        Conditions.Set(status, ConditionTypes.Ready, false, Reasons.DiskPressure, message, generation, now);
        return new StackResult(status, TimeSpan.FromSeconds(30));
    }
}
