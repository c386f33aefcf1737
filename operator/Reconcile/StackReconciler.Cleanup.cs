using Microsoft.Extensions.Logging;
using Skiff.Api;

namespace Skiff.Reconcile;

public sealed partial class StackReconciler
{
    /// <summary>
    /// Tears a stack down: containers and network go; volumes and the credentials stay unless
    /// reclaimPolicy is Delete; an adopted volume is never deleted, and neither are the credentials that
    /// open it (they go only with the volume). Works for a stack that never existed.
    /// </summary>
    /// <param name="names">The stack.</param>
    /// <param name="spec">The resource's last known spec (its reclaim policy decides about the data), or null when it is unknown: then data is kept.</param>
    /// <param name="ct">Cancels the teardown; a later call finishes it.</param>
    public async Task DeleteAsync(StackNames names, AppDeploymentSpec? spec, CancellationToken ct)
    {
        var containers = await engine.ListContainersAsync(
            new Dictionary<string, string>
            {
                [SkiffLabels.ManagedBy] = SkiffLabels.ManagedByValue,
                [SkiffLabels.App] = names.Key,
                [SkiffLabels.Source] = context.SourceId,
            },
            ct);
        if (services.Routes is { } routes && routes.Get(names.Key).Routes.Count > 0)
        {
            // The proxy stops listening first: a request gets a refused connection, never a dead upstream.
            await routes.SetAsync(names.Key, [], ct);
        }

        // Apps first, the database last, so nothing writes to the database while it stops.
        foreach (var c in containers.OrderBy(c => c.Component switch { StackNames.DatabaseComponent => 2, StackNames.CacheComponent => 1, _ => 0 }))
        {
            if (c.Running)
            {
                await engine.StopContainerAsync(c.Id, c.Component == StackNames.DatabaseComponent ? DatabaseStopTimeout : AppStopTimeout, ct);
            }

            await engine.RemoveContainerAsync(c.Id, ct);
        }

        var networks = await engine.ListNetworksAsync(
            new Dictionary<string, string> { [SkiffLabels.App] = names.Key, [SkiffLabels.Source] = context.SourceId }, ct);
        foreach (var network in networks.Where(n => n.Name == names.Network))
        {
            await engine.RemoveNetworkAsync(network.Name, ct);
        }

        var defaulted = spec is null ? null : Defaults.Apply(spec);
        if (defaulted?.Database is { Storage.ReclaimPolicy: ReclaimPolicies.Delete } db)
        {
            // The NAME-db credentials live as long as the data they open: they go only with the volume.
            if (!string.IsNullOrEmpty(db.Volume))
            {
                logger.LogInformation(
                    "{Stack}: keeping adopted volume {Volume} and its credentials {Secret} (Skiff never deletes a volume it adopted)",
                    names.Key, db.Volume, names.DatabaseSecret);
            }
            else if (await RemoveOwnedVolumeAsync(names.DatabaseVolume, ct))
            {
                await secrets.DeleteDatabaseCredentialsAsync(names, ct);
            }
            else
            {
                logger.LogWarning("{Stack}: keeping the credentials {Secret} with the volume they open", names.Key, names.DatabaseSecret);
            }
        }

        if (defaulted?.Cache is { Storage.ReclaimPolicy: ReclaimPolicies.Delete })
        {
            await RemoveOwnedVolumeAsync(names.CacheVolume, ct);
        }

        watch.TryRemove(names.Key, out _);
        logger.LogInformation("{Stack}: removed containers and network", names.Key);
    }

    /// <summary>The stacks on this engine that this source created (for pruning).</summary>
    public async Task<IReadOnlySet<string>> ListStacksAsync(CancellationToken ct)
    {
        var containers = await engine.ListContainerLabelsAsync(
            new Dictionary<string, string> { [SkiffLabels.ManagedBy] = SkiffLabels.ManagedByValue, [SkiffLabels.Source] = context.SourceId }, ct);
        var networks = await engine.ListNetworksAsync(
            new Dictionary<string, string> { [SkiffLabels.ManagedBy] = SkiffLabels.ManagedByValue, [SkiffLabels.Source] = context.SourceId }, ct);
        return containers.Select(labels => labels.TryGetValue(SkiffLabels.App, out var app) ? app : null)
            .Concat(networks.Select(n => n.Labels.TryGetValue(SkiffLabels.App, out var app) ? app : null))
            .OfType<string>()
            .ToHashSet(StringComparer.Ordinal);
    }

    /// <summary>Removes a volume this source created; true when it is gone (removed, or there was none).</summary>
    private async Task<bool> RemoveOwnedVolumeAsync(string name, CancellationToken ct)
    {
        var labels = await engine.InspectVolumeAsync(name, ct);
        if (labels is null)
        {
            return true;
        }

        if (!labels.TryGetValue(SkiffLabels.Source, out var source) || source != context.SourceId)
        {
            logger.LogWarning("Keeping volume {Volume}: it does not carry this source's labels", name);
            return false;
        }

        await engine.RemoveVolumeAsync(name, ct);
        logger.LogInformation("Removed volume {Volume} (reclaimPolicy: Delete)", name);
        return true;
    }
}
