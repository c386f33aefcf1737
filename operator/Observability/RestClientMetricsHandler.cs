using System.Globalization;

namespace Skiff.Observability;

/// <summary>
/// Counts every request the Kubernetes client sends as <c>rest_client_requests_total{code,method,host}</c>,
/// like client-go: <c>code</c> is the HTTP status or <c>&lt;error&gt;</c> when no response came back.
/// Pass it to the client: <c>new Kubernetes(config, new RestClientMetricsHandler(metrics))</c>.
/// </summary>
/// <param name="metrics">Where to count.</param>
public sealed class RestClientMetricsHandler(SkiffMetrics metrics) : DelegatingHandler
{
    /// <inheritdoc/>
    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        // A known method, so a stray one cannot grow the label set; the host is the API server's (one per instance).
        var method = request.Method.Method.ToUpperInvariant() switch
        {
            "GET" or "POST" or "PUT" or "PATCH" or "DELETE" or "HEAD" or "OPTIONS" => request.Method.Method.ToUpperInvariant(),
            _ => "other",
        };
        var host = request.RequestUri is { IsAbsoluteUri: true } uri ? uri.Authority : "";
        try
        {
            var response = await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
            metrics.RestRequest(((int)response.StatusCode).ToString(CultureInfo.InvariantCulture), method, host);
            return response;
        }
        catch
        {
            metrics.RestRequest("<error>", method, host);
            throw;
        }
    }
}
