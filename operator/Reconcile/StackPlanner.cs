using Skiff.Api;

namespace Skiff.Reconcile;

/// <summary>
/// The pure heart of reconciliation: compares the desired stack with what the engine shows (and the
/// rollout history) and returns the ordered actions that converge them. It never talks to the engine,
/// so every crash point can be replayed as an observed state in a test.
/// </summary>
/// <remarks>
/// # Guarantees
/// - Level-based: the plan depends only on its inputs, so re-planning after a crash converges.
/// - A spec hash whose rollout failed is never retried; the last good revision is served instead.
/// - The old app container is removed only after the new one is ready (or, stop-first, only stopped before).
/// - Volumes are never removed here; only deletion with reclaimPolicy: Delete removes them.
/// </remarks>
public static class StackPlanner
{
    /// <summary>How many times a migration stopped from outside (not failed) is run before the rollout fails.</summary>
    public const int MaxMigrationAttempts = 3;

    /// <summary>Why a migration container that ended non-zero failed the rollout, in words that point at the fix.</summary>
    public static string MigrationFailure(ObservedContainer migration, DesiredStack desired)
    {
        if (migration.OomKilled)
        {
            var limit = desired.Spec.App.Resources?.Memory;
            return limit is null
                ? $"migration was killed for running out of memory (exit {migration.ExitCode})"
                : $"migration was killed for running out of memory: it needs more than spec.app.resources.memory ({limit})";
        }

        return migration.StoppedFromOutside
            ? $"migration was stopped from outside {migration.Attempt} times (last exit code {migration.ExitCode}); it was not re-run again"
            : $"migration exited with code {migration.ExitCode}";
    }

    /// <summary>The longest a database or cache may take to become healthy when the progress deadline is shorter.</summary>
    public static readonly TimeSpan DataHealthBackstop = TimeSpan.FromMinutes(2);

    /// <summary>
    /// The next steps from here. Actions before the first wait (<see cref="StackAction.IsWait"/>) can be carried out now;
    /// a wait ends the reconcile, which comes back after <see cref="StackAction.RequeueAfter"/>; the actions after a
    /// wait are what will follow, for <c>skiff plan</c>.
    /// </summary>
    public static StackPlan Plan(DesiredStack desired, ObservedStack observed, IReadOnlyList<RevisionRecord> history, DateTimeOffset now)
    {
        var actions = new List<StackAction>();

        var foreign = observed.Containers.FirstOrDefault(c => c.Label(SkiffLabels.Source) != desired.Context.SourceId);
        if (foreign is not null)
        {
            actions.Add(new Blocked(Reasons.OwnedByAnotherSource, $"container {foreign.Name} belongs to another Skiff source ({foreign.Label(SkiffLabels.Source)}); rename this resource or remove the other one"));
            return new StackPlan(actions);
        }

        if (!observed.NetworkExists)
        {
            actions.Add(new CreateNetwork(desired.Names.Network));
        }

        PlanData(desired.Database, StackNames.DatabaseComponent, observed, actions);
        if (actions.OfType<Blocked>().Any())
        {
            return new StackPlan(actions);
        }

        PlanData(desired.Cache, StackNames.CacheComponent, observed, actions);
        if (PlanDataHealth(desired, observed, now, actions))
        {
            return new StackPlan(actions);
        }

        if (desired.Context.Proxy && !desired.Proxied && observed.Routes.Routes.Count > 0)
        {
            // The spec no longer publishes a host port: the proxy stops listening for it.
            actions.Add(new SwitchRoutes(0, [], "the spec publishes no host port any more"));
        }

        PlanApp(desired, observed, history, now, actions);
        return new StackPlan(StopPortHoldersFirst(desired, observed, HoistAppPull(actions)));
    }

    /// <summary>
    /// Waits for the database and the cache to be healthy. They are judged by their own Docker health checks (a
    /// start period, then failed checks make them unhealthy), bounded by <see cref="DataHealthBackstop"/> (or the
    /// progress deadline, if longer) from their creation. True when the stack cannot go on (a component failed).
    /// </summary>
    private static bool PlanDataHealth(DesiredStack desired, ObservedStack observed, DateTimeOffset now, List<StackAction> actions)
    {
        var wanted = new[] { desired.Database, desired.Cache }.OfType<DataComponent>().Select(c => c.Component).ToList();
        var limit = desired.ProgressDeadline > DataHealthBackstop ? desired.ProgressDeadline : DataHealthBackstop;
        var waiting = new List<string>();
        foreach (var component in wanted)
        {
            var starting = actions.Any(a => a is StartDataContainer s && s.Component.Component == component
                || a is StartExisting e && e.Container.Component == component);
            var c = observed.Component(component).FirstOrDefault(c => !actions.OfType<RemoveContainer>().Any(r => r.Container.Id == c.Id));
            if (starting || c is null)
            {
                waiting.Add(component);
                continue;
            }

            if (c is { Running: true, Health: "healthy" })
            {
                continue;
            }

            var why = c.Health == "unhealthy" ? "its health check failed"
                : now > c.Created + limit ? $"it was not healthy within {limit.TotalSeconds:0}s"
                : null;
            if (why is not null)
            {
                actions.Add(new DataNotReady(component, c, why));
                return true;
            }

            waiting.Add(component);
        }

        if (waiting.Count > 0)
        {
            actions.Add(new WaitHealthy(waiting));
        }

        return false;
    }

    /// <summary>
    /// Every image is pulled before the containers that need it start, side by side: the database's and the cache's
    /// (consecutive pulls run together, as the data containers do), and a new revision's app image with them when
    /// they are pulled too (a first deploy on a fresh host), as docker compose pulls every image at once. The
    /// revision then begins before the pulls, so that a missing app image fails that revision.
    /// </summary>
    private static List<StackAction> HoistAppPull(List<StackAction> actions)
    {
        var dataPulls = actions.OfType<EnsureImage>().Where(a => a.Component != StackNames.AppComponent).ToList();
        if (dataPulls.Count == 0)
        {
            return actions;
        }

        // Before the old data container is removed, too: a new database or cache image that cannot be pulled must
        // leave the running one in place, never a stack without its database.
        var at = actions.FindIndex(a => a is EnsureImage or StartDataContainer
            || a is RemoveContainer { Container.Component: StackNames.DatabaseComponent or StackNames.CacheComponent });
        var begin = actions.OfType<BeginRollout>().FirstOrDefault();
        var appPull = actions.OfType<EnsureImage>().FirstOrDefault(a => a.Component == StackNames.AppComponent && a.Revision is not null);
        StackAction?[] moved = [begin is not null && appPull is not null ? begin : null, .. dataPulls, appPull is not null && begin is not null ? appPull : null];
        var block = moved.OfType<StackAction>().ToList();
        actions.RemoveAll(block.Contains);
        actions.InsertRange(at, block);
        return actions;
    }

    private static void PlanData(DataComponent? want, string component, ObservedStack observed, List<StackAction> actions)
    {
        var existing = observed.Component(component).ToList();
        if (want is null)
        {
            // The component left the spec: stop its container; its volume stays (data is never dropped implicitly).
            actions.AddRange(existing.Select(c => new RemoveContainer(c, $"{component} removed from the spec; its volume is kept")));
            return;
        }

        if (want.Volume is { } volume)
        {
            var present = observed.Volumes.TryGetValue(volume, out var labels) && labels is not null;
            if (!present && want.Adopted)
            {
                actions.Add(new Blocked(Reasons.VolumeNotFound, $"spec.database.volume: volume \"{volume}\" does not exist on this node; create it or remove the field to let Skiff create one"));
                return;
            }

            if (!present)
            {
                actions.Add(new CreateVolume(volume, component));
            }
        }

        var current = existing.FirstOrDefault(c => c.SpecHash == want.ConfigHash && c.Name == want.Container.Name);
        foreach (var stale in existing.Where(c => c != current))
        {
            actions.Add(new RemoveContainer(stale, $"{component} settings changed"));
        }

        if (current is null)
        {
            // On a fresh host the image exists nowhere yet: Docker does not pull on create.
            actions.Add(new EnsureImage(want.Container.Image, PullPolicies.IfNotPresent, component));
            actions.Add(new StartDataContainer(want));
        }
        else if (!current.Running)
        {
            actions.Add(new StartExisting(current, $"{component} is {current.State}"));
        }
    }

    private static void PlanApp(DesiredStack desired, ObservedStack observed, IReadOnlyList<RevisionRecord> history, DateTimeOffset now, List<StackAction> actions)
    {
        var apps = observed.Component(StackNames.AppComponent).ToList();
        var migrations = observed.Component(StackNames.MigrateComponent).ToList();
        var record = history.LastOrDefault(h => h.SpecHash == desired.Hash);
        var lastGood = history.LastOrDefault(h => h.Outcome == Outcomes.Succeeded);
        if (record is not null && lastGood is not null && lastGood.Revision > record.Revision)
        {
            // A spec seen before, but another revision succeeded since (a revert): it is rolled out again as a new
            // revision, as a Deployment's rollout undo is, never by restarting the old revision's stopped container.
            record = null;
        }

        if (record?.Outcome is Outcomes.Failed or Outcomes.RolledBack)
        {
            PlanFailedSpec(desired, observed, apps, migrations, record, lastGood, actions);
            return;
        }

        var live = record is null
            ? null
            : apps.Where(c => c.SpecHash == desired.Hash && c.Revision == record.Revision && desired.RoutedAsWanted(c)).OrderByDescending(c => c.Revision).FirstOrDefault();
        if (record?.Outcome == Outcomes.Succeeded && live is not null)
        {
            if (!live.Running)
            {
                actions.Add(new StartExisting(live, $"app is {live.State}"));
            }
            else if (desired.Proxied && desired.RoutesTo(live) is { } routes && !observed.Routes.Match(routes))
            {
                // A lost routes file, a container that came back with a new address, the proxy just turned on.
                actions.Add(new SwitchRoutes(record.Revision, routes, "the routes did not lead to the live revision"));
            }

            var leftovers = apps.Where(c => c != live).Concat(migrations).ToList();
            if (leftovers.Count > 0)
            {
                actions.Add(new CompleteRollout(record.Revision, leftovers));
            }

            return;
        }

        // A new rollout, or one interrupted by a crash: reuse the revision the engine or the history already shows.
        var newest = NextRevision(history, observed) - 1;
        live = apps.Where(c => c.SpecHash == desired.Hash && c.Revision > (lastGood?.Revision ?? 0) && desired.RoutedAsWanted(c)).OrderByDescending(c => c.Revision).FirstOrDefault();
        var revision = live?.Revision
            ?? migrations.Where(m => m.SpecHash == desired.Hash && m.Revision > (lastGood?.Revision ?? 0)).Select(m => m.Revision).Max()
            ?? (record?.Outcome == Outcomes.Progressing ? record.Revision : (long?)null)
            ?? newest + 1;
        if (live is null && apps.Any(c => c.Revision == revision))
        {
            // That revision's container publishes its ports the other way (the node proxy was turned on or off): a new one.
            revision = newest + 1;
        }

        actions.Add(new BeginRollout(revision, desired.Hash, desired.Image));
        var name = desired.Names.AppContainer(revision);
        // Completing the rollout removes the other app containers and every migration container, this one's too.
        var others = apps.Where(c => c.Name != name).Concat(migrations).ToList();

        if (live is null)
        {
            actions.Add(new EnsureImage(desired.Image, desired.PullPolicy, StackNames.AppComponent, revision));
            if (desired.MigrateContainer(revision) is { } migrateSpec)
            {
                var migration = migrations.FirstOrDefault(m => m.Revision == revision && m.SpecHash == desired.Hash);
                if (migration is { Running: false, State: "exited" or "dead" } && migration.ExitCode != 0)
                {
                    if (migration.StoppedFromOutside && migration.Attempt < MaxMigrationAttempts)
                    {
                        // Stopped by the engine going down (or a reboot, or `docker stop`), not failed: run it again,
                        // as a Job re-runs a pod that was evicted. Migration tools are written to be re-run.
                        var next = migration.Attempt + 1;
                        actions.Add(new RemoveContainer(migration, $"its migration was stopped from outside (exit {migration.ExitCode}); running it again, attempt {next} of {MaxMigrationAttempts}"));
                        actions.Add(new RunMigration(revision, desired.MigrateContainer(revision, next)!, null));
                    }
                    else
                    {
                        actions.Add(new FailRollout(revision, Reasons.MigrationFailed, MigrationFailure(migration, desired), migration));
                        return;
                    }
                }
                else if (migration is { Running: true, StartedAt: { } began } && now > began + desired.MigrationTimeout)
                {
                    actions.Add(new StopContainer(migration, "it ran longer than migrate.timeoutSeconds"));
                    actions.Add(new FailRollout(revision, Reasons.MigrationFailed, $"migration did not finish within {desired.MigrationTimeout.TotalSeconds:0}s", migration));
                    return;
                }
                else if (migration is not { State: "exited", ExitCode: 0 })
                {
                    actions.Add(new RunMigration(revision, migrateSpec, migration));
                }
            }

            if (desired.StopFirst)
            {
                actions.AddRange(apps.Where(c => c.Running).Select(c => new StopContainer(c, "it publishes a host port the new revision needs")));
            }

            actions.Add(new StartApp(revision, desired.AppContainer(revision, desired.Image, rollback: false), Rollback: false));
            actions.Add(new WaitAppReady(revision, name, desired.ProgressDeadline));
            actions.Add(new CompleteRollout(revision, others));
            return;
        }

        if (!live.Running && live.State == "created")
        {
            // Created but never started: the process that created it died before starting it.
            if (desired.StopFirst)
            {
                actions.AddRange(apps.Where(c => c != live && c.Running).Select(c => new StopContainer(c, "it publishes a host port the new revision needs")));
            }

            actions.Add(new StartExisting(live, "created by an interrupted rollout"));
            actions.Add(new WaitAppReady(revision, name, desired.ProgressDeadline));
            actions.Add(new CompleteRollout(revision, others));
            return;
        }

        // The new revision's container exists: judge it, from what the engine and the probe show.
        if (live.State is "exited" or "dead" || live.RestartCount >= 2)
        {
            actions.Add(new FailRollout(revision, Reasons.ContainerExited, $"container {live.Name} exited with code {live.ExitCode} (restarted {live.RestartCount} times)", live));
            return;
        }

        var ready = desired.Health is null
            ? live is { Running: true, State: "running" } && now - (live.StartedAt ?? now) >= desired.MinReady
            : observed.PassedProbe.Contains(live.Id);
        // Once the proxy routes to it, the revision was judged ready: a later failed probe must not fail a revision that serves.
        ready |= desired.Proxied && desired.RoutesTo(live) is { } current && observed.Routes.Match(current);
        if (ready)
        {
            CompleteThroughProxy(desired, observed, live, revision, others, now, actions);
            return;
        }

        // From the start, not the creation: an operator that died between the two left a container created long before.
        if (now > (live.StartedAt ?? live.Created) + desired.ProgressDeadline)
        {
            var (reason, what) = desired.Health is { } hc
                ? (Reasons.HealthCheckFailed, $"GET {hc.Path} on port {hc.Port} did not succeed within the progress deadline ({desired.ProgressDeadline.TotalSeconds:0}s)")
                : (Reasons.ProgressDeadlineExceeded, $"the app did not stay running for {desired.MinReady.TotalSeconds:0}s within the progress deadline");
            actions.Add(new FailRollout(revision, reason, what, live));
            return;
        }

        actions.Add(new WaitAppReady(revision, name, desired.ProgressDeadline));
        actions.Add(new CompleteRollout(revision, others));
    }

    /// <summary>How long an old revision is kept past its drain when the node proxy does not confirm the new routes (it may be down).</summary>
    public static readonly TimeSpan ProxyApplyBackstop = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The new revision is ready. Without the proxy the rollout completes. With it, the routes switch to the new
    /// revision; the old one drains for rollout.drainSeconds from the switch (and until the proxy serves the new routes,
    /// bounded by <see cref="ProxyApplyBackstop"/>), then the rollout completes and removes it.
    /// </summary>
    private static void CompleteThroughProxy(
        DesiredStack desired, ObservedStack observed, ObservedContainer live, long revision, List<ObservedContainer> others, DateTimeOffset now, List<StackAction> actions)
    {
        var routes = desired.Proxied ? desired.RoutesTo(live) : null;
        if (routes is null)
        {
            actions.Add(new CompleteRollout(revision, others));
            return;
        }

        var serving = others.Any(c => c.Component == StackNames.AppComponent && c.Running);
        if (!observed.Routes.Match(routes))
        {
            actions.Add(new SwitchRoutes(revision, routes, "it passed its health check"));
            // With nothing serving before, the revision is not Ready until the proxy listens for it (a first deploy, a
            // proxy that just started): Ready means its ports answer.
            actions.Add(serving ? new DrainWait(revision, now + desired.Drain, ProxyBehind: false) : new DrainWait(revision, now, ProxyBehind: true));
            actions.Add(new CompleteRollout(revision, others));
            return;
        }

        var until = serving ? observed.Routes.Switched + desired.Drain : observed.Routes.Switched;
        if ((serving && now < until) || (!observed.RoutesApplied && now < until + ProxyApplyBackstop))
        {
            actions.Add(new DrainWait(revision, until, ProxyBehind: now >= until));
        }

        actions.Add(new CompleteRollout(revision, others));
    }

    /// <summary>
    /// No container that publishes host ports starts while another app container of the stack runs: that one holds
    /// the ports (Docker cannot move them), so it is stopped first, whatever led here (a rollout, a rollback, a
    /// restart after a crash between two steps).
    /// </summary>
    private static List<StackAction> StopPortHoldersFirst(DesiredStack desired, ObservedStack observed, List<StackAction> actions)
    {
        if (!desired.StopFirst)
        {
            return actions;
        }

        var result = new List<StackAction>(actions.Count);
        var stopped = new HashSet<string>(StringComparer.Ordinal);
        foreach (var action in actions)
        {
            if (action is StopContainer or RemoveContainer)
            {
                stopped.Add(action is StopContainer s ? s.Container.Id : ((RemoveContainer)action).Container.Id);
            }

            var starting = action switch
            {
                StartApp a => a.Spec.Name,
                StartExisting e when e.Container.Component == StackNames.AppComponent => e.Container.Name,
                _ => null,
            };
            if (starting is not null)
            {
                foreach (var holder in observed.Component(StackNames.AppComponent).Where(c => c.Running && c.Name != starting && !stopped.Contains(c.Id)))
                {
                    result.Add(new StopContainer(holder, $"it holds the host ports {starting} publishes"));
                    stopped.Add(holder.Id);
                }
            }

            result.Add(action);
        }

        return result;
    }

    /// <summary>The spec failed before: serve the last good image, never retry until the spec changes.</summary>
    private static void PlanFailedSpec(
        DesiredStack desired,
        ObservedStack observed,
        List<ObservedContainer> apps,
        List<ObservedContainer> migrations,
        RevisionRecord failed,
        RevisionRecord? lastGood,
        List<StackAction> actions)
    {
        if (!desired.AutoRollback)
        {
            // Without autoRollback the failed revision is left as it is, for someone to look at.
            return;
        }

        var failedLeftovers = apps.Where(c => c.Revision == failed.Revision && c.Label(SkiffLabels.Rollback) != "true")
            .Concat(migrations).ToList();
        var serving = lastGood is null ? null : apps.Where(c => c.Revision == lastGood.Revision).OrderByDescending(c => c.Running).FirstOrDefault();
        if (desired.Proxied && serving is { Running: true } && desired.RoutesTo(serving) is { } back && !observed.Routes.Match(back))
        {
            // A rollback is a switch back, before the failed revision goes.
            actions.Add(new SwitchRoutes(lastGood!.Revision, back, $"revision {failed.Revision} failed"));
        }

        actions.AddRange(failedLeftovers.Select(c => new RemoveContainer(c, $"revision {failed.Revision} failed")));
        if (lastGood?.Image is not { } goodImage)
        {
            return;
        }

        if (serving is null)
        {
            actions.Add(new EnsureImage(goodImage, PullPolicies.IfNotPresent, StackNames.AppComponent));
            actions.Add(new StartApp(lastGood.Revision, desired.AppContainer(lastGood.Revision, goodImage, rollback: true), Rollback: true));
        }
        else if (!serving.Running)
        {
            actions.Add(new StartExisting(serving, $"roll back to revision {lastGood.Revision}"));
        }

        actions.AddRange(apps
            .Where(c => c != serving && !failedLeftovers.Contains(c))
            .Select(c => new RemoveContainer(c, "not the last good revision")));
    }

    private static long NextRevision(IReadOnlyList<RevisionRecord> history, ObservedStack observed) =>
        Math.Max(
            history.Select(h => h.Revision).DefaultIfEmpty(0).Max(),
            observed.Containers.Select(c => c.Revision ?? 0).DefaultIfEmpty(0).Max()) + 1;
}
