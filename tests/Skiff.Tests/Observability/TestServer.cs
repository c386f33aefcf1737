using Microsoft.Extensions.Logging.Abstractions;
using Prometheus;
using Skiff.Observability;
using Skiff.Runtime;

namespace Skiff.Tests.Observability;

/// <summary>A real <see cref="OperatorHttp"/> on ephemeral loopback ports, and a client for it.</summary>
internal sealed class TestServer : IAsyncDisposable
{
    private TestServer(OperatorHttp server, CollectorRegistry registry)
    {
        Server = server;
        Registry = registry;
    }

    public OperatorHttp Server { get; }

    public CollectorRegistry Registry { get; }

    public HttpClient Http { get; } = new() { Timeout = TimeSpan.FromSeconds(10) };

    public Uri Metrics => new($"http://{Server.MetricsEndpoint}/metrics");

    public Uri Healthz => new($"http://{Server.HealthEndpoint}/healthz");

    public Uri Readyz => new($"http://{Server.HealthEndpoint}/readyz");

    public static async Task<TestServer> StartAsync(
        CollectorRegistry? registry = null, HealthChecks? health = null, Func<object>? status = null,
        string metricsAddress = "127.0.0.1:0", string healthAddress = "127.0.0.1:0")
    {
        registry ??= Prometheus.Metrics.NewCustomRegistry();
        var server = await OperatorHttp.StartAsync(metricsAddress, healthAddress, registry, health ?? new HealthChecks(), status,
            NullLoggerFactory.Instance, CancellationToken.None);
        return new TestServer(server, registry);
    }

    public Task<Exposition> ScrapeAsync() => Exposition.ScrapeAsync(Http, Metrics);

    public async Task<(int Code, string Body)> GetAsync(Uri uri)
    {
        using var response = await Http.GetAsync(uri);
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await Server.DisposeAsync();
    }
}

internal sealed class LambdaReconciler(Func<ObjectKey, CancellationToken, Task<ReconcileResult>> reconcile) : IReconciler
{
    public Task<ReconcileResult> ReconcileAsync(ObjectKey key, CancellationToken cancellationToken) => reconcile(key, cancellationToken);
}
