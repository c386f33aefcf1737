using System.Globalization;
using Microsoft.Extensions.Logging;
using Skiff.Api;
using Skiff.Docker;

namespace Skiff.Reconcile;

public sealed partial class StackReconciler
{
    // As often as docker-compose polls health: a rollout's speed is mostly how soon a change is noticed.
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan AppStopTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan DatabaseStopTimeout = TimeSpan.FromSeconds(60);

    /// <summary>The longest a database or cache may take to become healthy when the progress deadline is shorter.</summary>
    private static readonly TimeSpan DataHealthBackstop = TimeSpan.FromMinutes(2);

    /// <summary>Carries out plans for one reconcile and keeps the status up to date as it goes.</summary>
    private sealed class RolloutRun(
        StackReconciler owner,
        DesiredStack desired,
        AppDeploymentStatus status,
        long? generation,
        Func<AppDeploymentStatus, CancellationToken, Task>? publish)
    {
        private readonly DockerEngine engine = owner.engine;
        private readonly ILogger logger = owner.logger;

        /// <summary>Held from the first pull or container start until the next wait, so GC does not delete those images meanwhile.</summary>
        private ImageGC.ImageEngineLock.UseLease? imageLease;

        /// <summary>Pulls that failed in this reconcile: a plan that comes round again does not pull them twice.</summary>
        private readonly Dictionary<string, ImageUnavailableException> pullFailures = new(StringComparer.Ordinal);

        /// <summary>The migration container this run created and saw exit 0, until the rollout completes.</summary>
        private (long Revision, string Id)? migrationRun;

        public DesiredStack Desired => desired;

        public AppDeploymentStatus Status => status;

        public long? Generation => generation;

        /// <summary>A failure message from this run, kept for the Stalled condition.</summary>
        public string? FailureMessage { get; private set; }

        public async Task<(StackResult? Stop, bool Acted)> ExecuteAsync(StackPlan plan, ObservedStack observed, CancellationToken ct)
        {
            // New rollouts wait while the disk guard is up; rollbacks and restarts of what exists go on.
            if (owner.DiskGuard is { IsRaised: true } guard && plan.Actions.Any(a => a is BeginRollout))
            {
                logger.LogWarning("{Stack}: not starting a rollout under disk pressure: {Message}", desired.Names.Key, guard.Message);
                return (owner.WaitForDisk(status, generation, guard.Message), false);
            }

            try
            {
                return await ExecuteActionsAsync(plan, ct);
            }
            finally
            {
                ReleaseImages();
            }
        }

        private async Task<(StackResult? Stop, bool Acted)> ExecuteActionsAsync(StackPlan plan, CancellationToken ct)
        {
            var images = plan.Actions.Select(ImageUsedBy).OfType<string>().Where(i => i.Length > 0).Distinct(StringComparer.Ordinal).ToList();
            var started = new HashSet<StackAction>();
            foreach (var action in plan.Actions)
            {
                if (action is WaitHealthy or WaitAppReady)
                {
                    // The containers exist now: the engine itself refuses to remove their images.
                    ReleaseImages();
                }
                else if (ImageUsedBy(action) is not null)
                {
                    imageLease ??= await owner.EngineLock.EnterUseAsync(images, ct);
                }

                if (started.Contains(action))
                {
                    continue;
                }

                if (action is EnsureImage)
                {
                    // Images are pulled side by side (DESIGN §3: the database and the cache in parallel; a first deploy's app too).
                    var pulls = plan.Actions.SkipWhile(a => a != action).TakeWhile(a => a is EnsureImage).Cast<EnsureImage>().ToList();
                    foreach (var p in pulls)
                    {
                        logger.LogInformation("{Stack}: {Action}", desired.Names.Key, p.Describe());
                        started.Add(p);
                    }

                    if (await EnsureImagesAsync(pulls, ct) is { } outcome)
                    {
                        return outcome;
                    }

                    continue;
                }

                if (action is StartDataContainer)
                {
                    // The database and the cache start side by side (DESIGN §3): consecutive StartDataContainer actions run together.
                    var batch = plan.Actions.SkipWhile(a => a != action).TakeWhile(a => a is StartDataContainer).Cast<StartDataContainer>().ToList();
                    foreach (var b in batch)
                    {
                        logger.LogInformation("{Stack}: {Action}", desired.Names.Key, b.Describe());
                        started.Add(b);
                    }

                    var results = await Task.WhenAll(batch.Select(b => StartDataAsync(b.Component, ct)));
                    if (results.FirstOrDefault(r => r is not null) is { } stalled)
                    {
                        return (stalled, false);
                    }

                    continue;
                }

                logger.LogInformation("{Stack}: {Action}", desired.Names.Key, action.Describe());
                switch (action)
                {
                    case Blocked blocked:
                        return (owner.Stalled(status, generation, blocked.Reason, blocked.Message, TimeSpan.FromSeconds(30)), false);
                    case CreateNetwork n:
                        await engine.CreateNetworkAsync(n.Name, desired.Labels("network"), ct);
                        break;
                    case CreateVolume v:
                        await engine.CreateVolumeAsync(v.Name, desired.Labels(v.Component), ct);
                        owner.events.Record(desired.Resource, EventKind.Normal, "VolumeCreated", $"Created volume {v.Name} for the {v.Component}");
                        break;
                    case RemoveContainer r:
                        await RemoveAsync(r.Container, ct);
                        break;
                    case StopContainer s:
                        await StopForReplacementAsync(s, ct);
                        break;
                    case StartExisting s:
                        await engine.StartContainerAsync(s.Container.Id, ct);
                        break;
                    case WaitHealthy w:
                        if (await WaitHealthyAsync(w.Components, ct) is { } notHealthy)
                        {
                            return (notHealthy, false);
                        }

                        break;
                    case BeginRollout b:
                        await BeginAsync(b, ct);
                        break;
                    case RunMigration m:
                        if (!await MigrateAsync(m, ct))
                        {
                            return (null, true);
                        }

                        break;
                    case StartApp a:
                        await CreateAndStartAsync(a.Spec, ct);
                        break;
                    case WaitAppReady w:
                        if (!await WaitReadyAsync(w, ct))
                        {
                            return (null, true);
                        }

                        break;
                    case CompleteRollout c:
                        await CompleteAsync(c, ct);
                        break;
                    case FailRollout f:
                        await FailAsync(f.Revision, f.Reason, f.Message, f.Culprit?.Id, ct);
                        return (null, true);
                    default:
                        throw new InvalidOperationException($"unknown action {action.GetType().Name}");
                }
            }

            return (null, true);
        }

        private void ReleaseImages()
        {
            imageLease?.Dispose();
            imageLease = null;
        }

        private async Task RemoveAsync(ObservedContainer container, CancellationToken ct)
        {
            var timeout = container.Component == StackNames.DatabaseComponent ? DatabaseStopTimeout : AppStopTimeout;
            if (container.Running)
            {
                await engine.StopContainerAsync(container.Id, timeout, ct);
            }

            await engine.RemoveContainerAsync(container.Id, ct);
        }

        private async Task<string> CreateAndStartAsync(ContainerSpec spec, CancellationToken ct)
        {
            var existing = await engine.InspectContainerAsync(spec.Name, ct);
            var id = existing?.Id ?? await engine.CreateContainerAsync(spec, ct);
            if (existing is not { Running: true })
            {
                await engine.StartContainerAsync(id, ct);
            }

            return id;
        }

        private async Task<StackResult?> StartDataAsync(DataComponent component, CancellationToken ct)
        {
            var id = await engine.CreateContainerAsync(component.Container, ct);
            if (component.Component == StackNames.DatabaseComponent)
            {
                var dataVersion = (await engine.ReadFileAsync(id, "/var/lib/postgresql/data/PG_VERSION", ct))?.Trim();
                var imageMajor = await PostgresMajorAsync(component.Container.Image, ct);
                if (dataVersion is { Length: > 0 } && imageMajor is not null && dataVersion != imageMajor)
                {
                    await engine.RemoveContainerAsync(id, ct);
                    var message = $"spec.database.image: the data volume {component.Volume} holds PostgreSQL {dataVersion} data but {component.Container.Image} is PostgreSQL {imageMajor}; " +
                        $"use a {dataVersion}.x image, or dump the data with pg_dump and restore it into a new volume";
                    return owner.Stalled(status, generation, "DatabaseVersionMismatch", message, TimeSpan.FromMinutes(1));
                }
            }

            await engine.StartContainerAsync(id, ct);
            owner.events.Record(desired.Resource, EventKind.Normal, component.Component == StackNames.DatabaseComponent ? "DatabaseStarted" : "CacheStarted",
                $"Started {component.Container.Name} ({component.Container.Image})");
            return null;
        }

        /// <summary>The image's PostgreSQL major version: PG_MAJOR as the official images set it, else the tag.</summary>
        private async Task<string?> PostgresMajorAsync(string image, CancellationToken ct)
        {
            var inspected = await engine.InspectImageAsync(image, ct);
            var env = inspected?.Env.FirstOrDefault(e => e.StartsWith("PG_MAJOR=", StringComparison.Ordinal));
            if (env is not null)
            {
                return env["PG_MAJOR=".Length..];
            }

            var tag = ImageReference.SplitForPull(image).Tag;
            var digits = new string(tag.TakeWhile(char.IsDigit).ToArray());
            return digits.Length > 0 ? digits : null;
        }

        /// <summary>
        /// Waits for the database and cache to report healthy. They are judged by their own Docker health checks
        /// (a start period, then a few failed checks make them unhealthy), not by the app's progress deadline, which
        /// counts from the app's start; <see cref="DataHealthBackstop"/> (or the progress deadline, if longer) from
        /// each container's creation bounds the wait all the same.
        /// </summary>
        private async Task<StackResult?> WaitHealthyAsync(IReadOnlyList<string> components, CancellationToken ct)
        {
            var limit = desired.ProgressDeadline > DataHealthBackstop ? desired.ProgressDeadline : DataHealthBackstop;
            var waitStarted = owner.time.GetUtcNow();
            while (true)
            {
                var inspected = await Task.WhenAll(components.Select(component => engine.InspectContainerAsync(
                    component == StackNames.DatabaseComponent ? desired.Names.DatabaseContainer : desired.Names.CacheContainer, ct)));
                var states = components.Zip(inspected).ToDictionary(p => p.First, p => p.Second);

                SetDataConditions(states);
                if (states.Values.All(c => c is { Running: true, Health: "healthy" }))
                {
                    return null;
                }

                var now = owner.time.GetUtcNow();
                var failed = states.FirstOrDefault(kv => kv.Value is { State: "exited" or "dead" } or { Health: "unhealthy" }
                    || now > (kv.Value?.Created ?? waitStarted) + limit);
                if (failed.Key is not null && failed.Value is not { Running: true, Health: "healthy" })
                {
                    var bad = failed;
                    var logs = bad.Value is null ? "" : await TailAsync(bad.Value.Id, ct);
                    var reason = bad.Key == StackNames.DatabaseComponent ? "DatabaseNotReady" : "CacheNotReady";
                    var why = bad.Value is { Health: "unhealthy" } ? "its health check failed" : bad.Value is { State: "exited" or "dead" } ? "it stopped" : $"it was not healthy within {limit.TotalSeconds:0}s";
                    var message = $"the {bad.Key} did not become healthy: {why} (state {bad.Value?.State ?? "missing"}, health {bad.Value?.Health ?? "none"}){logs}";
                    var result = owner.Stalled(status, generation, reason, message, TimeSpan.FromSeconds(15));
                    result.Status.Phase = status.History?.Any(h => h.Outcome == Outcomes.Succeeded) == true ? Phases.Degraded : Phases.Failed;
                    return result;
                }

                await Task.Delay(PollInterval, owner.time, ct);
            }
        }

        private void SetDataConditions(IReadOnlyDictionary<string, ObservedContainer?> states)
        {
            var now = owner.time.GetUtcNow();
            foreach (var (component, c) in states)
            {
                var type = component == StackNames.DatabaseComponent ? ConditionTypes.DatabaseReady : ConditionTypes.CacheReady;
                var healthy = c is { Running: true, Health: "healthy" };
                Conditions.Set(status, type, healthy, healthy ? "Healthy" : "NotHealthy",
                    healthy ? $"{component} is healthy" : $"{component} is {c?.State ?? "missing"} (health {c?.Health ?? "none"})", generation, now);
            }
        }

        private async Task BeginAsync(BeginRollout begin, CancellationToken ct)
        {
            status.History ??= [];
            var record = status.History.LastOrDefault(h => h.Revision == begin.Revision && h.SpecHash == begin.Hash);
            if (record is not null && record.Outcome == Outcomes.Progressing)
            {
                return;
            }

            status.History.Add(new RevisionRecord
            {
                Revision = begin.Revision,
                SpecHash = begin.Hash,
                Image = begin.Image,
                DeployedAt = owner.time.GetUtcNow(),
                Outcome = Outcomes.Progressing,
            });
            var now = owner.time.GetUtcNow();
            status.ObservedGeneration = generation;
            status.Phase = Phases.Progressing;
            var message = $"Rolling out revision {begin.Revision} ({begin.Image})";
            Conditions.Set(status, ConditionTypes.Reconciling, true, "RolloutInProgress", message, generation, now);
            Conditions.Set(status, ConditionTypes.Stalled, false, "RolloutInProgress", message, generation, now);
            if (!Conditions.IsTrue(status, ConditionTypes.Ready))
            {
                Conditions.Set(status, ConditionTypes.Ready, false, "RolloutInProgress", message, generation, now);
            }

            if (publish is not null)
            {
                await publish(status, ct);
            }
        }

        /// <summary>
        /// Pulls the images side by side, each per its policy. Returns null when every image is present; otherwise
        /// what the reconcile ends with: a new revision whose app image does not exist fails (as a migration that
        /// fails does); any other failed pull stalls the stack and is retried later, never endlessly in silence.
        /// </summary>
        private async Task<(StackResult? Stop, bool Acted)?> EnsureImagesAsync(IReadOnlyList<EnsureImage> pulls, CancellationToken ct)
        {
            var failures = (await Task.WhenAll(pulls.Select(p => EnsureImageAsync(p, ct))))
                .Zip(pulls)
                .Where(r => r.First is not null)
                .Select(r => (Pull: r.Second, Failure: r.First!))
                .ToList();
            if (failures.Count == 0)
            {
                return null;
            }

            // A new revision's app image that does not exist fails that revision (ImageNotFound; rollback), as DESIGN §1 says.
            if (failures.FirstOrDefault(f => f.Pull is { Component: StackNames.AppComponent, Revision: not null } && f.Failure.NotFound) is { Pull: not null } missing)
            {
                await FailAsync(missing.Pull.Revision!.Value, "ImageNotFound", missing.Failure.Message + CredentialsHint(missing.Failure.Message, missing.Pull.Image), null, ct);
                return (null, true);
            }

            // Anything else waits for the world to change (the image pushed, the registry back, the Secret fixed).
            var first = failures[0];
            var reason = first.Failure.NotFound ? "ImageNotFound" : "ImagePullFailed";
            var retry = first.Failure.NotFound ? TimeSpan.FromMinutes(2) : TimeSpan.FromSeconds(30);
            var whose = first.Pull.Component == StackNames.AppComponent ? "spec.app.image" : $"spec.{first.Pull.Component}.image";
            var message = $"{whose}: {first.Failure.Message}{CredentialsHint(first.Failure.Message, first.Pull.Image)}; retrying every {retry.TotalSeconds:0}s" +
                string.Concat(failures.Skip(1).Select(f => $"; also {f.Failure.Message}"));
            var stalled = owner.Stalled(status, generation, reason, message, retry);
            stalled.Status.Phase = status.History?.Any(h => h.Outcome == Outcomes.Succeeded) == true ? Phases.Degraded : Phases.Failed;
            return (stalled, false);
        }

        /// <summary>Makes one image present per its policy; null when it is, else why not (remembered for this reconcile).</summary>
        private async Task<ImageUnavailableException?> EnsureImageAsync(EnsureImage ensure, CancellationToken ct)
        {
            if (pullFailures.TryGetValue(ensure.Image, out var known))
            {
                return known;
            }

            var present = await engine.InspectImageAsync(ensure.Image, ct) is not null;
            if (ensure.Policy == PullPolicies.Never && !present)
            {
                return new ImageUnavailableException(ensure.Image, $"image {ensure.Image} is not on this node and imagePullPolicy is Never", notFound: true);
            }

            if (ensure.Policy != PullPolicies.Always && present)
            {
                return null;
            }

            var failure = await PullAsync(ensure.Image, ct);
            if (failure is not null && present)
            {
                // Always with a local copy: keep going with what is here rather than fail on a registry hiccup.
                logger.LogWarning("{Stack}: {Message}; using the local copy", desired.Names.Key, failure.Message);
                return null;
            }

            if (failure is not null)
            {
                pullFailures[ensure.Image] = failure;
            }

            return failure;
        }

        /// <summary>One pull, bounded by the pull timeout, with credentials for the image's registry, watched by the listeners.</summary>
        private async Task<ImageUnavailableException?> PullAsync(string image, CancellationToken ct)
        {
            var stack = desired.Names.Key;
            var listener = owner.pulls;
            var started = owner.time.GetTimestamp();
            listener?.Started(stack, image);
            owner.events.Record(desired.Resource, EventKind.Normal, "Pulling", $"Pulling image {image}");
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(owner.context.PullTimeout);
            PullProgress? last = null;
            var progress = new InlineProgress<PullProgress>(p =>
            {
                last = p;
                listener?.Progress(stack, p);
            });
            string result;
            ImageUnavailableException? failure = null;
            long bytes = 0;
            try
            {
                bytes = await engine.PullImageAsync(image, desired.PullAuthFor(image), progress, timeout.Token);
                result = PullResults.Success;
            }
            catch (ImageUnavailableException e)
            {
                failure = e;
                result = e.NotFound ? PullResults.NotFound : PullResults.Failed;
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                var sofar = last is { Total: > 0 } p ? $" ({PullLog.Bytes(p.Done)} of {PullLog.Bytes(p.Total)} downloaded)" : "";
                failure = new ImageUnavailableException(image,
                    $"pulling {image} did not finish within the pull timeout of {owner.context.PullTimeout.TotalSeconds:0}s{sofar}; raise it with --pull-timeout", notFound: false);
                result = PullResults.Timeout;
            }

            var elapsed = owner.time.GetElapsedTime(started);
            listener?.Finished(new PullResult(stack, image, result, bytes, elapsed, failure?.Message));
            if (failure is null)
            {
                owner.events.Record(desired.Resource, EventKind.Normal, "Pulled",
                    $"Pulled image {image} in {elapsed.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture)}s ({PullLog.Bytes(bytes)})");
            }

            return failure;
        }

        /// <summary>
        /// Stop-first: the old revision stops so the new one can bind its host port. Nothing serves until the new
        /// one is ready, and the status says so at once (Ready False, reason Replacing).
        /// </summary>
        private async Task StopForReplacementAsync(StopContainer stop, CancellationToken ct)
        {
            var now = owner.time.GetUtcNow();
            var message = $"revision {stop.Container.Revision} is stopped to free its host port for revision {CurrentRevision()}; nothing serves until that one is ready";
            Conditions.Set(status, ConditionTypes.Ready, false, "Replacing", message, generation, now);
            Conditions.Set(status, ConditionTypes.AppReady, false, "Replacing", message, generation, now);
            status.Phase = Phases.Progressing;
            if (publish is not null)
            {
                await publish(status, ct);
            }

            await engine.StopContainerAsync(stop.Container.Id, AppStopTimeout, ct);
        }

        /// <summary>When the registry refused for want of (good) credentials, what to fix.</summary>
        private string CredentialsHint(string message, string image)
        {
            string[] refusals = ["unauthorized", "no basic auth credentials", "authentication required", "access denied", "denied:"];
            if (!refusals.Any(r => message.Contains(r, StringComparison.OrdinalIgnoreCase)))
            {
                return "";
            }

            var registry = DockerConfigJson.Registry(image);
            return desired.Spec.App.ImagePullSecret is { Length: > 0 } secret
                ? $"; the registry refused the credentials of spec.app.imagePullSecret (Secret \"{secret}\"): check its username and password for {registry}"
                : $"; the registry wants credentials: set spec.app.imagePullSecret to a kubernetes.io/dockerconfigjson Secret with a login for {registry}";
        }

        private async Task<bool> MigrateAsync(RunMigration migration, CancellationToken ct)
        {
            var id = migration.Existing?.Id;
            if (id is null)
            {
                id = await engine.CreateContainerAsync(migration.Spec, ct);
            }

            if (migration.Existing is not { Running: true })
            {
                await engine.StartContainerAsync(id, ct);
            }

            long exit;
            using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct))
            {
                timeout.CancelAfter(desired.MigrationTimeout);
                try
                {
                    exit = await engine.WaitContainerAsync(id, timeout.Token);
                }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                {
                    await engine.StopContainerAsync(id, TimeSpan.FromSeconds(5), ct);
                    await FailAsync(migration.Revision, "MigrationFailed", $"migration did not finish within {desired.MigrationTimeout.TotalSeconds:0}s", id, ct);
                    return false;
                }
            }

            var now = owner.time.GetUtcNow();
            if (exit != 0)
            {
                // Look before judging: when the engine shuts down it stops the migration (exit 143) and this
                // throws EngineUnreachable; a migration stopped from outside is re-run by the next plan.
                var ended = await engine.InspectContainerAsync(id, ct);
                if (ended is { StoppedFromOutside: true } && ended.Attempt < StackPlanner.MaxMigrationAttempts)
                {
                    logger.LogWarning("{Stack}: migration of revision {Revision} was stopped from outside (exit {Exit}); it will run again",
                        desired.Names.Key, migration.Revision, exit);
                    return false;
                }

                var message = ended is null ? $"migration exited with code {exit}" : StackPlanner.MigrationFailure(ended, desired);
                await FailAsync(migration.Revision, "MigrationFailed", message, id, ct);
                return false;
            }

            Conditions.Set(status, ConditionTypes.Migrated, true, "MigrationSucceeded", $"migration of revision {migration.Revision} exited 0", generation, now);
            migrationRun = (migration.Revision, id);
            return true;
        }

        private async Task<bool> WaitReadyAsync(WaitAppReady wait, CancellationToken ct)
        {
            var health = desired.Health;
            DateTimeOffset? healthySince = null;
            while (true)
            {
                var c = await engine.InspectContainerAsync(wait.ContainerName, ct);
                var now = owner.time.GetUtcNow();
                if (c is null)
                {
                    await FailAsync(wait.Revision, "ContainerExited", $"container {wait.ContainerName} disappeared during the rollout", null, ct);
                    return false;
                }

                if (c.State is "exited" or "dead" || c.RestartCount >= 2)
                {
                    await FailAsync(wait.Revision, "ContainerExited",
                        $"container {c.Name} exited with code {c.ExitCode} (restarted {c.RestartCount} times)", c.Id, ct);
                    return false;
                }

                if (c.Running && c.State == "running")
                {
                    if (health is { } h)
                    {
                        if (await owner.ProbeAsync(c, h.Port, h.Path, ct))
                        {
                            return true;
                        }
                    }
                    else
                    {
                        healthySince ??= c.StartedAt ?? now;
                        if (now - healthySince >= desired.MinReady)
                        {
                            return true;
                        }
                    }
                }

                if (now > c.Created + wait.ProgressDeadline)
                {
                    var reason = health is null ? "ProgressDeadlineExceeded" : "HealthCheckFailed";
                    var what = health is { } hh
                        ? $"GET {hh.Path} on port {hh.Port} did not succeed within the progress deadline ({desired.ProgressDeadline.TotalSeconds:0}s)"
                        : $"the app did not stay running for {desired.MinReady.TotalSeconds:0}s within the progress deadline";
                    await FailAsync(wait.Revision, reason, what, c.Id, ct);
                    return false;
                }

                await Task.Delay(PollInterval, owner.time, ct);
            }
        }

        private async Task CompleteAsync(CompleteRollout complete, CancellationToken ct)
        {
            // Side by side: the old app's graceful stop need not wait for the migration container's removal.
            var removals = complete.Leftovers.Select(c => RemoveAsync(c, ct)).ToList();
            if (migrationRun is { } migrated && migrated.Revision == complete.Revision && complete.Leftovers.All(c => c.Id != migrated.Id))
            {
                // Created in this reconcile, after the plan observed the engine: removed now rather than by another round.
                removals.Add(engine.RemoveContainerAsync(migrated.Id, ct));
            }

            await Task.WhenAll(removals);
            migrationRun = null;

            var record = status.History?.LastOrDefault(h => h.Revision == complete.Revision);
            if (record is { Outcome: Outcomes.Progressing })
            {
                var live = await engine.InspectContainerAsync(desired.Names.AppContainer(complete.Revision), ct);
                var image = live is null ? null : await engine.InspectImageAsync(live.ImageId, ct);
                record.Outcome = Outcomes.Succeeded;
                record.ImageId = live?.ImageId;
                record.Image = PreferDigest(desired.Image, image);
                status.LastGoodImage = record.Image;
                status.Revision = record.Revision;
                TrimHistory();
                var elapsed = owner.time.GetUtcNow() - (record.DeployedAt ?? owner.time.GetUtcNow());
                owner.RolloutCompleted?.Invoke(desired, record, elapsed);
            }
        }

        private async Task FailAsync(long revision, string reason, string message, string? culpritId, CancellationToken ct)
        {
            var logs = culpritId is null ? "" : await TailAsync(culpritId, ct);
            var lastGood = status.History?.LastOrDefault(h => h.Outcome == Outcomes.Succeeded);
            var rolledBack = desired.AutoRollback && lastGood is not null;
            status.History ??= [];
            var record = status.History.LastOrDefault(h => h.Revision == revision && h.SpecHash == desired.Hash);
            if (record is null)
            {
                record = new RevisionRecord { Revision = revision, SpecHash = desired.Hash, Image = desired.Image, DeployedAt = owner.time.GetUtcNow() };
                status.History.Add(record);
            }

            record.Outcome = rolledBack ? Outcomes.RolledBack : Outcomes.Failed;
            record.Reason = reason;
            var full = $"revision {revision} ({desired.Image}) failed: {message}" +
                (rolledBack ? $"; rolled back to revision {lastGood!.Revision} ({lastGood.Image})" : "") + logs;
            FailureMessage = full;
            TrimHistory();
            var now = owner.time.GetUtcNow();
            Conditions.Set(status, ConditionTypes.Stalled, true, reason, full, generation, now);
            Conditions.Set(status, ConditionTypes.Ready, false, reason, full, generation, now);
            if (reason == "MigrationFailed")
            {
                Conditions.Set(status, ConditionTypes.Migrated, false, reason, message, generation, now);
            }

            logger.LogWarning("{Stack}: rollout of revision {Revision} failed ({Reason}): {Message}", desired.Names.Key, revision, reason, message);
            owner.RolloutFailed?.Invoke(desired, record, reason);
        }

        private async Task<string> TailAsync(string containerId, CancellationToken ct)
        {
            var text = await engine.LogsAsync(containerId, 20, ct);
            text = SecretMasker.Apply(text, desired.SecretValues).Trim();
            if (text.Length == 0)
            {
                return "";
            }

            if (text.Length > 2000)
            {
                text = "…" + text[^2000..];
            }

            return "; last log lines:\n" + text;
        }

        private long CurrentRevision() => status.History?.LastOrDefault(h => h.SpecHash == desired.Hash)?.Revision ?? 0;

        /// <summary>Keeps the newest revisionHistoryLimit+1 revisions, and always the last good one (rollbacks need it).</summary>
        private void TrimHistory()
        {
            if (status.History is not { } history)
            {
                return;
            }

            var keep = desired.RevisionHistoryLimit + 1;
            var lastGood = history.LastOrDefault(h => h.Outcome == Outcomes.Succeeded);
            var newest = history.OrderByDescending(h => h.Revision).Take(keep).ToHashSet();
            history.RemoveAll(h => !newest.Contains(h) && h != lastGood);
        }
    }

    /// <summary>A reference to the image by digest when the engine knows one, else as written.</summary>
    internal static string PreferDigest(string reference, ObservedImage? image)
    {
        if (reference.Contains('@', StringComparison.Ordinal) || image is null)
        {
            return reference;
        }

        var repository = ImageReference.Repository(reference);
        return image.RepoDigests.FirstOrDefault(d => d.StartsWith(repository + "@", StringComparison.Ordinal)) ?? reference;
    }
}
