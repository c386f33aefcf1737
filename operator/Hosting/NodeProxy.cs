using System.Globalization;
using System.Net;
using Microsoft.Extensions.Logging;
using Skiff.Proxy;
using Skiff.Reconcile;
using Skiff.State;

namespace Skiff.Hosting;

/// <summary>
/// The node proxy from the operator's side (DESIGN §7, docs/PROXY.md): the routes table the reconciler switches, kept
/// in the state folder's <c>proxy/routes.json</c>, and the <c>skiff_proxy</c> container that follows it, run from the
/// operator's own image and replaced start-first when that image changes.
/// </summary>
/// <remarks>
/// # Guarantees
/// - The routes file is written atomically (<see cref="ProxyRoutes.Write"/>), whole, under one lock: two stacks'
///   switches never lose each other.
/// - <see cref="AppliedAsync"/> is true only when the proxy's <c>skiff_proxy_routes_version</c> is the fingerprint of the
///   file last written.
/// - An upgrade starts the new proxy beside the old one (both bind with SO_REUSEPORT) and stops the old one only once
///   the new one serves the current routes; the old one drains its connections on SIGTERM.
///
/// # Caveats
/// The state folder must be the same path on the host as in the operator's process (the proxy container bind-mounts
/// it): the chart mounts it at the same path. The switch time of each stack is kept in memory; after a restart it is
/// the file's last write, which only lengthens a drain.
/// </remarks>
public sealed class NodeProxy : IRouteTable, IDisposable
{
    public const string Component = "proxy";
    private static readonly string[] Names = ["skiff_proxy", "skiff_proxy_next"];
    private static readonly TimeSpan UpgradeTimeout = TimeSpan.FromSeconds(60);

    private readonly string image;
    private readonly IPEndPoint metricsAt;
    private readonly string metricsBind;
    private readonly string node;
    private readonly ILogger logger;
    private readonly SemaphoreSlim writing = new(1, 1);
    private readonly HttpClient http = new() { Timeout = TimeSpan.FromSeconds(2) };
    private readonly Dictionary<string, StackRoutes> table = new(StringComparer.Ordinal);
    private readonly Dictionary<string, IReadOnlyDictionary<string, Acme.CertificateState>> fromSecrets = new(StringComparer.Ordinal);
    private readonly HashSet<string> restored = new(StringComparer.Ordinal);
    private readonly string stateRoot;
    private long written;

    /// <param name="image">The operator's image, whose <c>skiff proxy</c> runs as the container.</param>
    /// <param name="metricsBindAddress">Where the proxy serves <c>/metrics</c> (<c>[host]:port</c>); the operator reads it there (on loopback when no host is given).</param>
    /// <param name="stateRoot">The state folder: the routes are in its <c>proxy/</c> folder.</param>
    /// <param name="node">The node's name, for the container's labels.</param>
    /// <param name="logger">Where switches and upgrades are told.</param>
    /// <param name="httpPort">The node's shared HTTP port for domains (<c>--proxy-http-port</c>).</param>
    /// <param name="httpsPort">The node's shared HTTPS port for domains (<c>--proxy-https-port</c>).</param>
    public NodeProxy(string image, string metricsBindAddress, string stateRoot, string node, ILogger logger, int httpPort = 80, int httpsPort = 443)
    {
        this.image = image;
        Shared = new ProxySharedListeners($"0.0.0.0:{httpPort.ToString(CultureInfo.InvariantCulture)}", $"0.0.0.0:{httpsPort.ToString(CultureInfo.InvariantCulture)}");
        this.node = node;
        this.logger = logger;
        metricsBind = metricsBindAddress;
        metricsAt = MetricsEndPoint(metricsBindAddress) ?? throw new ArgumentException($"--proxy-metrics-bind-address: \"{metricsBindAddress}\" is not [host]:port", nameof(metricsBindAddress));
        this.stateRoot = stateRoot;
        Folder = Path.Combine(stateRoot, "proxy");
        FilePath = Path.Combine(Folder, "routes.json");
        Load();
    }

    /// <summary>Where the proxy serves every domain: the node's shared HTTP and HTTPS addresses.</summary>
    public ProxySharedListeners Shared { get; }

    /// <summary>The certificates the proxy serves (<c>DOMAIN.crt</c>, <c>DOMAIN.key</c>), written by the certificate manager.</summary>
    public string CertsFolder => Path.Combine(Folder, "certs");

    /// <summary>The ACME HTTP-01 challenge files (one per token) the proxy answers on the shared HTTP port.</summary>
    public string ChallengeFolder => Path.Combine(Folder, "acme");

    /// <summary>The routes folder (bind-mounted into the proxy).</summary>
    public string Folder { get; }

    /// <summary>The routes file.</summary>
    public string FilePath { get; }

    /// <summary>Where the operator reads the proxy's metrics, or null for an address that is not <c>[host]:port</c>.</summary>
    public static IPEndPoint? MetricsEndPoint(string bindAddress)
    {
        var colon = bindAddress.LastIndexOf(':');
        if (colon < 0 || !int.TryParse(bindAddress[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
        {
            return null;
        }

        var host = bindAddress[..colon].Trim('[', ']');
        if (host.Length == 0 || host is "0.0.0.0" or "::")
        {
            return new IPEndPoint(IPAddress.Loopback, port);
        }

        return IPAddress.TryParse(host, out var ip) ? new IPEndPoint(ip, port) : null;
    }

    public StackRoutes Get(string stackKey)
    {
        lock (table)
        {
            return table.GetValueOrDefault(stackKey) ?? StackRoutes.None;
        }
    }

    public async Task SetAsync(string stackKey, IReadOnlyList<StackRoute> routes, CancellationToken ct)
    {
        await writing.WaitAsync(ct);
        try
        {
            List<ProxyListener> listeners;
            List<ProxyDomain> domains;
            lock (table)
            {
                var others = table.Where(t => t.Key != stackKey).ToList();
                var clash = others
                    .SelectMany(t => t.Value.Routes.Where(r => r.Domain is null).Select(r => (Stack: t.Key, r.Address)))
                    .FirstOrDefault(o => routes.Any(r => r.Domain is null && r.Address == o.Address));
                if (clash.Stack is not null)
                {
                    throw new InvalidOperationException(
                        $"spec.app.ports: {clash.Address} is published by stack {clash.Stack} already; give this stack another hostPort or hostIP");
                }

                var taken = others
                    .SelectMany(t => t.Value.Routes.Where(r => r.Domain is not null).Select(r => (Stack: t.Key, r.Domain)))
                    .FirstOrDefault(o => routes.Any(r => r.Domain == o.Domain));
                if (taken.Stack is not null)
                {
                    throw new InvalidOperationException(
                        $"spec.app.ports[].domains: {taken.Domain} is served by stack {taken.Stack} on this node already; one domain routes to one stack, remove it from one of them");
                }

                var all = others.SelectMany(t => t.Value.Routes).Concat(routes).ToList();
                if (all.Any(r => r.Domain is not null) && routes.FirstOrDefault(r => r.Domain is null && OnSharedPort(r.Address)) is { } onShared)
                {
                    throw new InvalidOperationException(
                        $"spec.app.ports: {onShared.Address} takes the node's shared HTTP/HTTPS port ({Shared.Http}, {Shared.Https}: skiff run --proxy-http-port and --proxy-https-port), where the proxy serves domains; give the port domains instead of a hostPort, or choose another hostPort");
                }

                if (routes.Any(r => r.Domain is not null)
                    && others.SelectMany(t => t.Value.Routes.Where(r => r.Domain is null && OnSharedPort(r.Address)).Select(r => (Stack: t.Key, r.Address))).FirstOrDefault() is { Stack: not null } holder)
                {
                    throw new InvalidOperationException(
                        $"spec.app.ports[].domains: stack {holder.Stack} publishes {holder.Address}, the node's shared HTTP/HTTPS port where domains are served; move its hostPort, or run skiff with other --proxy-http-port/--proxy-https-port");
                }

                listeners = others.SelectMany(t => ToListeners(t.Key, t.Value.Routes)).Concat(ToListeners(stackKey, routes)).ToList();
                domains = others.SelectMany(t => ToDomains(t.Key, t.Value.Routes)).Concat(ToDomains(stackKey, routes)).ToList();
            }

            var file = ProxyRoutes.For(listeners, Shared, domains);
            Directory.CreateDirectory(Folder);
            ProxyRoutes.Write(FilePath, file);
            Interlocked.Exchange(ref written, file.Fingerprint);
            lock (table)
            {
                restored.Remove(stackKey);
                if (routes.Count == 0)
                {
                    table.Remove(stackKey);
                    if (fromSecrets.Remove(stackKey, out var gone))
                    {
                        foreach (var domain in gone.Keys)
                        {
                            CertificateMetrics?.Forget(domain);
                        }
                    }
                }
                else
                {
                    table[stackKey] = new StackRoutes(routes, DateTimeOffset.UtcNow);
                }
            }

            logger.LogInformation(
                routes.Count == 0 ? "Proxy: {Stack} has no routes now" : "Proxy: {Stack} routes {Routes}",
                stackKey, string.Join(", ", routes.Select(r => $"{(r.Domain is null ? r.Address : r.Domain)} -> r{r.Revision} {r.Upstream}")));
        }
        finally
        {
            writing.Release();
        }

        if (routes.Any(r => r.Domain is not null && r.Tls))
        {
            TlsDomainsChanged?.Invoke();
        }
    }

    /// <summary>
    /// The domains the routes serve with <c>tls</c> whose certificate comes from the ACME CA (<see cref="Acme.CertificateManager"/>):
    /// not the ones of a <c>tlsSecret</c>, nor those of a stack read back from the routes file that no reconcile has looked
    /// at since the start (it may have a <c>tlsSecret</c>: no order is placed for a domain that has its own certificate).
    /// </summary>
    public IReadOnlyCollection<string> TlsDomains
    {
        get
        {
            lock (table)
            {
                return [.. table.Where(t => !restored.Contains(t.Key))
                    .SelectMany(t => t.Value.Routes.Where(r => r.Domain is not null && r.Tls && !FromSecret(t.Key, r.Domain)))
                    .Select(r => r.Domain!).Distinct(StringComparer.Ordinal)];
            }
        }
    }

    /// <summary>Writes <c>skiff_certificate_expiry_timestamp_seconds</c> of the certificates from Secrets (the ACME ones have the manager's).</summary>
    public Acme.CertificateMetrics? CertificateMetrics { get; set; }

    /// <summary>
    /// Reads the certificates of the stack's <c>spec.app.ports[].tlsSecret</c>s (<see cref="TlsSecrets"/>) and
    /// writes each usable one where the proxy reads it (<c>certs/DOMAIN.key</c> then <c>.crt</c>, 0600, only when it changed);
    /// a problem keeps the files there were and becomes the domain's <c>CertificateNotReady</c> message. Called at every
    /// reconcile before the routes are set, so the ACME manager never orders a certificate for those domains.
    /// </summary>
    public async Task ProvideCertificatesAsync(StackNames names, Api.AppDeploymentSpec spec, ISecretSource secrets, CancellationToken ct)
    {
        var now = DateTimeOffset.UtcNow;
        var found = await TlsSecrets.ResolveAsync(names.Namespace, spec, secrets, now, ct);
        var states = new Dictionary<string, Acme.CertificateState>(StringComparer.Ordinal);
        foreach (var certificate in found)
        {
            if (!Acme.CertificateFiles.IsDomain(certificate.Domain))
            {
                continue;
            }

            states[certificate.Domain] = Store(certificate, now);
        }

        bool changed;
        IReadOnlyDictionary<string, Acme.CertificateState>? before;
        lock (table)
        {
            before = fromSecrets.GetValueOrDefault(names.Key);
            changed = restored.Remove(names.Key) || (before?.Count ?? 0) != states.Count || (before is not null && !states.Keys.All(before.ContainsKey));
            if (states.Count == 0)
            {
                fromSecrets.Remove(names.Key);
            }
            else
            {
                fromSecrets[names.Key] = states;
            }
        }

        foreach (var gone in (before?.Keys ?? []).Except(states.Keys))
        {
            // Back to ACME or gone: the manager sets the series again when it has a certificate for it.
            CertificateMetrics?.Forget(gone);
        }

        if (changed)
        {
            TlsDomainsChanged?.Invoke();
        }
    }

    /// <summary>The certificate manager of the TLS domains, once the runnables made it (its states feed the stacks' status).</summary>
    public Acme.CertificateManager? Certificates { get; set; }

    /// <summary>
    /// The condition <c>CertificateNotReady</c> of a stack: True naming each of its TLS domains whose certificate is not
    /// issued (and why; the domain is served over HTTP meanwhile), False once every one is, absent for a stack without any.
    /// </summary>
    public void ReportCertificates(StackNames names, Api.AppDeploymentStatus status, long? generation)
    {
        var domains = Get(names.Key).Routes.Where(r => r.Domain is not null && r.Tls).Select(r => r.Domain!).Distinct(StringComparer.Ordinal).ToList();
        IReadOnlyDictionary<string, Acme.CertificateState>? secretStates;
        lock (table)
        {
            secretStates = fromSecrets.GetValueOrDefault(names.Key);
        }

        var acme = Certificates?.States;
        if ((acme is null && secretStates is null) || domains.Count == 0)
        {
            return;
        }

        var states = domains.ToDictionary(
            d => d,
            d => secretStates?.GetValueOrDefault(d) ?? acme?.GetValueOrDefault(d),
            StringComparer.Ordinal);

        var missing = domains.Select(d => (Domain: d, State: states[d]))
            .Where(d => d.State is { Ready: false })
            .Select(d => $"{d.Domain}: {d.State!.Message}{(d.State.NextAttempt is { } next ? $" (next try at {next:u})" : "")}")
            .ToList();
        var now = DateTimeOffset.UtcNow;
        if (missing.Count > 0)
        {
            Conditions.Set(status, Api.ConditionTypes.CertificateNotReady, true, Reasons.CertificateNotReady,
                $"no certificate to serve over HTTPS yet (HTTP keeps serving): {string.Join("; ", missing)}", generation, now);
        }
        else if (Conditions.Get(status, Api.ConditionTypes.CertificateNotReady) is not null && domains.All(d => states.GetValueOrDefault(d) is { Ready: true }))
        {
            Conditions.Set(status, Api.ConditionTypes.CertificateNotReady, false, Reasons.CertificatesReady,
                $"certificates issued for {string.Join(", ", domains)}", generation, now);
        }
    }

    /// <summary>Called after a stack's routes with a TLS domain were written (the certificate manager looks at once).</summary>
    public Action? TlsDomainsChanged { get; set; }

    public async Task<bool> AppliedAsync(CancellationToken ct) => await ServedVersionAsync(ct) == Interlocked.Read(ref written);

    /// <summary>
    /// Waits (at most <see cref="ServedWait"/>) until the proxy serves the routes as last written: before an ACME order,
    /// so that the CA's HTTP-01 request for a new domain finds the shared HTTP port bound and the challenge answered,
    /// rather than failing the order and putting the domain in the 5-minute retry backoff.
    /// </summary>
    public async Task WaitServedAsync(CancellationToken ct)
    {
        var deadline = DateTimeOffset.UtcNow + ServedWait;
        while (!await AppliedAsync(ct) && DateTimeOffset.UtcNow < deadline)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(200), ct);
        }
    }

    /// <summary>The longest <see cref="WaitServedAsync"/> waits: a proxy that does not come is reported by the order's failure.</summary>
    public static readonly TimeSpan ServedWait = TimeSpan.FromSeconds(30);

    /// <summary>Keeps the proxy container running from the operator's image; every 10 s until <paramref name="ct"/> ends.</summary>
    public async Task RunAsync(IContainerEngine engine, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await EnsureAsync(engine, ct);
            }
            catch (Exception e) when (!ct.IsCancellationRequested)
            {
                logger.LogWarning("Proxy: could not check the skiff_proxy container: {Error}; trying again in 10 s", e.Message);
            }

            try
            {
                await Task.Delay(TimeSpan.FromSeconds(10), ct);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>
    /// Makes sure the proxy container runs the operator's image: starts it when it is missing or stopped, and replaces
    /// one of another image (or settings) start-first.
    /// </summary>
    public async Task EnsureAsync(IContainerEngine engine, CancellationToken ct)
    {
        Directory.CreateDirectory(Folder);
        var spec = Spec(Names[0]);
        var hash = spec.Labels[SkiffLabels.SpecHash];
        var proxies = await engine.ListContainersAsync(
            new Dictionary<string, string> { [SkiffLabels.ManagedBy] = SkiffLabels.ManagedByValue, [SkiffLabels.Component] = Component },
            ct);
        var current = proxies.Where(p => p.SpecHash == hash).OrderByDescending(p => p.Running).FirstOrDefault();
        if (current is { Running: true })
        {
            foreach (var stale in proxies.Where(p => p != current))
            {
                await RetireAsync(engine, stale, ct);
            }

            if (current.Name != Names[0] && proxies.All(p => p == current || p.Name != Names[0]))
            {
                // An upgrade interrupted between the old proxy's removal and the rename.
                await engine.RenameContainerAsync(current.Id, Names[0], ct);
            }

            return;
        }

        if (current is not null)
        {
            logger.LogInformation("Proxy: starting {Name} ({State})", current.Name, current.State);
            await engine.StartContainerAsync(current.Id, ct);
            return;
        }

        if (!await EnsureImageAsync(engine, ct))
        {
            return;
        }

        // Start-first: the new proxy binds beside the old one (SO_REUSEPORT) before the old one drains.
        var name = Names.First(n => proxies.All(p => p.Name != n));
        var old = proxies.Where(p => p.Running).ToList();
        logger.LogInformation(old.Count == 0 ? "Proxy: starting {Name} from {Image}" : "Proxy: upgrading to {Image}: starting {Name} beside the running proxy", name, image);
        var id = await engine.CreateContainerAsync(spec with { Name = name }, ct);
        await engine.StartContainerAsync(id, ct);
        if (old.Count > 0 && !await WaitServingAsync(engine, id, ct))
        {
            // Never retire the proxy that serves for one that does not: the published ports would go dark.
            var logs = (await engine.LogsAsync(id, 20, ct)).Trim();
            logger.LogError(
                "Proxy: the new proxy ({Image}) did not listen on every route within {Timeout} s; the running proxy keeps serving, {Name} is removed and the upgrade tried again later. Its last log lines: {Logs}",
                image, UpgradeTimeout.TotalSeconds, name, logs);
            await engine.StopContainerAsync(id, TimeSpan.FromSeconds(5), ct);
            await engine.RemoveContainerAsync(id, ct);
            return;
        }

        foreach (var stale in proxies)
        {
            await RetireAsync(engine, stale, ct);
        }

        if (name != Names[0])
        {
            // The node's proxy is skiff_proxy again, as docker ps and the docs say.
            await engine.RenameContainerAsync(id, Names[0], ct);
        }
    }

    /// <summary>
    /// Leaving proxy mode: an operator started without <c>--proxy-image</c> stops and removes the node proxy an earlier
    /// start with the same state folder left running (it holds the ports the apps now publish themselves). The apps are
    /// then recreated with their ports published, stop-first: the ports do not answer between the proxy's stop and each
    /// app's start. A proxy of another state folder (another operator on the engine, a <c>skiff run --once</c> beside the
    /// daemon) is not this operator's to remove.
    /// </summary>
    /// <returns>How many proxy containers were removed.</returns>
    public static async Task<int> RemoveLeftoverAsync(IContainerEngine engine, string stateRoot, ILogger log, CancellationToken ct)
    {
        var proxies = await engine.ListContainersAsync(
            new Dictionary<string, string>
            {
                [SkiffLabels.ManagedBy] = SkiffLabels.ManagedByValue,
                [SkiffLabels.Component] = Component,
                [SkiffLabels.ProxyRoutes] = Path.Combine(stateRoot, "proxy"),
            },
            ct);
        foreach (var proxy in proxies)
        {
            log.LogWarning(
                "Proxy: this operator runs without --proxy-image, but the node proxy {Name} of an earlier start is still there; it is stopped and removed, "
                + "and the apps publish their ports themselves again (each is recreated, stop-first). Start with --proxy-image to keep the proxy",
                proxy.Name);
            if (proxy.Running)
            {
                await engine.StopContainerAsync(proxy.Id, TimeSpan.FromSeconds(35), ct);
            }

            await engine.RemoveContainerAsync(proxy.Id, ct);
        }

        return proxies.Count;
    }

    /// <summary>The container the operator runs the proxy as (its labels carry the settings' hash).</summary>
    public ContainerSpec Spec(string name)
    {
        IReadOnlyList<string> cmd = ["proxy", "--routes", "/routes/routes.json", "--metrics-bind-address", metricsBind];
        var labels = new Dictionary<string, string>
        {
            [SkiffLabels.ManagedBy] = SkiffLabels.ManagedByValue,
            [SkiffLabels.Component] = Component,
            [SkiffLabels.Node] = node,
            [SkiffLabels.ImageRef] = image,
            [SkiffLabels.ProxyRoutes] = Folder,
        };
        labels[SkiffLabels.SpecHash] = SpecHash.Compute(new ProxyConfigHash(image, cmd, Folder));
        return new ContainerSpec
        {
            Name = name,
            Image = image,
            Cmd = cmd,
            Labels = labels,
            Network = "host",
            Mounts = [new VolumeMount(Folder, "/routes", Bind: true, ReadOnly: true)],
            // Skiff's runtimeconfig turns dynamic PGO off (Directory.Build.props), and tiered compilation in a ReadyToRun
            // publish (Skiff.csproj); the proxy's per-request path gains from both and runs for weeks, so they are back on
            // here. The native executable's small gen0 budget and GC regions (Skiff.csproj) keep the operator small; the
            // proxy's garbage grows with its traffic, and with the runtime's own budget its p99 hop was 0.24 ms against
            // 0.44 ms with 4 MiB (docs/PERFORMANCE.md, "P4: the native build's gen0 budget"), so 0 gives it the runtime's
            // defaults back. Not in the spec hash: they change no behaviour.
            Env = ["DOTNET_TieredCompilation=1", "DOTNET_TieredPGO=1", "DOTNET_GCgen0size=0", "DOTNET_GCRegionSize=0"],
            // The proxy drains for 30 s on SIGTERM (its --drain-seconds): Docker waits a little longer before SIGKILL.
            StopTimeout = TimeSpan.FromSeconds(35),
        };
    }

    public void Dispose()
    {
        http.Dispose();
        writing.Dispose();
    }

    /// <summary>Whether the stack's domain has its certificate from a <c>tlsSecret</c> (call under the table's lock).</summary>
    private bool FromSecret(string stackKey, string? domain) =>
        domain is not null && fromSecrets.TryGetValue(stackKey, out var states) && states.ContainsKey(domain);

    /// <summary>Writes a usable certificate from a Secret where the proxy reads it (when it differs from what is there), and says its state.</summary>
    private Acme.CertificateState Store(Acme.SecretCertificate certificate, DateTimeOffset now)
    {
        if (!certificate.Usable)
        {
            return new Acme.CertificateState(Acme.CertificateStatus.NotReady, "SecretInvalid", certificate.Problem!, null, null);
        }

        var keyPath = Acme.CertificateFiles.Key(stateRoot, certificate.Domain);
        var certificatePath = Acme.CertificateFiles.Certificate(stateRoot, certificate.Domain);
        try
        {
            if (!Same(keyPath, certificate.KeyPem!) || !Same(certificatePath, certificate.CertificatePem!))
            {
                // The key first: a reader that sees the new certificate always finds its key (as the ACME manager writes them).
                AtomicFile.Write(keyPath, System.Text.Encoding.ASCII.GetBytes(certificate.KeyPem!), ownerOnly: true);
                AtomicFile.Write(certificatePath, System.Text.Encoding.ASCII.GetBytes(certificate.CertificatePem!), ownerOnly: true);
                logger.LogInformation("Certificate for {Domain} written from Secret {Secret} ({Field}), valid until {NotAfter:u}",
                    certificate.Domain, certificate.Secret, certificate.Field, certificate.Expiry);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            logger.LogWarning("Certificate for {Domain} from Secret {Secret} could not be written: {Error}", certificate.Domain, certificate.Secret, e.Message);
            return new Acme.CertificateState(Acme.CertificateStatus.NotReady, "SecretInvalid",
                $"{certificate.Field}: the certificate of Secret \"{certificate.Secret}\" could not be written to {certificatePath}: {e.Message}; check the state folder's permissions and free space", null, now.AddMinutes(1));
        }

        CertificateMetrics?.Expires(certificate.Domain, certificate.Expiry!.Value);
        return new Acme.CertificateState(Acme.CertificateStatus.Ready, "FromSecret",
            $"from Secret {certificate.Secret}, valid until {certificate.Expiry:u}", certificate.Expiry, null);

        static bool Same(string path, string text)
        {
            try
            {
                return File.ReadAllText(path) == text;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return false;
            }
        }
    }

    private static IEnumerable<ProxyListener> ToListeners(string stack, IEnumerable<StackRoute> routes) =>
        routes.Where(r => r.Domain is null).Select(r => new ProxyListener(r.Address, ProxyProtocolNames.FromName(r.Protocol), stack, r.Port, r.Revision, r.Upstream));

    private static IEnumerable<ProxyDomain> ToDomains(string stack, IEnumerable<StackRoute> routes) =>
        routes.Where(r => r.Domain is not null).Select(r => new ProxyDomain(r.Domain!, r.Tls, stack, r.Port, r.Revision, r.Upstream));

    /// <summary>Whether a published address takes the port of a shared listener (on an overlapping IP).</summary>
    private bool OnSharedPort(string address) =>
        IPEndPoint.TryParse(address, out var at)
        && new[] { Shared.HttpEndPoint, Shared.HttpsEndPoint }.Any(s => s.Port == at.Port && ProxyRoutes.Overlap(s.Address, at.Address));

    private void Load()
    {
        ProxyRoutes file;
        try
        {
            file = ProxyRoutes.Read(FilePath);
        }
        catch (FileNotFoundException)
        {
            return;
        }
        catch (DirectoryNotFoundException)
        {
            return;
        }
        catch (Exception e) when (e is ProxyRoutesException or IOException)
        {
            logger.LogWarning("Proxy: ignoring {File}: {Error}; every stack's routes are written again", FilePath, e.Message);
            return;
        }

        var since = new DateTimeOffset(File.GetLastWriteTimeUtc(FilePath), TimeSpan.Zero);
        var restored = file.Listeners.Select(l => (l.Stack, Route: new StackRoute(l.Address, l.Protocol.Name(), l.Port, l.Revision, l.Upstream)))
            .Concat((file.Domains ?? []).Select(d => (d.Stack, Route: new StackRoute("", "http", d.Port, d.Revision, d.Upstream, d.Domain, d.Tls))));
        foreach (var stack in restored.GroupBy(l => l.Stack, StringComparer.Ordinal))
        {
            table[stack.Key] = new StackRoutes(stack.Select(l => l.Route).ToList(), since);
            this.restored.Add(stack.Key);
        }

        written = file.Fingerprint;
    }

    private async Task<bool> EnsureImageAsync(IContainerEngine engine, CancellationToken ct)
    {
        if (await engine.InspectImageAsync(image, ct) is not null)
        {
            return true;
        }

        try
        {
            logger.LogInformation("Proxy: pulling {Image}", image);
            await engine.PullImageAsync(image, null, null, ct);
            return true;
        }
        catch (ImageUnavailableException e)
        {
            logger.LogError("Proxy: --proxy-image {Image} cannot be pulled: {Error}; published ports are not served until it can", image, e.Message);
            return false;
        }
    }

    /// <summary>Waits up to <see cref="UpgradeTimeout"/> for the new proxy to serve; false when it did not (or exited).</summary>
    private async Task<bool> WaitServingAsync(IContainerEngine engine, string id, CancellationToken ct)
    {
        var deadline = DateTimeOffset.UtcNow + UpgradeTimeout;
        while (DateTimeOffset.UtcNow < deadline)
        {
            switch (await ServesAsync(engine, id, ct))
            {
                case true:
                    return true;
                case null:
                    return false;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(200), ct);
        }

        return false;
    }

    /// <summary>
    /// The new proxy listens on every address of the routes: its log says so per listener ("ADDRESS: Http for STACK…").
    /// Its metrics cannot tell: the old proxy answers on the same port with the same routes. Null when it stopped.
    /// </summary>
    private async Task<bool?> ServesAsync(IContainerEngine engine, string id, CancellationToken ct)
    {
        var c = await engine.InspectContainerAsync(id, ct);
        if (c is null || c.State is "exited" or "dead")
        {
            return null;
        }

        if (!c.Running)
        {
            return false;
        }

        List<string> addresses;
        lock (table)
        {
            addresses = table.Values.SelectMany(t => t.Routes.Where(r => r.Domain is null).Select(r => r.Address)).ToList();
            if (table.Values.Any(t => t.Routes.Any(r => r.Domain is not null)))
            {
                addresses.AddRange([Shared.Http, Shared.Https]);
            }
        }

        var lines = (await engine.LogsAsync(id, 2000, ct)).Split('\n');
        return lines.Any(l => l.Contains("Proxy following", StringComparison.Ordinal))
            && addresses.All(address => lines.Any(l => l.Contains(address + ": ", StringComparison.Ordinal) && l.Contains(" for ", StringComparison.Ordinal)));
    }

    private async Task RetireAsync(IContainerEngine engine, ObservedContainer old, CancellationToken ct)
    {
        logger.LogInformation("Proxy: stopping {Name} (it drains its connections first)", old.Name);
        if (old.Running)
        {
            await engine.StopContainerAsync(old.Id, TimeSpan.FromSeconds(35), ct);
        }

        await engine.RemoveContainerAsync(old.Id, ct);
    }

    /// <summary>The proxy's <c>skiff_proxy_routes_version</c>, or null when it does not answer.</summary>
    private async Task<long?> ServedVersionAsync(CancellationToken ct)
    {
        try
        {
            var host = metricsAt.Address.ToString();
            host = metricsAt.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{host}]" : host;
            var text = await http.GetStringAsync(new Uri($"http://{host}:{metricsAt.Port.ToString(CultureInfo.InvariantCulture)}/metrics"), ct);
            foreach (var line in text.Split('\n'))
            {
                if (line.StartsWith("skiff_proxy_routes_version ", StringComparison.Ordinal)
                    && double.TryParse(line.AsSpan("skiff_proxy_routes_version ".Length), NumberStyles.Float, CultureInfo.InvariantCulture, out var v))
                {
                    return (long)v;
                }
            }

            return null;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !ct.IsCancellationRequested)
        {
            return null;
        }
    }
}

/// <summary>
/// <c>--proxy-image</c> and <c>--proxy-metrics-bind-address</c>: the node proxy is run from that image (the operator's
/// own), and the operator reads its metrics at that address.
/// </summary>
public sealed record NodeProxySettings(string Image, string MetricsBindAddress)
{
    /// <summary>The node's shared HTTP port for domains (<c>--proxy-http-port</c>).</summary>
    public int HttpPort { get; init; } = 80;

    /// <summary>The node's shared HTTPS port for domains (<c>--proxy-https-port</c>).</summary>
    public int HttpsPort { get; init; } = 443;

    public NodeProxy Create(string stateRoot, string node, ILoggerFactory logging) =>
        new(Image, MetricsBindAddress, stateRoot, node, logging.CreateLogger("Skiff.Proxy"), HttpPort, HttpsPort);

    /// <summary>
    /// Starts (or upgrades) the proxy before the first reconcile; a failure is logged and tried again by its runnable.
    /// Without a proxy (no <c>--proxy-image</c>), a node proxy left by an earlier start with one is removed (<see cref="NodeProxy.RemoveLeftoverAsync"/>).
    /// </summary>
    public static async Task StartAsync(NodeProxy? proxy, IContainerEngine engine, string stateRoot, ILogger log, CancellationToken ct)
    {
        if (proxy is null)
        {
            try
            {
                await NodeProxy.RemoveLeftoverAsync(engine, stateRoot, log, ct);
            }
            catch (Exception e) when (e is not OperationCanceledException and not EngineUnreachableException)
            {
                log.LogWarning("Proxy: could not remove the node proxy left from a start with --proxy-image: {Error}; remove it with docker rm -f skiff_proxy", e.Message);
            }

            return;
        }

        try
        {
            await proxy.EnsureAsync(engine, ct);
        }
        catch (Exception e) when (e is not OperationCanceledException and not EngineUnreachableException)
        {
            log.LogWarning("Proxy: could not start the skiff_proxy container: {Error}", e.Message);
        }
    }

    /// <summary>
    /// The runnables that keep the proxy running and, with it, the certificates of its TLS domains issued and renewed
    /// from the ACME CA of <paramref name="acme"/> (files in the state folder the proxy reads; docs/PROXY.md).
    /// </summary>
    public static IEnumerable<Runnable> Runnables(NodeProxy? proxy, IContainerEngine engine, Acme.AcmeOptions acme, string stateRoot, OperatorServices services)
    {
        if (proxy is null)
        {
            return [];
        }

        var metrics = new Acme.CertificateMetrics(services.Registry);
        var certificates = new Acme.CertificateManager(stateRoot, acme, metrics, services.Logging.CreateLogger<Acme.CertificateManager>());
        proxy.CertificateMetrics = metrics;
        proxy.TlsDomainsChanged = certificates.Nudge;
        proxy.Certificates = certificates;
        return
        [
            new Runnable("node proxy", token => proxy.RunAsync(engine, token)),
            new Runnable("certificates", async token =>
            {
                using (certificates)
                {
                    await certificates.RunAsync(() => proxy.TlsDomains, token, proxy.WaitServedAsync);
                }
            }),
        ];
    }
}
