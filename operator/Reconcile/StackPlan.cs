using System.Globalization;

namespace Skiff.Reconcile;

/// <summary>What the engine shows of one stack, found by Skiff's labels.</summary>
/// <param name="NetworkExists">The stack's network exists.</param>
/// <param name="Volumes">Each volume the stack wants, with its labels, or null when missing.</param>
/// <param name="Containers">Every container labelled with the stack's key.</param>
public sealed record ObservedStack(
    bool NetworkExists,
    IReadOnlyDictionary<string, IReadOnlyDictionary<string, string>?> Volumes,
    IReadOnlyList<ObservedContainer> Containers)
{
    /// <summary>The app containers of the desired spec that passed the health check when this was observed (ids).</summary>
    public IReadOnlySet<string> PassedProbe { get; init; } = new HashSet<string>(StringComparer.Ordinal);

    /// <summary>With the node proxy: the stack's routes in the proxy's table.</summary>
    public StackRoutes Routes { get; init; } = StackRoutes.None;

    /// <summary>With the node proxy: it serves the table as last written (a switch is live).</summary>
    public bool RoutesApplied { get; init; } = true;

    public IEnumerable<ObservedContainer> Component(string component) => Containers.Where(c => c.Component == component);
}

/// <summary>One step of a plan. <see cref="Describe"/> is what <c>skiff plan</c> prints.</summary>
public abstract record StackAction
{
    /// <summary>How often a wait looks again: as often as docker-compose polls health, since a rollout's speed is mostly how soon a change is noticed.</summary>
    public static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(100);

    /// <summary>This step waits for the world (a container to become healthy, a migration to end): the reconcile ends here and comes back.</summary>
    public virtual bool IsWait => false;

    /// <summary>For a wait: when to look again.</summary>
    public virtual TimeSpan RequeueAfter => PollInterval;

    /// <summary>For a wait: what the status says meanwhile.</summary>
    public virtual string Waiting => Describe();

    public abstract string Describe();
}

public sealed record CreateNetwork(string Name) : StackAction
{
    public override string Describe() => $"create network {Name}";
}

public sealed record CreateVolume(string Name, string Component) : StackAction
{
    public override string Describe() => $"create volume {Name} for the {Component}";
}

public sealed record RemoveContainer(ObservedContainer Container, string Reason) : StackAction
{
    public override string Describe() => $"remove container {Container.Name} ({Reason})";
}

public sealed record StopContainer(ObservedContainer Container, string Reason) : StackAction
{
    public override string Describe() => $"stop container {Container.Name} ({Reason})";
}

public sealed record StartExisting(ObservedContainer Container, string Reason) : StackAction
{
    public override string Describe() => $"start container {Container.Name} ({Reason})";
}

/// <summary>Create and start a database or cache container (PostgreSQL: after the PG_VERSION guard).</summary>
public sealed record StartDataContainer(DataComponent Component) : StackAction
{
    public override string Describe() => $"create and start {Component.Component} container {Component.Container.Name} ({Component.Container.Image})";
}

public sealed record WaitHealthy(IReadOnlyList<string> Components) : StackAction
{
    public override bool IsWait => true;

    public override TimeSpan RequeueAfter => TimeSpan.FromMilliseconds(250);

    public override string Waiting => $"waiting for the {string.Join(" and the ", Components)} to become healthy";

    public override string Describe() => $"wait until {string.Join(" and ", Components)} report healthy";
}

/// <summary>A database or cache container did not become healthy: the stack stalls (reason DatabaseNotReady or CacheNotReady).</summary>
public sealed record DataNotReady(string Component, ObservedContainer Container, string Why) : StackAction
{
    public string Reason => Component == StackNames.DatabaseComponent ? Reasons.DatabaseNotReady : Reasons.CacheNotReady;

    public override string Describe() => $"stall: the {Component} did not become healthy: {Why}";
}

/// <summary>Images are being pulled (in the background): the reconcile comes back.</summary>
public sealed record PullWait(IReadOnlyList<string> Images) : StackAction
{
    public override bool IsWait => true;

    public override TimeSpan RequeueAfter => TimeSpan.FromMilliseconds(500);

    public override string Waiting => $"pulling {string.Join(", ", Images)}";

    public override string Describe() => $"wait until {string.Join(", ", Images)} are pulled";
}

/// <summary>Record that a revision's rollout begins (history entry, Progressing).</summary>
public sealed record BeginRollout(long Revision, string Hash, string Image) : StackAction
{
    public override string Describe() => $"roll out revision {Revision.ToString(CultureInfo.InvariantCulture)} ({Image})";
}

/// <summary>
/// Pull an image per its pull policy. Consecutive EnsureImage actions run side by side. A pull of the app image
/// of a new revision that finds no image fails that revision; any other failed pull stalls the stack until a retry.
/// </summary>
/// <param name="Image">The reference to pull.</param>
/// <param name="Policy">IfNotPresent, Always or Never.</param>
/// <param name="Component">app, database or cache: whose image it is.</param>
/// <param name="Revision">For the app image of a new revision: that revision.</param>
public sealed record EnsureImage(string Image, string Policy, string Component, long? Revision = null) : StackAction
{
    public override string Describe() => $"ensure {Component} image {Image} is present (imagePullPolicy {Policy})";
}

/// <summary>Starts the revision's migration container (when it is not running yet), then waits for it to end.</summary>
public sealed record RunMigration(long Revision, ContainerSpec Spec, ObservedContainer? Existing) : StackAction
{
    public override bool IsWait => true;

    public override TimeSpan RequeueAfter => TimeSpan.FromMilliseconds(250);

    public override string Waiting => $"migrating: revision {Revision.ToString(CultureInfo.InvariantCulture)}'s migration is running ({Spec.Name})";

    public override string Describe() => Existing is null
        ? $"run migration {string.Join(' ', Spec.Entrypoint ?? [])} in {Spec.Name}"
        : $"wait for migration container {Existing.Name} to finish";
}

public sealed record StartApp(long Revision, ContainerSpec Spec, bool Rollback) : StackAction
{
    public override string Describe() => Rollback
        ? $"start app container {Spec.Name} with the last good image {Spec.Image}"
        : $"start app container {Spec.Name} ({Spec.Image})";
}

/// <summary>Wait until the new app container is ready; <paramref name="ProgressDeadline"/> counts from the moment it was started.</summary>
public sealed record WaitAppReady(long Revision, string ContainerName, TimeSpan ProgressDeadline) : StackAction
{
    public override bool IsWait => true;

    public override string Waiting =>
        $"waiting for revision {Revision.ToString(CultureInfo.InvariantCulture)} to be ready ({ContainerName}; progress deadline {ProgressDeadline.TotalSeconds.ToString(CultureInfo.InvariantCulture)}s from its start)";

    public override string Describe() =>
        $"wait until {ContainerName} is ready (progress deadline {ProgressDeadline.TotalSeconds.ToString(CultureInfo.InvariantCulture)}s from its start)";
}

/// <summary>The node proxy's routes of the stack go to this revision's container from now on (DESIGN §7).</summary>
public sealed record SwitchRoutes(long Revision, IReadOnlyList<StackRoute> Routes, string Why) : StackAction
{
    public override string Describe() => Routes.Count == 0
        ? $"remove the stack's routes from the node proxy ({Why})"
        : $"route {string.Join(", ", Routes.Select(r => r.Address))} to revision {Revision.ToString(CultureInfo.InvariantCulture)} ({Why})";
}

/// <summary>
/// The old revision drains after the switch: its in-flight requests finish while new ones go to the new revision;
/// it is stopped after rollout.drainSeconds, once the proxy serves the new routes.
/// </summary>
public sealed record DrainWait(long Revision, DateTimeOffset Until, bool ProxyBehind) : StackAction
{
    public override bool IsWait => true;

    public override TimeSpan RequeueAfter => TimeSpan.FromMilliseconds(250);

    public override string Waiting => ProxyBehind
        ? $"revision {Revision.ToString(CultureInfo.InvariantCulture)} is routed; waiting for the node proxy to apply the routes (before an old revision drains)"
        : $"revision {Revision.ToString(CultureInfo.InvariantCulture)} is routed; the old revision drains until {Until:HH:mm:ss}";

    public override string Describe() => ProxyBehind
        ? "wait for the node proxy to serve the new routes"
        : $"let the old revision drain until {Until:HH:mm:ss} (rollout.drainSeconds)";
}

/// <summary>The new revision is live: remove the old app containers and the migration container.</summary>
public sealed record CompleteRollout(long Revision, IReadOnlyList<ObservedContainer> Leftovers) : StackAction
{
    public override string Describe() => Leftovers.Count == 0
        ? $"mark revision {Revision.ToString(CultureInfo.InvariantCulture)} succeeded"
        : $"mark revision {Revision.ToString(CultureInfo.InvariantCulture)} succeeded and remove {string.Join(", ", Leftovers.Select(c => c.Name))}";
}

/// <summary>The engine already shows the revision failed (for example a migration that exited non-zero before a restart).</summary>
public sealed record FailRollout(long Revision, string Reason, string Message, ObservedContainer? Culprit) : StackAction
{
    public override string Describe() => $"mark revision {Revision.ToString(CultureInfo.InvariantCulture)} failed: {Reason}";
}

/// <summary>Nothing can be done until something outside changes; the plan stops here.</summary>
public sealed record Blocked(string Reason, string Message) : StackAction
{
    public override string Describe() => $"blocked: {Message}";
}

/// <summary>The ordered actions for one stack.</summary>
public sealed record StackPlan(IReadOnlyList<StackAction> Actions)
{
    public bool IsEmpty => Actions.Count == 0;
}
