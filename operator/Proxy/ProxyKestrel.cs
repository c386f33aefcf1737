using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Skiff.Proxy;

/// <summary>
/// One small Kestrel server on one address, its socket bound by <see cref="ReusePortSocket"/>: each HTTP
/// listener of the proxy is one (so adding or removing a listener never touches another's socket), and
/// so is the metrics server.
/// </summary>
/// <remarks>
/// # Guarantees
/// - Only the given address is served: no configuration file, environment variable or
///   <c>ASPNETCORE_URLS</c> can add a listener; the proxy, not the server, handles SIGTERM.
/// - <see cref="KestrelApp.StopAsync"/> is Kestrel's graceful stop: the socket closes at once, requests in
///   flight finish, keep-alive connections are closed after their current response (<c>Connection:
///   close</c>), and whatever is left when the drain time is up is aborted.
/// </remarks>
internal static class ProxyKestrel
{
    /// <summary>Builds (but does not start) a server on <paramref name="endPoint"/>.</summary>
    /// <param name="endPoint">Where to listen.</param>
    /// <param name="drain">How long a graceful stop may take.</param>
    /// <param name="loggerFactory">Where the server's warnings go.</param>
    /// <param name="configure">Adds the server's handlers.</param>
    /// <param name="listen">Adjusts the endpoint (connection middleware).</param>
    public static KestrelApp Create(
        IPEndPoint endPoint,
        TimeSpan drain,
        ILoggerFactory loggerFactory,
        Action<WebApplication> configure,
        Action<ListenOptions>? listen = null)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        builder.Configuration.Sources.Clear();
        builder.Services.AddSingleton<IHostLifetime, NoSignalsLifetime>();
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = drain);
        builder.Logging.ClearProviders();
        builder.Logging.AddProvider(new ForwardingLoggerProvider(loggerFactory));
        builder.Logging.AddFilter("Microsoft", LogLevel.Warning);
        builder.Logging.AddFilter("Yarp", LogLevel.Error);

        // "Hosting failed to start" with a stack trace: the proxy reports a bind failure itself, in one line.
        builder.Logging.AddFilter("Microsoft.Extensions.Hosting", LogLevel.None);
        var app = new KestrelApp();
        builder.WebHost.UseSockets(sockets =>
        {
            sockets.CreateBoundListenSocket = at =>
            {
                var socket = ReusePortSocket.Bind((IPEndPoint)at);
                app.Socket = socket;
                return socket;
            };

            // Request handling runs on the thread that read the socket instead of being queued to the thread
            // pool: one thread hop less per request each way. Safe here because nothing on the proxy's request
            // path blocks (YARP and the handlers are asynchronous throughout).
            sockets.UnsafePreferInlineScheduling = true;
        });
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;

            // The upstream decides how big a body may be, not the proxy.
            kestrel.Limits.MaxRequestBodySize = null;
            kestrel.Listen(endPoint, o =>
            {
                o.Protocols = HttpProtocols.Http1;
                listen?.Invoke(o);
            });
        });

        app.Web = builder.Build();
        configure(app.Web);
        return app;
    }

    /// <summary>A built server and, once started, its listening socket.</summary>
    internal sealed class KestrelApp : IAsyncDisposable
    {
        public WebApplication Web { get; set; } = null!;

        /// <summary>The listening socket (set while Kestrel binds).</summary>
        public Socket? Socket { get; set; }

        /// <summary>The bound address (the real port when 0 was asked for).</summary>
        public IPEndPoint? LocalEndPoint => Socket?.LocalEndPoint as IPEndPoint;

        /// <summary>Binds and starts serving; then new connections of the address come here rather than to an older proxy.</summary>
        public async Task StartAsync(CancellationToken ct)
        {
            await Web.StartAsync(ct);
            if (Socket is { } socket)
            {
                ReusePortSocket.SteerNewConnectionsToNewest(socket);
            }
        }

        /// <summary>Graceful stop, aborted after <paramref name="drain"/>.</summary>
        public async Task StopAsync(TimeSpan drain)
        {
            using var deadline = new CancellationTokenSource(drain);
            await Web.StopAsync(deadline.Token);
        }

        /// <summary>Graceful stop (<see cref="StopAsync"/>), then the server is disposed whatever happened.</summary>
        public async Task StopAndDisposeAsync(TimeSpan drain)
        {
            try
            {
                await StopAsync(drain);
            }
            finally
            {
                await DisposeAsync();
            }
        }

        public ValueTask DisposeAsync() => Web.DisposeAsync();
    }

    /// <summary>Leaves process signals to <c>skiff proxy</c>.</summary>
    private sealed class NoSignalsLifetime : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}

/// <summary>Hands the log lines of an embedded server or library to the proxy's logger factory (Serilog in Program.cs).</summary>
internal sealed class ForwardingLoggerProvider(ILoggerFactory factory) : ILoggerProvider
{
    public ILogger CreateLogger(string categoryName) => factory.CreateLogger(categoryName);

    public void Dispose()
    {
    }
}
