using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Prometheus;

namespace Skiff.Proxy;

/// <summary>What <c>skiff proxy</c> is told.</summary>
/// <param name="RoutesPath">The routes file the operator writes.</param>
/// <param name="MetricsAt">Where <c>/metrics</c> and <c>/healthz</c> are served; null for nowhere.</param>
/// <param name="Drain">How long a retired listener's connections, and all of them at shutdown, are given.</param>
internal sealed record ProxyOptions(string RoutesPath, IPEndPoint? MetricsAt, TimeSpan Drain)
{
    /// <summary>How often the routes file is read even without a change event.</summary>
    public TimeSpan CheckPeriod { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>How often the certs folder is read for new or renewed certificates.</summary>
    public TimeSpan CertificatePeriod { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>The certificates (<c>DOMAIN.crt</c>, <c>DOMAIN.key</c>): <c>certs/</c> beside the routes file.</summary>
    public string CertsFolder => Path.Combine(Path.GetDirectoryName(Path.GetFullPath(RoutesPath))!, "certs");

    /// <summary>The ACME HTTP-01 challenges (one file per token): <c>acme/</c> beside the routes file.</summary>
    public string ChallengeFolder => Path.Combine(Path.GetDirectoryName(Path.GetFullPath(RoutesPath))!, "acme");
}

/// <summary>
/// The node proxy (DESIGN §7): follows the routes file and keeps one listener per address, switching
/// upstreams in place, until stopped; then drains. docs/PROXY.md is its contract.
/// </summary>
/// <remarks>
/// # Guarantees
/// - One loop applies routes: on a change event or every <see cref="ProxyOptions.CheckPeriod"/> it reads
///   the file and applies <see cref="RouteDiff"/> between the running listeners and the last good routes.
///   Listeners that stay keep their sockets; a switch only changes where new requests and connections go.
/// - A listener that cannot bind is logged (once per error) and tried again on every check; the others
///   are not held back. <c>skiff_proxy_routes_version</c> is the last routes applied.
/// - Removed listeners stop accepting at once and drain in the background for <see cref="ProxyOptions.Drain"/>.
/// - On stop, every listener stops accepting at once and drains; the metrics server goes last.
/// </remarks>
internal sealed class ProxyServer
{
    private readonly ProxyOptions options;
    private readonly ILoggerFactory loggerFactory;
    private readonly ILogger logger;
    private readonly ProxyMetrics metrics = new(Prometheus.Metrics.NewCustomRegistry());
    private readonly Dictionary<string, IProxyListener> running = new(StringComparer.Ordinal);
    private readonly List<(Task Task, ProxyListener Route)> draining = [];
    private readonly Dictionary<string, (ProxyListener Route, string Reason)> startErrors = new(StringComparer.Ordinal);
    private readonly Dictionary<string, DomainListener> shared = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> sharedErrors = new(StringComparer.Ordinal);
    private readonly DomainRouter router;

    // Null until the first good routes file: then the proxy serves nothing and exports version 0.
    private ProxyRoutes? wanted;

    public ProxyServer(ProxyOptions options, ILoggerFactory loggerFactory)
    {
        this.options = options;
        this.loggerFactory = loggerFactory;
        logger = loggerFactory.CreateLogger("Skiff.Proxy");
        router = new DomainRouter(new CertificateStore(options.CertsFolder, logger), options.ChallengeFolder);
    }

    /// <summary>Where the metrics server listens, once started (the real port when 0 was asked for).</summary>
    public IPEndPoint? MetricsEndPoint { get; private set; }

    /// <summary>Serves until <paramref name="stop"/>, then drains and returns.</summary>
    /// <exception cref="IOException">The metrics address cannot be bound.</exception>
    public async Task RunAsync(CancellationToken stop)
    {
        await using var metricsServer = options.MetricsAt is { } at ? await StartMetricsAsync(at) : null;
        using var forwarding = new HttpForwarding(loggerFactory);
        using var file = new RoutesFile(options.RoutesPath, logger);
        logger.LogInformation("Proxy following {Routes}; metrics on {Metrics}", file.Path, MetricsEndPoint?.ToString() ?? "(disabled)");
        router.Certificates.Refresh();
        var certificates = FollowCertificatesAsync(stop);
        while (!stop.IsCancellationRequested)
        {
            if (file.ReadGood() is { } routes)
            {
                wanted = routes;
            }

            await ApplyAsync(forwarding, stop);
            await file.WaitAsync(options.CheckPeriod, stop);
        }

        logger.LogInformation("Stopping: {Count} listeners stop accepting and drain for up to {Drain} s", running.Count + shared.Count, options.Drain.TotalSeconds);
        var stopping = running.Values.Select(l => l.StopAsync(options.Drain)).Concat(shared.Values.Select(l => l.StopAsync(options.Drain))).ToList();
        running.Clear();
        shared.Clear();
        await Task.WhenAll(stopping.Concat(draining.Select(d => d.Task)).Append(certificates));
        if (metricsServer is not null)
        {
            await metricsServer.StopAsync(TimeSpan.FromSeconds(1));
        }

        logger.LogInformation("Proxy stopped");
    }

    private async Task ApplyAsync(HttpForwarding forwarding, CancellationToken stop)
    {
        foreach (var (_, route) in draining.Where(d => d.Task.IsCompleted))
        {
            ForgetUnlessRunning(route);
        }

        draining.RemoveAll(d => d.Task.IsCompleted);
        if (wanted is null)
        {
            return;
        }

        var diff = RouteDiff.Compute(running.Values.Select(l => l.Route), wanted.Listeners);
        foreach (var gone in diff.Stop)
        {
            var listener = running[gone.Address];
            running.Remove(gone.Address);
            logger.LogInformation("{Listener}: removed ({Stack} {Port}); draining for up to {Drain} s", gone.Address, gone.Stack, gone.Port, options.Drain.TotalSeconds);
            draining.Add((DrainAsync(listener), gone));
        }

        foreach (var change in diff.Switches)
        {
            running[change.To.Address].SwitchTo(change.To);
            metrics.Switched(change.To.Address);
            logger.LogInformation("{Listener}: {Stack} {Port} now goes to {Upstream} (revision {Revision}); was {OldUpstream} (revision {OldRevision})",
                change.To.Address, change.To.Stack, change.To.Port, change.To.Upstream, change.To.Revision, change.From.Upstream, change.From.Revision);
        }

        foreach (var change in diff.Updates)
        {
            running[change.To.Address].SwitchTo(change.To);
        }

        foreach (var add in diff.Start)
        {
            if (stop.IsCancellationRequested)
            {
                break;
            }

            var listenerMetrics = metrics.For(add.Address, add.Protocol);
            IProxyListener listener = add.Protocol == ProxyProtocol.Http
                ? new HttpProxyListener(add, forwarding, listenerMetrics, options.Drain, loggerFactory)
                : new TcpProxyListener(add, listenerMetrics, loggerFactory);
            try
            {
                await listener.StartAsync(stop);
                running[add.Address] = listener;
                startErrors.Remove(add.Address);
                logger.LogInformation("{Listener}: {Protocol} for {Stack} {Port} to {Upstream} (revision {Revision})",
                    add.Address, ProxyMetrics.Label(add.Protocol), add.Stack, add.Port, add.Upstream, add.Revision);
            }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or OperationCanceledException)
            {
                await listener.StopAsync(TimeSpan.Zero);
                var reason = e.GetBaseException().Message;
                if (!startErrors.TryGetValue(add.Address, out var last) || last.Reason != reason)
                {
                    startErrors[add.Address] = (add, reason);
                    logger.LogWarning("{Listener}: cannot listen ({Reason}); trying again every {Period} s", add.Address, reason, options.CheckPeriod.TotalSeconds);
                }
            }
        }

        // A listener that never bound and is no longer wanted: its zero series go.
        foreach (var (address, failed) in startErrors.Where(e => !running.ContainsKey(e.Key) && wanted.Listeners.All(l => l.Address != e.Key)).ToList())
        {
            startErrors.Remove(address);
            ForgetUnlessRunning(failed.Route);
        }

        await ApplySharedAsync(forwarding, stop);
        metrics.RoutesApplied(wanted.Fingerprint);
    }

    /// <summary>
    /// The shared HTTP and HTTPS listeners: up while the routes have domains, on the addresses of <c>shared</c>; the
    /// domain table is swapped whole, so a domain's switch, like a listener's, moves new requests only.
    /// </summary>
    private async Task ApplySharedAsync(HttpForwarding forwarding, CancellationToken stop)
    {
        var domains = wanted!.Domains ?? [];
        var want = new Dictionary<string, bool>(StringComparer.Ordinal);
        if (domains.Count > 0 && wanted.Shared is { } addresses)
        {
            want[addresses.Http] = false;
            want[addresses.Https] = true;
            router.HttpsPort = addresses.HttpsEndPoint.Port;
        }

        var before = router.Table;
        router.Table = DomainTable.From(domains);
        foreach (var domain in domains)
        {
            if (before.Find(domain.Domain) is not { } was)
            {
                logger.LogInformation("{Domain}: for {Stack} {Port} to {Upstream} (revision {Revision}, tls {Tls})", domain.Domain, domain.Stack, domain.Port, domain.Upstream, domain.Revision, domain.Tls);
            }
            else if (was != domain)
            {
                foreach (var address in shared.Keys)
                {
                    metrics.Switched(address);
                }

                logger.LogInformation("{Domain}: {Stack} {Port} now goes to {Upstream} (revision {Revision}); was {OldUpstream} (revision {OldRevision})",
                    domain.Domain, domain.Stack, domain.Port, domain.Upstream, domain.Revision, was.Upstream, was.Revision);
            }
        }

        foreach (var gone in before.Domains.Where(d => router.Table.Find(d.Domain) is null))
        {
            logger.LogInformation("{Domain}: removed ({Stack} {Port})", gone.Domain, gone.Stack, gone.Port);
        }

        foreach (var (address, listener) in shared.Where(l => !want.TryGetValue(l.Key, out var https) || https != l.Value.Https).ToList())
        {
            shared.Remove(address);
            logger.LogInformation("{Listener}: shared {Scheme} listener removed; draining for up to {Drain} s", address, listener.Https ? "HTTPS" : "HTTP", options.Drain.TotalSeconds);
            var route = new ProxyListener(address, ProxyProtocol.Http, "(shared)", listener.Https ? "https" : "http", 0, "0.0.0.0:1");
            draining.Add((DrainAsync(listener.StopAsync, address), route));
        }

        foreach (var (address, https) in want.Where(w => !shared.ContainsKey(w.Key)))
        {
            if (stop.IsCancellationRequested)
            {
                break;
            }

            var listener = new DomainListener(address, https, router, forwarding, metrics.For(address, ProxyProtocol.Http), options.Drain, loggerFactory);
            try
            {
                await listener.StartAsync(stop);
                shared[address] = listener;
                sharedErrors.Remove(address);
                logger.LogInformation("{Listener}: shared {Scheme} for {Count} domains", address, https ? "HTTPS" : "HTTP", domains.Count);
            }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or OperationCanceledException)
            {
                await listener.StopAsync(TimeSpan.Zero);
                var reason = e.GetBaseException().Message;
                if (!sharedErrors.TryGetValue(address, out var last) || last != reason)
                {
                    sharedErrors[address] = reason;
                    logger.LogWarning("{Listener}: cannot listen for the domains over {Scheme} ({Reason}); trying again every {Period} s",
                        address, https ? "HTTPS" : "HTTP", reason, options.CheckPeriod.TotalSeconds);
                }
            }
        }

        foreach (var address in sharedErrors.Keys.Where(a => !want.ContainsKey(a)).ToList())
        {
            sharedErrors.Remove(address);
            if (!running.ContainsKey(address))
            {
                metrics.Forget(address, ProxyProtocol.Http);
            }
        }
    }

    private async Task FollowCertificatesAsync(CancellationToken stop)
    {
        using var timer = new PeriodicTimer(options.CertificatePeriod);
        try
        {
            while (await timer.WaitForNextTickAsync(stop))
            {
                router.Certificates.Refresh();
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private void ForgetUnlessRunning(ProxyListener route)
    {
        if (!running.ContainsKey(route.Address) && !shared.ContainsKey(route.Address))
        {
            metrics.Forget(route.Address, route.Protocol);
        }
    }

    private Task DrainAsync(IProxyListener listener) => DrainAsync(listener.StopAsync, listener.Route.Address);

    private async Task DrainAsync(Func<TimeSpan, Task> stopListener, string address = "")
    {
        try
        {
            await stopListener(options.Drain);
        }
        catch (Exception e)
        {
            logger.LogWarning("{Listener}: draining failed: {Reason}", address, e.Message);
        }
    }

    private async Task<ProxyKestrel.KestrelApp> StartMetricsAsync(IPEndPoint at)
    {
        var server = ProxyKestrel.Create(at, TimeSpan.FromSeconds(1), loggerFactory, web =>
        {
            web.MapGet("/metrics", async (HttpContext http) =>
            {
                using var buffer = new MemoryStream();
                await metrics.Registry.CollectAndExportAsTextAsync(buffer, http.RequestAborted);
                http.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
                http.Response.ContentLength = buffer.Length;
                buffer.Position = 0;
                await buffer.CopyToAsync(http.Response.Body, http.RequestAborted);
            });
            web.MapGet("/healthz", () => Results.Text("ok"));
        });
        try
        {
            await server.StartAsync(CancellationToken.None);
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }

        MetricsEndPoint = server.LocalEndPoint;
        return server;
    }
}
