using Microsoft.Extensions.Logging;
using Skiff.Api;
using Skiff.Reconcile;
using Skiff.Runtime;
using Skiff.Validation;

namespace Skiff.Sources;

/// <summary>One AppDeployment as a source holds it, read for one reconcile.</summary>
/// <param name="Key">Its namespace and name.</param>
public sealed record StoredStack(ObjectKey Key)
{
    /// <summary>The resource with its spec, generation and last written status; null when it is gone.</summary>
    public AppDeployment? Resource { get; init; }

    /// <summary>Another source's (a record another source mirrored here): not this source's to reconcile or prune.</summary>
    public bool NotOurs { get; init; }

    /// <summary>The source cannot read it whole right now (a file being written): its stack is left as it is, nothing is pruned.</summary>
    public bool Keep { get; init; }

    /// <summary>Deletion was asked for (a deletionTimestamp); <see cref="HasFinalizer"/> says whether the cleanup is ours to do.</summary>
    public bool Deleting { get; init; }

    /// <summary>Skiff's finalizer is on it (Kubernetes); always true for a folder, where nothing else could delete it.</summary>
    public bool HasFinalizer { get; init; } = true;

    /// <summary>The source knew it before (a record of it): gone now means pruned.</summary>
    public bool Known { get; init; }

    /// <summary>The last spec applied, for a prune: its reclaimPolicy decides about the data (null: the data stays).</summary>
    public AppDeploymentSpec? LastSpec { get; init; }

    /// <summary>Why its spec cannot be used (InvalidSpec), each as <c>PATH: message</c> (with the file and document for a folder).</summary>
    public IReadOnlyList<string> Problems { get; init; } = [];

    /// <summary>It names another node, but moving would leave its data behind (refused, as the API server's CEL rule refuses it).</summary>
    public bool RefusedMove { get; init; }

    /// <summary>
    /// The source could not turn the spec into one the reconciler can run (an image build failed): nothing is applied,
    /// the running stack is left as it is, and the status says why (Stalled, with this reason and message).
    /// </summary>
    public SourceFailure? Failure { get; init; }

    /// <summary>What the source keeps beside the resource for its own writes (the folder's state record).</summary>
    public object? SourceState { get; init; }
}

/// <summary>Why a source could not produce a runnable spec: a condition reason and a message (masked).</summary>
public sealed record SourceFailure(string Reason, string Message);

/// <summary>
/// Where a source's AppDeployments come from, where their status goes, and how their deletion is signalled: the only
/// things the folder source and the Kubernetes source do differently (kube-rs's <c>finalizer()</c> split).
/// </summary>
public interface IStackStore
{
    /// <summary>The resource as the source has it now.</summary>
    Task<StoredStack> ReadAsync(ObjectKey key, CancellationToken ct);

    /// <summary>Before anything is created: Skiff's finalizer (Kubernetes), so that a delete always waits for the cleanup.</summary>
    Task EnsureFinalizerAsync(StoredStack stack, CancellationToken ct);

    /// <summary>
    /// Stores a status when it changed, and then keeps it as <c>stack.Resource.Status</c>. False when nothing was
    /// written (unchanged, or the resource went meanwhile).
    /// </summary>
    Task<bool> WriteStatusAsync(StoredStack stack, AppDeploymentStatus status, CancellationToken ct);

    /// <summary>The last look at a status before it is written (a source's own hints).</summary>
    void Annotate(StoredStack stack, AppDeploymentStatus status);

    /// <summary>After the cleanup of a deleted resource: its finalizer goes.</summary>
    Task ReleaseAsync(StoredStack stack, CancellationToken ct);

    /// <summary>The resource is gone (or moved to another node): forget what was kept of it.</summary>
    void Forget(StoredStack stack);
}

/// <summary>
/// The one reconcile of an AppDeployment, whichever source it comes from: read it, clean up after a deletion or a
/// prune, or apply it (<see cref="StackReconciler"/>), and store the status (only when it changed) with the Events
/// of what changed. Throwing means retry with backoff (the work queue's).
/// </summary>
public sealed class StackController(
    IStackStore store,
    StackReconciler stacks,
    Action<ObjectKey, AppDeploymentStatus?> reconciled,
    ILogger<StackController> logger,
    TimeProvider? timeProvider = null) : IReconciler
{
    private readonly TimeProvider time = timeProvider ?? TimeProvider.System;

    private string Node => stacks.Context.Node;

    public async Task<ReconcileResult> ReconcileAsync(ObjectKey key, CancellationToken cancellationToken)
    {
        var names = new StackNames(key.Namespace ?? "default", key.Name);
        var stored = await store.ReadAsync(key, cancellationToken);
        if (stored.NotOurs)
        {
            return ReconcileResult.Done;
        }

        if (stored.Keep)
        {
            logger.LogWarning("{Stack}: not pruning it while its file holds a document Skiff cannot read (see the problems); fix the file, or delete it to remove the stack", names.Key);
            reconciled(key, stored.Resource?.Status);
            return ReconcileResult.Done;
        }

        if (stored.Resource is not { } resource)
        {
            await CleanupAsync(stored, names, cancellationToken);
            return ReconcileResult.Done;
        }

        if (resource.Spec.Node != Node && !stored.RefusedMove)
        {
            // Moved to another node: the containers go from here; the data stays (a stack with data cannot move).
            if (stored.Known || (await stacks.ListStacksAsync(cancellationToken)).Contains(names.Key))
            {
                logger.LogInformation("{Stack}: moved to node {Node}; removing its containers from node {ThisNode} (volumes are kept)", names.Key, resource.Spec.Node, Node);
                await stacks.DeleteAsync(names, null, cancellationToken);
            }

            store.Forget(stored);
            reconciled(key, null);
            return ReconcileResult.Done;
        }

        if (stored.Deleting)
        {
            await CleanupAsync(stored, names, cancellationToken);
            return ReconcileResult.Done;
        }

        // Before anything is created, so that a delete always waits for the cleanup.
        await store.EnsureFinalizerAsync(stored, cancellationToken);
        if (stored.Problems.Count > 0)
        {
            await WriteAsync(stored, InvalidSpec(stored), cancellationToken);
            return ReconcileResult.Done;
        }

        if (stored.Failure is { } failure)
        {
            logger.LogWarning("{Stack}: {Reason}, the running stack (if any) is left as it is: {Message}", stored.Key, failure.Reason, failure.Message);
            await WriteAsync(stored, Stalled(stored, failure.Reason, failure.Message), cancellationToken);
            return ReconcileResult.Done;
        }

        if (ResourceValidator.BuildNeedsGitSource(resource.Spec) is { } needsGit)
        {
            // A source that does not build (its store left spec.app.build as it is).
            await WriteAsync(stored, InvalidSpec(stored with { Problems = [needsGit.ToString()] }), cancellationToken);
            return ReconcileResult.Done;
        }

        try
        {
            var result = await stacks.ReconcileAsync(resource, (status, ct) => WriteAsync(stored, status, ct), cancellationToken);
            await WriteAsync(stored, result.Status, cancellationToken);
            return result.RequeueAfter is { } after ? ReconcileResult.After(after) : ReconcileResult.Done;
        }
        catch (EngineUnreachableException e)
        {
            var status = StackReconciler.CloneStatus(resource.Status);
            Conditions.Summarize(status, Summary.Unknown, Reasons.EngineUnreachable, e.Message, resource.Metadata.Generation, time.GetUtcNow());
            await WriteAsync(stored, status, cancellationToken);
            throw;
        }
    }

    /// <summary>Deleted, or gone from the source (pruned): the containers and network go; the data per the last known reclaimPolicy.</summary>
    private async Task CleanupAsync(StoredStack stored, StackNames names, CancellationToken ct)
    {
        if (stored.Deleting)
        {
            if (stored.HasFinalizer)
            {
                var spec = stored.Resource!.Spec;
                logger.LogInformation("{Stack}: deleting (reclaimPolicy {Policy})", names.Key,
                    Defaults.Apply(spec).Database?.Storage?.ReclaimPolicy);
                await stacks.DeleteAsync(names, spec, ct);
                await store.ReleaseAsync(stored, ct);
            }
        }
        else if (stored.Known || (await stacks.ListStacksAsync(ct)).Contains(names.Key))
        {
            // The document is gone: prune, as Flux does with prune: true, like a deleted resource.
            logger.LogInformation("{Stack}: it is gone from its source; removing its containers ({Data})", names.Key, DataOnPrune(stored.LastSpec));
            await stacks.DeleteAsync(names, stored.LastSpec, ct);
        }

        store.Forget(stored);
        reconciled(stored.Key, null);
    }

    /// <summary>Stores the status if it changed; the Events of what changed follow the write, never precede it.</summary>
    private async Task WriteAsync(StoredStack stored, AppDeploymentStatus status, CancellationToken ct)
    {
        var resource = stored.Resource!;
        var before = resource.Status;
        store.Annotate(stored, status);
        if (await store.WriteStatusAsync(stored, status, ct))
        {
            StatusEvents.Record(stacks.Events, resource, before, resource.Status!, time.GetUtcNow());
        }

        reconciled(stored.Key, resource.Status ?? status);
    }

    private AppDeploymentStatus InvalidSpec(StoredStack stored)
    {
        var message = string.Join("\n", stored.Problems);
        logger.LogWarning("{Stack}: invalid spec, the running stack (if any) is left as it is:\n{Problems}", stored.Key, message);
        return Stalled(stored, Reasons.InvalidSpec, message);
    }

    /// <summary>The status of a spec that is not applied: the running stack is left as it is; Stalled says why.</summary>
    private AppDeploymentStatus Stalled(StoredStack stored, string reason, string message)
    {
        var resource = stored.Resource!;
        var status = StackReconciler.CloneStatus(resource.Status);
        status.ObservedGeneration = resource.Metadata.Generation;
        status.Phase = Phases.Failed;
        status.Source = stacks.Context.SourceDescription;
        Conditions.Summarize(status, Summary.Stalled, reason, message, resource.Metadata.Generation, time.GetUtcNow());
        return status;
    }

    /// <summary>What a prune does with the stack's data, in words for the log.</summary>
    private static string DataOnPrune(AppDeploymentSpec? spec)
    {
        if (spec is null)
        {
            return "no applied spec is known: volumes and credentials are kept";
        }

        var d = Defaults.Apply(spec);
        var parts = new List<string>();
        if (d.Database is { } db)
        {
            parts.Add($"database reclaimPolicy {db.Storage?.ReclaimPolicy}{(string.IsNullOrEmpty(db.Volume) ? "" : ", adopted volume kept")}");
        }

        if (d.Cache is { Persistence: PersistenceModes.Aof or PersistenceModes.Rdb } cache)
        {
            parts.Add($"cache reclaimPolicy {cache.Storage?.ReclaimPolicy}");
        }

        return parts.Count == 0 ? "no data" : string.Join("; ", parts);
    }
}
