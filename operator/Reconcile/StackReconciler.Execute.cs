using System.Globalization;
using Microsoft.Extensions.Logging;
using Skiff.Api;
using Skiff.Observability;
using Skiff.Validation;

namespace Skiff.Reconcile;

public sealed partial class StackReconciler
{
    private static readonly TimeSpan AppStopTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan DatabaseStopTimeout = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Carries out plans for one reconcile and keeps the status up to date as it goes. It never waits for the world:
    /// at the first wait of a plan it sets the status to what is awaited and ends the reconcile, which comes back.
    /// </summary>
    private sealed class RolloutRun(
        StackReconciler owner,
        DesiredStack desired,
        AppDeploymentStatus status,
        long? generation,
        Func<AppDeploymentStatus, CancellationToken, Task>? publish)
    {
        private readonly IContainerEngine engine = owner.engine;
        private readonly ILogger logger = owner.logger;

        /// <summary>Held from the first pull or container start until the next wait, so GC does not delete those images meanwhile.</summary>
        private ImageEngineLock.UseLease? imageLease;


        public DesiredStack Desired => desired;

        public AppDeploymentStatus Status => status;

        public long? Generation => generation;

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
                return await ExecuteActionsAsync(plan, observed, ct);
            }
            finally
            {
                ReleaseImages();
            }
        }

        private async Task<(StackResult? Stop, bool Acted)> ExecuteActionsAsync(StackPlan plan, ObservedStack observed, CancellationToken ct)
        {
            var images = plan.Actions.Select(ImageUsedBy).OfType<string>().Where(i => i.Length > 0).Distinct(StringComparer.Ordinal).ToList();
            var started = new HashSet<StackAction>();
            foreach (var action in plan.Actions)
            {
                if (action.IsWait)
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
                    case DataNotReady d:
                        return (await DataNotReadyAsync(d, ct), false);
                    case CreateNetwork n:
                        if (await CreateNetworkAsync(n, ct) is { } noSubnet)
                        {
                            return (noSubnet, false);
                        }

                        break;
                    case CreateVolume v:
                        await engine.CreateVolumeAsync(v.Name, desired.Labels(v.Component), ct);
                        owner.events.Record(desired.Resource, EventKind.Normal, Reasons.VolumeCreated, $"Created volume {v.Name} for the {v.Component}");
                        break;
                    case RemoveContainer r:
                        await RemoveAsync(r.Container, ct);
                        break;
                    case StopContainer s:
                        await StopForReplacementAsync(s, ct);
                        break;
                    case StartExisting s:
                        try
                        {
                            await engine.StartContainerAsync(s.Container.Id, ct);
                        }
                        catch (ContainerStartStuckException stuck)
                        {
                            // Nothing in a container is kept across its replacement but its volumes, which stay: the
                            // next planning round creates it again from the spec, as for one removed by hand.
                            logger.LogWarning("{Stack}: {Message}; replacing the container", desired.Names.Key, stuck.Message);
                            await RemoveAsync(s.Container, ct);
                            return (null, true);
                        }

                        break;
                    case WaitHealthy w:
                        SetDataConditions(w.Components.ToDictionary(c => c, c => observed.Component(c).FirstOrDefault()));
                        return (Waiting(w), false);
                    case BeginRollout b:
                        await BeginAsync(b, ct);
                        break;
                    case RunMigration m:
                        await StartMigrationAsync(m, ct);
                        return (Waiting(m), false);
                    case StartApp a:
                        if (!a.Rollback && desired.Spec.App.Migrate is not null)
                        {
                            // The plan only starts the new revision once its migration exited 0.
                            Conditions.Set(status, ConditionTypes.Migrated, true, Reasons.MigrationSucceeded, $"migration of revision {a.Revision} exited 0", generation, owner.time.GetUtcNow());
                        }

                        await CreateAndStartAsync(a.Spec, ct);
                        break;
                    case WaitAppReady w:
                        return (Waiting(w), false);
                    case SwitchRoutes r:
                        await owner.RoutesOrThrow.SetAsync(desired.Names.Key, r.Routes, ct);
                        break;
                    case DrainWait d:
                        return (Waiting(d), false);
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

        /// <summary>Creates the stack's network; when the node's network pool has no subnet left, the stack stalls (others go on) and retries.</summary>
        private async Task<StackResult?> CreateNetworkAsync(CreateNetwork create, CancellationToken ct)
        {
            try
            {
                await engine.CreateNetworkAsync(create.Name, desired.Labels("network"), ct);
                return null;
            }
            catch (NetworkPoolExhaustedException e)
            {
                logger.LogWarning("{Stack}: network {Network} not created: {Message}", desired.Names.Key, create.Name, e.Message);
                return owner.Stalled(status, generation, Reasons.NetworkPoolExhausted, $"network {create.Name}: {e.Message}", TimeSpan.FromSeconds(30));
            }
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
                    return owner.Stalled(status, generation, Reasons.DatabaseVersionMismatch, message, TimeSpan.FromMinutes(1));
                }
            }

            await engine.StartContainerAsync(id, ct);
            owner.events.Record(desired.Resource, EventKind.Normal, component.Component == StackNames.DatabaseComponent ? Reasons.DatabaseStarted : Reasons.CacheStarted,
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

        /// <summary>A database or cache that did not become healthy: the stack stalls with its state and last log lines.</summary>
        private async Task<StackResult> DataNotReadyAsync(DataNotReady d, CancellationToken ct)
        {
            SetDataConditions(new Dictionary<string, ObservedContainer?> { [d.Component] = d.Container });
            var logs = await TailAsync(d.Container.Id, ct);
            var message = $"the {d.Component} did not become healthy: {d.Why} (state {d.Container.State}, health {d.Container.Health ?? "none"}){logs}";
            var result = owner.Stalled(status, generation, d.Reason, message, TimeSpan.FromSeconds(15));
            result.Status.Phase = status.History?.Any(h => h.Outcome == Outcomes.Succeeded) == true ? Phases.Degraded : Phases.Failed;
            return result;
        }

        /// <summary>
        /// The end of this reconcile at a wait: the status says what is awaited, and the reconcile comes back after the
        /// wait's interval (nothing here blocks a worker while a migration runs or a container warms up).
        /// </summary>
        private StackResult Waiting(StackAction wait)
        {
            var now = owner.time.GetUtcNow();
            if (status.History?.LastOrDefault(h => h.SpecHash == desired.Hash)?.Outcome is Outcomes.Failed or Outcomes.RolledBack)
            {
                // The spec failed: no rollout is under way, whatever else still starts (its database, say); the
                // failure stays what the resource says until the spec changes.
                return new StackResult(status, wait.RequeueAfter);
            }

            status.ObservedGeneration = generation;
            status.Phase = Phases.Progressing;
            Conditions.Summarize(status, Summary.Progressing, Reasons.RolloutInProgress, wait.Waiting, generation, now);

            return new StackResult(status, wait.RequeueAfter);
        }

        private void SetDataConditions(IReadOnlyDictionary<string, ObservedContainer?> states)
        {
            var now = owner.time.GetUtcNow();
            foreach (var (component, c) in states)
            {
                var type = component == StackNames.DatabaseComponent ? ConditionTypes.DatabaseReady : ConditionTypes.CacheReady;
                var healthy = c is { Running: true, Health: "healthy" };
                Conditions.Set(status, type, healthy, healthy ? Reasons.Healthy : Reasons.NotHealthy,
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
            Conditions.Summarize(status, Summary.Progressing, Reasons.RolloutInProgress, $"Rolling out revision {begin.Revision} ({begin.Image})", generation, now);

            if (publish is not null)
            {
                await publish(status, ct);
            }
        }

        /// <summary>
        /// Makes the images present, each per its policy, pulling side by side in the background. Returns null when
        /// every image is present; otherwise how the reconcile ends: a wait while pulls run; a new revision whose app
        /// image does not exist fails (as a migration that fails does); any other failed pull stalls the stack and is
        /// tried again later, never endlessly in silence.
        /// </summary>
        private async Task<(StackResult? Stop, bool Acted)?> EnsureImagesAsync(IReadOnlyList<EnsureImage> pulls, CancellationToken ct)
        {
            var outcomes = await Task.WhenAll(pulls.Select(p => EnsureImageAsync(p, ct)));
            var failures = outcomes.Zip(pulls).Where(r => r.First.Failure is not null).Select(r => (Pull: r.Second, Failure: r.First.Failure!)).ToList();
            if (failures.Count == 0)
            {
                return outcomes.Any(o => o.Pulling) ? (Waiting(new PullWait(pulls.Where((_, i) => outcomes[i].Pulling).Select(p => p.Image).ToList())), false) : null;
            }

            // A new revision's app image that does not exist fails that revision (ImageNotFound; rollback), as DESIGN §1 says.
            if (failures.FirstOrDefault(f => f.Pull is { Component: StackNames.AppComponent, Revision: not null } && f.Failure.NotFound) is { Pull: not null } missing)
            {
                await FailAsync(missing.Pull.Revision!.Value, Reasons.ImageNotFound, missing.Failure.Message + CredentialsHint(missing.Failure.Message, missing.Pull.Image), null, ct);
                return (null, true);
            }

            // Anything else waits for the world to change (the image pushed, the registry back, the Secret fixed).
            var first = failures[0];
            var reason = first.Failure.NotFound ? Reasons.ImageNotFound : Reasons.ImagePullFailed;
            var retry = PullTracker.RetryAfter(first.Failure);
            var whose = first.Pull.Component == StackNames.AppComponent ? "spec.app.image" : $"spec.{first.Pull.Component}.image";
            var message = $"{whose}: {first.Failure.Message}{CredentialsHint(first.Failure.Message, first.Pull.Image)}; retrying every {retry.TotalSeconds:0}s" +
                string.Concat(failures.Skip(1).Select(f => $"; also {f.Failure.Message}"));
            var stalled = owner.Stalled(status, generation, reason, message, retry);
            stalled.Status.Phase = status.History?.Any(h => h.Outcome == Outcomes.Succeeded) == true ? Phases.Degraded : Phases.Failed;
            return (stalled, false);
        }

        /// <summary>
        /// One image per its policy: present (nothing to do), being pulled (a pull is started when none runs), or why not.
        /// Always pulls once per rollout: a pull that ended since the revision began counts.
        /// </summary>
        private async Task<(bool Pulling, ImageUnavailableException? Failure)> EnsureImageAsync(EnsureImage ensure, CancellationToken ct)
        {
            var present = await engine.InspectImageAsync(ensure.Image, ct) is not null;
            if (ensure.Policy == PullPolicies.Never)
            {
                return present ? (false, null) : (false, new ImageUnavailableException(ensure.Image, $"image {ensure.Image} is not on this node and imagePullPolicy is Never", notFound: true));
            }

            var pulled = owner.pullTracker.Get(ensure.Image, desired.PullAuthFor(ensure.Image));
            var since = status.History?.LastOrDefault(h => h.Revision == ensure.Revision)?.DeployedAt;
            var fresh = ensure.Policy != PullPolicies.Always || pulled is { Done: true, Failure: null, EndedAt: { } at } && since is { } began && at >= began;
            if (present && fresh)
            {
                return (false, null);
            }

            switch (pulled)
            {
                case { Done: false }:
                    return (true, null);
                case { Done: true, Failure: { } failure } when present:
                    // Always with a local copy: keep going with what is here rather than fail on a registry hiccup.
                    logger.LogWarning("{Stack}: {Message}; using the local copy", desired.Names.Key, failure.Message);
                    return (false, null);
                case { Done: true, Failure: { } failure }:
                    return (false, failure);
                case { Done: true, Failure: null } when present:
                    return (false, null);
            }

            var use = await owner.EngineLock.EnterUseAsync([ensure.Image], ct);
            owner.events.Record(desired.Resource, EventKind.Normal, Reasons.Pulling, $"Pulling image {ensure.Image}");
            var resource = desired.Resource;
            owner.pullTracker.Start(ensure.Image, desired.PullAuthFor(ensure.Image), desired.Names.Key, owner.context.PullTimeout, use, result =>
            {
                if (result.Result == PullResults.Success)
                {
                    owner.events.Record(resource, EventKind.Normal, Reasons.Pulled,
                        $"Pulled image {result.Image} in {result.Duration.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture)}s ({PullLog.Bytes(result.Bytes)})");
                }
            });
            return (true, null);
        }

        /// <summary>
        /// Stop-first: the old revision stops so the new one can bind its host port. Nothing serves until the new
        /// one is ready, and the status says so at once (Ready False, reason Replacing).
        /// </summary>
        private async Task StopForReplacementAsync(StopContainer stop, CancellationToken ct)
        {
            var now = owner.time.GetUtcNow();
            var message = $"revision {stop.Container.Revision} is stopped to free its host port for revision {CurrentRevision()}; nothing serves until that one is ready";
            Conditions.Set(status, ConditionTypes.Ready, false, Reasons.Replacing, message, generation, now);
            Conditions.Set(status, ConditionTypes.AppReady, false, Reasons.Replacing, message, generation, now);
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

            var registry = ImageReference.Registry(image);
            return desired.Spec.App.ImagePullSecret is { Length: > 0 } secret
                ? $"; the registry refused the credentials of spec.app.imagePullSecret (Secret \"{secret}\"): check its username and password for {registry}"
                : $"; the registry wants credentials: set spec.app.imagePullSecret to a kubernetes.io/dockerconfigjson Secret with a login for {registry}";
        }

        /// <summary>Creates and starts the revision's migration container when it does not run yet; the plan then waits for it to end.</summary>
        private async Task StartMigrationAsync(RunMigration migration, CancellationToken ct)
        {
            if (migration.Existing is { Running: true })
            {
                return;
            }

            var id = migration.Existing?.Id ?? await engine.CreateContainerAsync(migration.Spec, ct);
            await engine.StartContainerAsync(id, ct);
            Conditions.Set(status, ConditionTypes.Migrated, false, Reasons.Migrating, migration.Waiting, generation, owner.time.GetUtcNow());
        }

        private async Task CompleteAsync(CompleteRollout complete, CancellationToken ct)
        {
            // Side by side: the old app's graceful stop need not wait for the migration container's removal.
            await Task.WhenAll(complete.Leftovers.Select(c => RemoveAsync(c, ct)));

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
                owner.services.RolloutCompleted?.Invoke(desired, record, elapsed);
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
                (rolledBack ? $"; rolled back to revision {lastGood!.Revision} ({lastGood.Image})" : "") +
                DatabasePasswordHint(reason, logs) + logs;
            TrimHistory();
            var now = owner.time.GetUtcNow();
            status.ObservedGeneration = generation;
            status.Phase = rolledBack ? Phases.Degraded : Phases.Failed;
            Conditions.Summarize(status, Summary.Stalled, reason, full, generation, now);
            if (reason == Reasons.MigrationFailed)
            {
                Conditions.Set(status, ConditionTypes.Migrated, false, reason, message, generation, now);
            }

            logger.LogWarning("{Stack}: rollout of revision {Revision} failed ({Reason}): {Message}", desired.Names.Key, revision, reason, message);
            owner.services.RolloutFailed?.Invoke(desired, record, reason);
        }

        /// <summary>
        /// A migration refused by PostgreSQL's password check, with the database's own volume: the volume was initialised
        /// with other credentials (PostgreSQL keeps them and ignores POSTGRES_PASSWORD), typically because the state
        /// folder that generated them was lost or this is another clone's. Says where the old ones go; never a value.
        /// </summary>
        private string DatabasePasswordHint(string reason, string logs) =>
            reason == Reasons.MigrationFailed && desired.Database is { Volume: { } volume }
                && logs.Contains("password authentication failed", StringComparison.OrdinalIgnoreCase)
                ? $"; the database volume {volume} was initialised with other credentials than Secret {desired.Names.DatabaseSecret} " +
                    "holds (PostgreSQL keeps the password it first started with): give the original username and password as " +
                    $"Secret {desired.Names.DatabaseSecret} (keys username, password), or restore the state folder that generated " +
                    "them; deleting the volume starts over and loses its data"
                : "";

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
