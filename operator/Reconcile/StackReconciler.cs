using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Skiff.Api;
using Skiff.Validation;

namespace Skiff.Reconcile;

/// <summary>The result of reconciling one AppDeployment.</summary>
/// <param name="Status">The new status; the source writes it (only when it changed).</param>
/// <param name="RequeueAfter">When to look again (health watching, waiting for a Secret, a retry).</param>
public sealed record StackResult(AppDeploymentStatus Status, TimeSpan? RequeueAfter);

/// <summary>
/// Reconciles one AppDeployment into containers on this node's Docker engine: resolve inputs, observe
/// the engine, plan (<see cref="StackPlanner"/>), act, and re-plan until nothing is left to do.
/// Split by concern: <c>.Execute.cs</c> carries out actions, <c>.Cleanup.cs</c> tears stacks down,
/// <c>.Health.cs</c> watches a live app.
/// </summary>
public sealed partial class StackReconciler(
    IContainerEngine engine,
    ISecretSource secrets,
    StackContext context,
    IEventSink events,
    ILogger<StackReconciler> logger,
    StackServices? services = null,
    TimeProvider? timeProvider = null) : IDisposable
{
    public static readonly ActivitySource Activity = new("Skiff.Reconcile");
    private const int MaxPlanRounds = 12;
    private readonly TimeProvider time = timeProvider ?? TimeProvider.System;
    private readonly IContainerEngine engine = engine;
    private readonly ISecretSource secrets = secrets;
    private readonly IEventSink events = events;
    private readonly ILogger<StackReconciler> logger = logger;
    private readonly StackServices services = services ?? new StackServices();
    private readonly IAppProbe probe = services?.Probe ?? new HttpAppProbe();
    private readonly StackContext context = context;
    private readonly PullTracker pullTracker = new(engine, services?.Pulls ?? new PullLog(logger), timeProvider);

    /// <summary>
    /// When each starting database or cache was last probed (container id) and whether it passed, so a 250 ms rollout
    /// look execs at most once a second and a look in between goes by the last answer.
    /// </summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, (DateTimeOffset At, bool Passed)> probedStarting = new(StringComparer.Ordinal);

    /// <summary>The least time between two probes of one starting database or cache: each is an exec (runc, a process in the container).</summary>
    internal static readonly TimeSpan StartingProbeInterval = TimeSpan.FromSeconds(1);

    public StackContext Context => context;

    private IRouteTable RoutesOrThrow =>
        services.Routes ?? throw new InvalidOperationException("StackContext.Proxy is set without StackServices.Routes");

    public IContainerEngine Engine => engine;

    /// <summary>Abandons the pulls that still run (an operator that stops).</summary>
    public void Dispose() => pullTracker.Dispose();

    /// <summary>Where this reconciler records Events (the sources record the Events of status changes there too).</summary>
    public IEventSink Events => events;

    /// <summary>
    /// Brings the stack to its spec. <paramref name="publish"/> is called with intermediate status
    /// (a rollout that begins) so that a crash mid-rollout leaves the history on record.
    /// </summary>
    public async Task<StackResult> ReconcileAsync(
        AppDeployment resource,
        Func<AppDeploymentStatus, CancellationToken, Task>? publish,
        CancellationToken ct)
    {
        var names = new StackNames(resource.Metadata.NamespaceProperty ?? "default", resource.Metadata.Name);
        if (services.ProvideCertificates is { } provide)
        {
            await provide(names, resource.Spec, secrets, ct);
        }

        var result = await ReconcileStackAsync(resource, publish, ct);
        ApplyDiskPressure(result.Status, resource.Metadata.Generation);
        ApplyProxyRequired(resource.Spec, result.Status, resource.Metadata.Generation);
        services.ReportBackups?.Invoke(new StackNames(resource.Metadata.NamespaceProperty ?? "default", resource.Metadata.Name), result.Status, resource.Metadata.Generation);
        services.ReportCertificates?.Invoke(new StackNames(resource.Metadata.NamespaceProperty ?? "default", resource.Metadata.Name), result.Status, resource.Metadata.Generation);
        return result;
    }

    private async Task<StackResult> ReconcileStackAsync(
        AppDeployment resource,
        Func<AppDeploymentStatus, CancellationToken, Task>? publish,
        CancellationToken ct)
    {
        using var activity = Activity.StartActivity("reconcile stack");
        var status = CloneStatus(resource.Status);
        var generation = resource.Metadata.Generation;
        status.Source = context.SourceDescription;
        var now = time.GetUtcNow();

        if (resource.Spec.Runtime == Runtimes.Kubernetes)
        {
            return Stalled(status, generation, Reasons.RuntimeNotSupported, "spec.runtime: kubernetes runs only with skiff run --source kubernetes (the instance holding the Lease skiff-cluster applies it to the cluster); use runtime: docker with this source", null);
        }

        var (inputs, problem) = await ResolveInputsAsync(resource, ct);
        if (problem is not null)
        {
            return Stalled(status, generation, problem.Value.Reason, problem.Value.Message, TimeSpan.FromSeconds(30));
        }

        var desired = DesiredStack.Build(resource, inputs!, context);
        this.services.SecretsResolved?.Invoke(desired.SecretValues);
        status.Endpoint = desired.Endpoint;
        var run = new RolloutRun(this, desired, status, generation, publish);

        for (var round = 0; round < MaxPlanRounds; round++)
        {
            var observed = await ObserveAsync(desired, status.History, ct);
            var plan = StackPlanner.Plan(desired, observed, status.History ?? [], time.GetUtcNow());
            if (plan.IsEmpty)
            {
                return await FinishAsync(run, observed, ct);
            }

            var step = await run.ExecuteAsync(plan, observed, ct);
            if (step.Stop is { } stop)
            {
                return stop;
            }
        }

        logger.LogWarning("Stack {Stack} did not converge in {Rounds} planning rounds; will look again", desired.Names.Key, MaxPlanRounds);
        return new StackResult(status, TimeSpan.FromSeconds(5));
    }

    /// <summary>The plan for the stack as things stand, without changing anything (<c>skiff plan</c>).</summary>
    public async Task<(StackPlan? Plan, string? Problem)> PlanAsync(AppDeployment resource, CancellationToken ct)
    {
        if (resource.Spec.Runtime == Runtimes.Kubernetes)
        {
            return (null, "spec.runtime: kubernetes runs only with skiff run --source kubernetes; skiff plan shows the Docker target");
        }

        var (inputs, problem) = await ResolveInputsAsync(resource, ct, readOnly: true);
        if (problem is not null)
        {
            return (null, problem.Value.Message);
        }

        var desired = DesiredStack.Build(resource, inputs!, context);
        var observed = await ObserveAsync(desired, resource.Status?.History, ct);
        return (StackPlanner.Plan(desired, observed, resource.Status?.History ?? [], time.GetUtcNow()), null);
    }

    /// <summary>
    /// What the engine shows of the stack, and whether an app container of the desired spec that is still being rolled
    /// out passes its health check (one probe each): the planner judges the rollout from that, without waiting.
    /// </summary>
    internal async Task<ObservedStack> ObserveAsync(DesiredStack desired, IReadOnlyList<RevisionRecord>? history, CancellationToken ct)
    {
        var containers = await engine.ListContainersAsync(
            new Dictionary<string, string> { [SkiffLabels.ManagedBy] = SkiffLabels.ManagedByValue, [SkiffLabels.App] = desired.Names.Key },
            ct);
        var network = await engine.NetworkExistsAsync(desired.Names.Network, ct);
        var volumes = new Dictionary<string, IReadOnlyDictionary<string, string>?>();
        foreach (var volume in new[] { desired.Database?.Volume, desired.Cache?.Volume }.OfType<string>())
        {
            volumes[volume] = await engine.InspectVolumeAsync(volume, ct);
        }

        containers = await ProbeStartingDataAsync(desired, containers, ct);
        var passed = new HashSet<string>(StringComparer.Ordinal);
        if (desired.Health is { } health)
        {
            var candidates = containers.Where(c => c.Component == StackNames.AppComponent && c.SpecHash == desired.Hash && c is { Running: true, State: "running" }
                && history?.FirstOrDefault(h => h.Revision == c.Revision)?.Outcome != Outcomes.Succeeded);
            foreach (var candidate in candidates)
            {
                if (await probe.ProbeAsync(candidate, health.Port, health.Path, ct))
                {
                    passed.Add(candidate.Id);
                }
            }
        }

        if (!context.Proxy)
        {
            return new ObservedStack(network, volumes, containers) { PassedProbe = passed };
        }

        return new ObservedStack(network, volumes, containers)
        {
            PassedProbe = passed,
            Routes = RoutesOrThrow.Get(desired.Names.Key),
            RoutesApplied = await RoutesOrThrow.AppliedAsync(ct),
        };
    }

    /// <summary>
    /// A database or cache that Docker still calls <c>starting</c> is asked once with its own health command (one exec),
    /// and seen healthy when that passes. Docker's health check runs every <see cref="DesiredStack.DataHealthInterval"/>
    /// (a calm pace for the life of the container: each check is an exec, which costs a small VPS real CPU), so its
    /// first verdict comes that long after the start; the rollout waiting on the component (every 250 ms) does not
    /// wait for it. One exec per container per <see cref="StartingProbeInterval"/> at most; the looks in between go by
    /// its answer (a probe at each look was a fifth of a test run's pg_isready and runc processes).
    /// </summary>
    private async Task<IReadOnlyList<ObservedContainer>> ProbeStartingDataAsync(
        DesiredStack desired, IReadOnlyList<ObservedContainer> containers, CancellationToken ct)
    {
        // The database and the cache start together and are probed together: two execs side by side, not one
        // after the other (each is a runc process start, 0.1-0.2 s on a small VPS).
        var probes = new List<(int Index, Task<bool> Passed)>();
        foreach (var data in new[] { desired.Database, desired.Cache }.OfType<DataComponent>())
        {
            if (data.Container.Healthcheck is not { } check || DesiredStack.HealthCommand(check) is not { } command)
            {
                continue;
            }

            for (var i = 0; i < containers.Count; i++)
            {
                var c = containers[i];
                if (c.Component != data.Component)
                {
                    continue;
                }

                if (c is not { Running: true, State: "running", Health: "starting" })
                {
                    probedStarting.TryRemove(c.Id, out _);
                    continue;
                }

                var now = time.GetUtcNow();
                probes.Add((i, probedStarting.TryGetValue(c.Id, out var last) && now - last.At < StartingProbeInterval
                    ? Task.FromResult(last.Passed)
                    : ProbeStartingAsync(desired, data.Component, c, command, check.Timeout, now, ct)));
            }
        }

        List<ObservedContainer>? probed = null;
        foreach (var (i, task) in probes)
        {
            if (await task)
            {
                probed ??= [.. containers];
                probed[i] = containers[i] with { Health = "healthy" };
            }
        }

        // A container removed while it started is never seen again: forget answers long past their use.
        var forgetBefore = time.GetUtcNow() - TimeSpan.FromMinutes(1);
        foreach (var (id, answer) in probedStarting)
        {
            if (answer.At < forgetBefore)
            {
                probedStarting.TryRemove(id, out _);
            }
        }

        return probed ?? containers;
    }

    /// <summary>One exec of a starting database's or cache's health command; false when it fails or cannot run (Docker's own check decides then).</summary>
    private async Task<bool> ProbeStartingAsync(
        DesiredStack desired, string component, ObservedContainer c, IReadOnlyList<string> command, TimeSpan timeout, DateTimeOffset now, CancellationToken ct)
    {
        probedStarting[c.Id] = (now, false);
        try
        {
            var passed = (await engine.ExecAsync(c.Id, command, ct).WaitAsync(timeout, ct)).ExitCode == 0;
            probedStarting[c.Id] = (now, passed);
            return passed;
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            // Gone, restarting, slow: Docker's own check decides, as before.
            logger.LogDebug(e, "{Stack}: probing the {Component} while it starts failed", desired.Names.Key, component);
            return false;
        }
    }

    private async Task<(ResolvedInputs? Inputs, (string Reason, string Message)? Problem)> ResolveInputsAsync(
        AppDeployment resource, CancellationToken ct, bool readOnly = false)
    {
        try
        {
            return await ResolveSecretInputsAsync(resource, ct, readOnly);
        }
        catch (SecretUnreadableException e)
        {
            return (null, (e.Reason, e.Message));
        }
    }

    private async Task<(ResolvedInputs? Inputs, (string Reason, string Message)? Problem)> ResolveSecretInputsAsync(
        AppDeployment resource, CancellationToken ct, bool readOnly)
    {
        var ns = resource.Metadata.NamespaceProperty ?? "default";
        var names = new StackNames(ns, resource.Metadata.Name);
        var spec = Defaults.Apply(resource.Spec);
        // Credentials first: an app may read its own NAME-db Secret through a secretKeyRef.
        DatabaseCredentials? db = null;
        if (spec.Database is { } database)
        {
            db = readOnly
                ? new DatabaseCredentials(database.User!, "(generated)", database.Name!)
                : await secrets.EnsureDatabaseCredentialsAsync(names, database.Name!, database.User!, ct);
        }

        var env = new Dictionary<string, string>(StringComparer.Ordinal);
        var appEnv = spec.App.Env ?? [];
        for (var i = 0; i < appEnv.Count; i++)
        {
            if (appEnv[i].ValueFrom?.SecretKeyRef is not { } reference)
            {
                continue;
            }

            var secret = await secrets.GetSecretAsync(ns, reference.Name, ct);
            if (secret is null)
            {
                return (null, (Reasons.SecretNotFound, $"spec.app.env[{i}].valueFrom.secretKeyRef: Secret \"{reference.Name}\" not found in namespace \"{ns}\"; create it (Skiff retries by itself)"));
            }

            if (!secret.TryGetValue(reference.Key, out var bytes))
            {
                return (null, (Reasons.SecretNotFound, $"spec.app.env[{i}].valueFrom.secretKeyRef: Secret \"{reference.Name}\" has no key \"{reference.Key}\""));
            }

            env[appEnv[i].Name] = Encoding.UTF8.GetString(bytes);
        }

        var auths = new Dictionary<string, RegistryAuth>(StringComparer.OrdinalIgnoreCase);
        if (!string.IsNullOrEmpty(spec.App.ImagePullSecret))
        {
            var secret = await secrets.GetSecretAsync(ns, spec.App.ImagePullSecret, ct);
            if (secret is null)
            {
                return (null, (Reasons.SecretNotFound, $"spec.app.imagePullSecret: Secret \"{spec.App.ImagePullSecret}\" not found in namespace \"{ns}\"; create it (Skiff retries by itself)"));
            }

            // The Secret's logins serve every image of the stack whose registry they name, not only the app's.
            foreach (var image in new[] { spec.App.Image, spec.Database?.Image, spec.Cache?.Image }.OfType<string>())
            {
                var auth = DockerConfigJson.FindAuth(secret, image, out var error);
                if (error is not null)
                {
                    return (null, (Reasons.InvalidPullSecret, $"spec.app.imagePullSecret: {error}"));
                }

                if (auth is not null)
                {
                    auths[ImageReference.Registry(image)] = auth;
                }
            }
        }

        return (new ResolvedInputs(db, env, auths), null);
    }

    private StackResult Stalled(AppDeploymentStatus status, long? generation, string reason, string message, TimeSpan? requeue)
    {
        var now = time.GetUtcNow();
        status.ObservedGeneration = generation;
        status.Phase = Phases.Failed;
        Conditions.Summarize(status, Summary.Stalled, reason, message, generation, now);
        return new StackResult(status, requeue);
    }

    internal static AppDeploymentStatus CloneStatus(AppDeploymentStatus? status) =>
        status is null
            ? new AppDeploymentStatus()
            : ApiJson.Clone(status);
}
