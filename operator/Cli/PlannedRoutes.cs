using Microsoft.Extensions.Logging.Abstractions;
using Skiff.Hosting;
using Skiff.Reconcile;

namespace Skiff.Cli;

/// <summary>
/// The node proxy's routes as <c>skiff plan</c> sees them: read from the state folder's routes file, never written,
/// and taken as served (a plan previews the operator's next steps; it does not wait for the proxy).
/// </summary>
internal sealed class PlannedRoutes(NodeProxy file) : IRouteTable
{
    /// <summary>The routes when the node proxy (<c>skiff_proxy</c>) runs on <paramref name="engine"/>; null when it does not (the apps publish their ports).</summary>
    public static async Task<PlannedRoutes?> FindAsync(IContainerEngine engine, string stateRoot, string node, CancellationToken ct)
    {
        var proxies = await engine.ListContainersAsync(
            new Dictionary<string, string> { [SkiffLabels.ManagedBy] = SkiffLabels.ManagedByValue, [SkiffLabels.Component] = NodeProxy.Component },
            ct);
        return proxies.FirstOrDefault(p => p.Running) is { } proxy
            ? new PlannedRoutes(new NodeProxy(proxy.Image, ":9090", stateRoot, node, NullLogger.Instance))
            : null;
    }

    public StackRoutes Get(string stackKey) => file.Get(stackKey);

    public Task SetAsync(string stackKey, IReadOnlyList<StackRoute> routes, CancellationToken ct) =>
        throw new InvalidOperationException("skiff plan changes nothing: it does not write the proxy's routes");

    public Task<bool> AppliedAsync(CancellationToken ct) => Task.FromResult(true);
}
