using Skiff.Api;

namespace Skiff.Reconcile;

public sealed partial class StackReconciler
{
    /// <summary>
    /// Domains are served only by the node proxy: on a node without one (no <c>--proxy-image</c>) a stack with
    /// <c>spec.app.ports[].domains</c> gets <c>DomainsNotServed</c> (True, <see cref="Reasons.ProxyRequired"/>) and a Warning
    /// Event, and runs all the same; the condition goes once the proxy runs or the domains are removed.
    /// </summary>
    private void ApplyProxyRequired(AppDeploymentSpec spec, AppDeploymentStatus status, long? generation)
    {
        var domains = (spec.App?.Ports ?? []).SelectMany(p => p?.Domains ?? []).Where(d => !string.IsNullOrEmpty(d)).Distinct(StringComparer.Ordinal).ToList();
        if (context.Proxy || domains.Count == 0)
        {
            Conditions.Remove(status, ConditionTypes.DomainsNotServed);
            return;
        }

        Conditions.Set(status, ConditionTypes.DomainsNotServed, true, Reasons.ProxyRequired,
            $"spec.app.ports[].domains: {string.Join(", ", domains)} {(domains.Count == 1 ? "is" : "are")} not served: domains need the node proxy, and this operator runs without it; start skiff run with --proxy-image IMAGE (the chart: proxy.enabled=true). The app runs meanwhile, reachable on its hostPorts only",
            generation, time.GetUtcNow());
    }
}
