using System.Text.Json;
using Microsoft.Extensions.Logging;
using Skiff.Api;
using Skiff.Reconcile;
using Skiff.Runtime;
using Skiff.State;
using Skiff.Validation;

namespace Skiff.Sources.Directory;

/// <summary>
/// The folder source's side of the reconcile core (<see cref="StackController"/>): specs come from the folder's
/// snapshot, status goes to the state folder (atomic files), and deletion is a document that left the folder (a
/// prune). The state record keeps the last applied spec, so a prune follows its reclaimPolicy.
/// </summary>
/// <param name="source">The folder.</param>
/// <param name="state">The state folder, where status and the last applied spec are kept.</param>
/// <param name="context">This node and source.</param>
/// <param name="identity">
/// What this source's id hashes (<see cref="FolderIdentity"/>): the folder's canonical path or its <c>--source-name</c>.
/// Kept in each record, so that a folder run from a new place can say which <c>--source-name</c> finds its stacks again.
/// </param>
/// <param name="logger">Where hints about another source go.</param>
/// <param name="timeProvider">The clock (creation times of new records).</param>
public sealed class FolderStackStore(
    DirectorySource source,
    StateStore state,
    StackContext context,
    string? identity,
    ILogger<FolderStackStore> logger,
    TimeProvider? timeProvider = null) : IStackStore
{
    private readonly TimeProvider time = timeProvider ?? TimeProvider.System;

    public Task<StoredStack> ReadAsync(ObjectKey key, CancellationToken ct)
    {
        var ns = key.Namespace ?? "default";
        var entry = source.Get(key);
        var record = state.Read(ns, key.Name);
        if (entry is null)
        {
            return Task.FromResult(new StoredStack(key)
            {
                // Mirrored here by another source (the Kubernetes source on this node): not this folder's to prune.
                NotOurs = record?.Source is { } other && other != context.SourceId,
                Keep = record?.File is { } file && source.IsBroken(file),
                Resource = null,
                Known = record is not null,
                LastSpec = record?.Spec,
                SourceState = record,
            });
        }

        record ??= new StatusRecord { Namespace = ns, Name = key.Name, CreatedAt = time.GetUtcNow() };
        var resource = entry.Resource;
        var errors = entry.Errors.ToList();
        if (resource is not null && record.Spec is { } previous && record.Node == context.Node)
        {
            // The twin of the CEL transition rule: a stack with data cannot move to another node.
            var old = new AppDeployment { Metadata = new() { Name = key.Name, NamespaceProperty = ns }, Spec = previous };
            errors.AddRange(ResourceValidator.Validate(resource, old)
                .Where(e => e.Path == "spec.node")
                .Select(e => $"{entry.Location}: {e}"));
        }

        // A stack kept alive from a file being written goes on with its last good spec.
        var blocking = errors.Count > 0 && (resource is null || errors.Any(e => !e.Contains("keeping the last good version", StringComparison.Ordinal)));
        if (blocking)
        {
            record.File ??= entry.File;
        }
        else
        {
            if (record.DocumentHash != entry.DocumentHash)
            {
                record.Generation++;
                record.DocumentHash = entry.DocumentHash;
            }

            record.Node = context.Node;
            record.File = entry.File;
            record.Spec = resource!.Spec;
        }

        if (!blocking && resource is not null)
        {
            // skiff restart / skiff rollback: what the record keeps of them, and a request waiting in the state folder.
            resource = FolderRequests.Apply(state, record, resource, entry.DocumentHash, time.GetUtcNow());
        }

        resource ??= new AppDeployment { Spec = record.Spec ?? new AppDeploymentSpec { Node = context.Node, App = new AppSpec() } };
        resource.Metadata ??= new();
        resource.Metadata.Name = key.Name;
        resource.Metadata.NamespaceProperty = ns;
        resource.Metadata.Generation = record.Generation;
        resource.Metadata.CreationTimestamp = record.CreatedAt.UtcDateTime;
        resource.Status = record.Status;
        return Task.FromResult(new StoredStack(key)
        {
            Resource = resource,
            Known = record.Node == context.Node,
            Problems = blocking ? errors : [],
            // The folder reports a document's problems where it is; it never moves a stack it cannot read.
            RefusedMove = blocking,
            SourceState = record,
        });
    }

    public Task EnsureFinalizerAsync(StoredStack stack, CancellationToken ct) => Task.CompletedTask;

    public Task<bool> WriteStatusAsync(StoredStack stack, AppDeploymentStatus status, CancellationToken ct)
    {
        var record = (StatusRecord)stack.SourceState!;
        var before = record.Status is null ? null : JsonSerializer.Serialize(record.Status, ApiJson.Options.Info<AppDeploymentStatus>());
        if (before == JsonSerializer.Serialize(status, ApiJson.Options.Info<AppDeploymentStatus>()) && File.Exists(Path.Combine(state.Root, "status", $"{record.Namespace}_{record.Name}.json")))
        {
            return Task.FromResult(false);
        }

        // A copy: a rollout keeps changing its status object after publishing it.
        record.Status = StackReconciler.CloneStatus(status);
        state.Write(record);
        stack.Resource!.Status = record.Status;
        return Task.FromResult(true);
    }

    /// <summary>
    /// Whether another source's labels blocked the stack. When this state folder saw it deployed under another
    /// identity (the folder before a move, another --source-name), the conditions say which flag finds it again;
    /// otherwise the record notes this identity as the one that deployed it.
    /// </summary>
    public void Annotate(StoredStack stack, AppDeploymentStatus status)
    {
        var record = (StatusRecord)stack.SourceState!;
        var blocked = status.Conditions?.Where(c => c.Reason == Reasons.OwnedByAnotherSource).ToList() ?? [];
        if (blocked.Count == 0)
        {
            if (identity is not null && record.SourceName != identity && status.History?.Count > 0)
            {
                record.SourceName = identity;
                state.Write(record);
            }

            return;
        }

        if (record.SourceName is { } previous && previous != identity)
        {
            var hint = $" This state folder last saw the stack deployed by the folder source \"{previous}\": if that is this folder before a move, run with --source-name \"{previous}\".";
            foreach (var condition in blocked.Where(c => c.Message?.EndsWith(hint, StringComparison.Ordinal) != true))
            {
                condition.Message += hint;
            }

            logger.LogWarning("{Stack}: owned by another source; this state folder saw it deployed by the folder source {Previous} (the --source-name that finds it again, if that was this folder)", $"{record.Namespace}/{record.Name}", previous);
        }
    }

    public Task ReleaseAsync(StoredStack stack, CancellationToken ct) => Task.CompletedTask;

    public void Forget(StoredStack stack) => state.Delete(stack.Key.Namespace ?? "default", stack.Key.Name);
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
