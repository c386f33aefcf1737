using Prometheus;

namespace Skiff.Acme;

/// <summary>
/// <c>skiff_certificate_expiry_timestamp_seconds{domain}</c>: when the certificate served for a domain expires
/// (Unix seconds), one series per domain with a certificate on disk. Domains come from the specs, so the
/// label is bounded; a domain no longer wanted loses its series.
/// </summary>
public sealed class CertificateMetrics
{
    private readonly Gauge expiry;

    public CertificateMetrics(CollectorRegistry registry)
    {
        var factory = Prometheus.Metrics.WithCustomRegistry(registry);
        expiry = factory.CreateGauge("skiff_certificate_expiry_timestamp_seconds",
            "When the certificate served for a domain expires (Unix seconds).", new GaugeConfiguration { LabelNames = ["domain"] });
    }

    public void Expires(string domain, DateTimeOffset notAfter) => expiry.WithLabels(domain).Set(notAfter.ToUnixTimeSeconds());

    public void Forget(string domain) => expiry.RemoveLabelled(domain);
}
