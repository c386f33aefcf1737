using Skiff.Api;
using Skiff.Reconcile;
using Skiff.Runtime;
using Skiff.State;

namespace Skiff.Sources.Directory;

/// <summary>
/// The folder source's side of <c>skiff restart</c> and <c>skiff rollback</c> (see <see cref="RolloutRequest"/>): a waiting
/// request becomes the record's <see cref="StatusRecord.Override"/> (the generation moves on, so <c>skiff wait</c> waits for
/// it), and the override turns into the resource the reconciler sees: the <c>skiff.dev/restartedAt</c> annotation and, for
/// a rollback, the rolled-back-to image. An edit of the document drops it: the document wins, as a new deploy does.
/// </summary>
public static class FolderRequests
{
    public static AppDeployment Apply(StateStore state, StatusRecord record, AppDeployment resource, string? documentHash, DateTimeOffset now)
    {
        var (ns, name) = (record.Namespace, record.Name);
        if (state.ReadRequest(ns, name) is { } request)
        {
            var rollback = request.Action == RolloutRequest.Rollback && request.Image is not null;
            record.Override = new RolloutOverride
            {
                DocumentHash = documentHash,
                // A restart after a rollback keeps the rolled-back-to image.
                Image = rollback ? request.Image : record.Override?.DocumentHash == documentHash ? record.Override?.Image : null,
                RollbackTo = rollback ? request.Revision : record.Override?.DocumentHash == documentHash ? record.Override?.RollbackTo : null,
                RestartedAt = request.RequestedAt.ToString("O"),
            };
            record.Generation++;
            state.Write(record);
            state.DeleteRequest(ns, name);
            state.AppendEvent(ns, name, "Normal",
                rollback ? Reasons.RollbackRequested : Reasons.RestartRequested,
                rollback
                    ? $"Rolling back to revision {request.Revision} ({request.Image}) as asked (skiff rollback); the next edit of the document rolls forward"
                    : "Restarting: the same spec rolls out again as a new revision, as asked (skiff restart)",
                now);
        }
        else if (record.Override is not null && record.Override.DocumentHash != documentHash)
        {
            // The document changed since: it is the new desired state.
            record.Override = null;
            state.Write(record);
        }

        if (record.Override is not { } active)
        {
            return resource;
        }

        var annotations = new Dictionary<string, string>(resource.Metadata?.Annotations ?? new Dictionary<string, string>())
        {
            [RolloutRequests.RestartedAt] = active.RestartedAt,
        };
        if (active.RollbackTo is { } revision)
        {
            annotations[RolloutRequests.RollbackTo] = revision.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        return new AppDeployment
        {
            ApiVersion = resource.ApiVersion,
            Kind = resource.Kind,
            Metadata = new k8s.Models.V1ObjectMeta
            {
                Name = resource.Metadata?.Name,
                NamespaceProperty = resource.Metadata?.NamespaceProperty,
                Labels = resource.Metadata?.Labels,
                Annotations = annotations,
            },
            Spec = active.Image is { } image ? RolloutRequests.WithImage(resource.Spec, image) : resource.Spec,
            Status = resource.Status,
        };
    }

    /// <summary>Hands every stack with a waiting request to <paramref name="onRequest"/> (the work queue), as soon as its file appears.</summary>
    public static async Task WatchAsync(StateStore state, Action<ObjectKey> onRequest, CancellationToken ct)
    {
        System.IO.Directory.CreateDirectory(state.RequestsFolder);
        var signal = new SemaphoreSlim(0);
        using var watcher = new FileSystemWatcher(state.RequestsFolder, "*.json") { NotifyFilter = NotifyFilters.FileName | NotifyFilters.LastWrite };
        watcher.Created += (_, _) => signal.Release();
        watcher.Renamed += (_, _) => signal.Release();
        watcher.Changed += (_, _) => signal.Release();
        watcher.EnableRaisingEvents = true;
        while (!ct.IsCancellationRequested)
        {
            foreach (var file in System.IO.Directory.EnumerateFiles(state.RequestsFolder, "*.json"))
            {
                if (StateStore.RequestKey(file) is { } key)
                {
                    onRequest(new ObjectKey(key.Namespace, key.Name));
                }
            }

            try
            {
                // A missed notification costs at most the resync.
                await signal.WaitAsync(TimeSpan.FromSeconds(10), ct);
                await Task.Delay(TimeSpan.FromMilliseconds(100), ct);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }
}
