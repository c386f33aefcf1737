using System.Text.Json;
using Microsoft.Extensions.Logging;
using Skiff.Api;
using Skiff.Docker;
using Skiff.Reconcile;
using Skiff.Runtime;
using Skiff.State;
using Skiff.Validation;

namespace Skiff.Sources.Directory;

/// <summary>
/// Level-based reconcile of one folder resource: re-reads the folder snapshot and the state folder,
/// drives <see cref="StackReconciler"/>, and writes the status back (only when it changed).
/// </summary>
public sealed class FolderReconciler(
    DirectorySource source,
    StateStore state,
    StackReconciler stacks,
    ILogger<FolderReconciler> logger,
    TimeProvider? timeProvider = null) : IReconciler
{
    private readonly TimeProvider time = timeProvider ?? TimeProvider.System;

    /// <summary>
    /// What this source's id hashes (<see cref="FolderIdentity"/>): the folder's canonical path or its
    /// <c>--source-name</c>. Kept in each record, so that a folder run from a new place can say which
    /// <c>--source-name</c> would find its stacks again.
    /// </summary>
    public string? Identity { get; init; }

    /// <summary>Called after each reconcile with the resource's latest record (for --once and metrics).</summary>
    public Action<ObjectKey, StatusRecord?>? Reconciled { get; set; }

    public async Task<ReconcileResult> ReconcileAsync(ObjectKey key, CancellationToken cancellationToken)
    {
        var ns = key.Namespace ?? "default";
        var names = new StackNames(ns, key.Name);
        var entry = source.Get(key);
        var record = state.Read(ns, key.Name);
        var node = stacks.Context.Node;

        if (entry is null && record?.Source is { } other && other != stacks.Context.SourceId)
        {
            // Mirrored here by another source (the Kubernetes source on this node): not this folder's to prune.
            return ReconcileResult.Done;
        }

        if (entry is null && record?.File is { } file && source.IsBroken(file))
        {
            logger.LogWarning("{Stack}: not pruning it while {File} holds a document Skiff cannot read (see the problems); fix the file, or delete it to remove the stack", names.Key, file);
            Reconciled?.Invoke(key, record);
            return ReconcileResult.Done;
        }

        if (entry is null)
        {
            // The document is gone: prune, as Flux does with prune: true, like a deleted resource: the last
            // applied spec's reclaimPolicy decides about volumes and credentials (kept when it is unknown).
            if (record is not null || (await stacks.ListStacksAsync(cancellationToken)).Contains(names.Key))
            {
                logger.LogInformation(
                    "{Stack}: its document was removed from the folder; removing its containers ({Data})",
                    names.Key,
                    DataOnPrune(record?.Spec));
                await stacks.DeleteAsync(names, record?.Spec, cancellationToken);
                state.Delete(ns, key.Name);
            }

            Reconciled?.Invoke(key, null);
            return ReconcileResult.Done;
        }

        record ??= new StatusRecord { Namespace = ns, Name = key.Name, CreatedAt = time.GetUtcNow() };
        var resource = entry.Resource;
        var errors = entry.Errors.ToList();
        if (resource is not null && record.Spec is { } previous && record.Node == node)
        {
            // The twin of the CEL transition rule: a stack with data cannot move to another node.
            var old = new AppDeployment { Metadata = new() { Name = key.Name, NamespaceProperty = ns }, Spec = previous };
            errors.AddRange(ResourceValidator.Validate(resource, old)
                .Where(e => e.Path == "spec.node")
                .Select(e => $"{entry.Location}: {e}"));
        }

        // A stack kept alive from a file being written goes on with its last good spec.
        if (errors.Count > 0 && (resource is null || errors.Any(e => !e.Contains("keeping the last good version", StringComparison.Ordinal))))
        {
            record.File ??= entry.File;
            return Write(key, record, InvalidSpec(record, errors));
        }

        if (resource!.Spec.Node != node)
        {
            if (record.Node == node || (await stacks.ListStacksAsync(cancellationToken)).Contains(names.Key))
            {
                logger.LogInformation("{Stack}: moved to node {Node}; removing it from {ThisNode}", names.Key, resource.Spec.Node, node);
                await stacks.DeleteAsync(names, null, cancellationToken);
            }

            state.Delete(ns, key.Name);
            Reconciled?.Invoke(key, null);
            return ReconcileResult.Done;
        }

        if (record.DocumentHash != entry.DocumentHash)
        {
            record.Generation++;
            record.DocumentHash = entry.DocumentHash;
        }

        record.Node = node;
        record.File = entry.File;
        record.Spec = resource.Spec;
        resource.Metadata.Generation = record.Generation;
        resource.Metadata.CreationTimestamp = record.CreatedAt.UtcDateTime;
        resource.Status = record.Status;
        try
        {
            var result = await stacks.ReconcileAsync(
                resource,
                (status, _) =>
                {
                    // A copy: the rollout keeps changing its status object after publishing it.
                    var before = record.Status;
                    record.Status = StackReconciler.CloneStatus(status);
                    state.Write(record);
                    StatusEvents.Record(stacks.Events, resource, before, record.Status, time.GetUtcNow());
                    Reconciled?.Invoke(key, record);
                    return Task.CompletedTask;
                },
                cancellationToken);
            if (!OwnedElsewhere(result.Status, record) && Identity is not null && record.SourceName != Identity)
            {
                record.SourceName = Identity;
                state.Write(record);
            }

            Write(key, record, result.Status);
            return result.RequeueAfter is { } after ? ReconcileResult.After(after) : ReconcileResult.Done;
        }
        catch (EngineUnreachableException e)
        {
            var status = StackReconciler.CloneStatus(record.Status);
            var now = time.GetUtcNow();
            Conditions.Set(status, ConditionTypes.Ready, "Unknown", "EngineUnreachable", e.Message, record.Generation, now);
            Conditions.Set(status, ConditionTypes.Reconciling, true, "EngineUnreachable", e.Message, record.Generation, now);
            Write(key, record, status);
            throw;
        }
    }

    /// <summary>
    /// Whether another source's labels blocked the stack. When this state folder saw it deployed under another
    /// identity (the folder before a move, another --source-name), the conditions say which flag finds it again.
    /// </summary>
    private bool OwnedElsewhere(AppDeploymentStatus status, StatusRecord record)
    {
        var blocked = status.Conditions?.Where(c => c.Reason == "OwnedByAnotherSource").ToList() ?? [];
        if (blocked.Count == 0)
        {
            return false;
        }

        if (record.SourceName is { } previous && previous != Identity)
        {
            var hint = $" This state folder last saw the stack deployed by the folder source \"{previous}\": if that is this folder before a move, run with --source-name \"{previous}\".";
            foreach (var condition in blocked.Where(c => c.Message?.EndsWith(hint, StringComparison.Ordinal) != true))
            {
                condition.Message += hint;
            }

            logger.LogWarning("{Stack}: owned by another source; this state folder saw it deployed by the folder source {Previous} (the --source-name that finds it again, if that was this folder)", $"{record.Namespace}/{record.Name}", previous);
        }

        return true;
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

    private ReconcileResult Write(ObjectKey key, StatusRecord record, AppDeploymentStatus status)
    {
        var before = record.Status;
        if ((before is null ? null : JsonSerializer.Serialize(before)) != JsonSerializer.Serialize(status)
            || !File.Exists(Path.Combine(state.Root, "status", $"{record.Namespace}_{record.Name}.json")))
        {
            record.Status = status;
            state.Write(record);
            StatusEvents.Record(stacks.Events, ResourceOf(record), before, status, time.GetUtcNow());
        }

        Reconciled?.Invoke(key, record);
        return ReconcileResult.Done;
    }

    /// <summary>The resource a record stands for, as Events name it.</summary>
    private static AppDeployment ResourceOf(StatusRecord record) => new()
    {
        Metadata = new() { Name = record.Name, NamespaceProperty = record.Namespace, Generation = record.Generation },
        Spec = record.Spec ?? new AppDeploymentSpec(),
    };

    private AppDeploymentStatus InvalidSpec(StatusRecord record, IReadOnlyList<string> errors)
    {
        var status = StackReconciler.CloneStatus(record.Status);
        var now = time.GetUtcNow();
        var message = string.Join("\n", errors);
        logger.LogWarning("{Namespace}/{Name}: invalid spec, the running stack (if any) is left as it is:\n{Errors}", record.Namespace, record.Name, message);
        status.Phase = Phases.Failed;
        status.Source = source.Path;
        Conditions.Set(status, ConditionTypes.Ready, false, "InvalidSpec", message, record.Generation, now);
        Conditions.Set(status, ConditionTypes.Stalled, true, "InvalidSpec", message, record.Generation, now);
        Conditions.Set(status, ConditionTypes.Reconciling, false, "InvalidSpec", message, record.Generation, now);
        return status;
    }
}

/// <summary>
/// The folder source's events (there is no API to write Events to): a log line each, and the last ones per
/// resource in the state folder, where <c>skiff status NAME</c> shows them as kubectl describe would.
/// </summary>
public sealed class LoggingEventSink(ILogger<LoggingEventSink> logger, StateStore state, TimeProvider? timeProvider = null) : IEventSink
{
    private readonly TimeProvider time = timeProvider ?? TimeProvider.System;

    public void Record(AppDeployment resource, EventKind kind, string reason, string message)
    {
        var ns = resource.Metadata.NamespaceProperty ?? "default";
        if (kind == EventKind.Warning)
        {
            logger.LogWarning("{Namespace}/{Name} {Reason}: {Message}", ns, resource.Metadata.Name, reason, message);
        }
        else
        {
            logger.LogInformation("{Namespace}/{Name} {Reason}: {Message}", ns, resource.Metadata.Name, reason, message);
        }

        try
        {
            state.AppendEvent(ns, resource.Metadata.Name, kind.ToString(), reason, message, time.GetUtcNow());
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // An event that cannot be kept must not fail the reconcile that reported it: the log line above has it.
            logger.LogWarning("{Namespace}/{Name}: cannot keep event {Reason} in the state folder: {Error}", ns, resource.Metadata.Name, reason, e.Message);
        }
    }
}
