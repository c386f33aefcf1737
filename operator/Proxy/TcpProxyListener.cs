using System.Buffers;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;

namespace Skiff.Proxy;

/// <summary>
/// A TCP listener: an accept loop; each connection is joined to a new connection to the upstream current
/// when it was accepted, and bytes are copied both ways until both sides have closed.
/// </summary>
/// <remarks>
/// # Guarantees
/// - A half-close passes through: when one side finishes sending, the other side's sending half is shut
///   down, and the connection ends when both have.
/// - A reset on one side resets the other; an upstream that refuses or does not answer within 10 s
///   gets the client connection closed (and counts as an upstream error).
/// - On stop, accepting ends at once; open connections get the drain time, then are cut.
/// </remarks>
internal sealed class TcpProxyListener : IProxyListener
{
    private const int BufferSize = 16 * 1024;
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(10);

    private readonly ProxyMetrics.ListenerMetrics metrics;
    private readonly ILogger logger;
    private readonly LogThrottle errorLog = new(TimeSpan.FromSeconds(5));
    private readonly CancellationTokenSource cut = new();
    private readonly ConcurrentDictionary<Task, bool> open = new();
    private volatile ProxyListener route;
    private Socket? listening;
    private Task acceptLoop = Task.CompletedTask;

    public TcpProxyListener(ProxyListener route, ProxyMetrics.ListenerMetrics metrics, ILoggerFactory loggerFactory)
    {
        this.route = route;
        this.metrics = metrics;
        logger = loggerFactory.CreateLogger("Skiff.Proxy");
    }

    public ProxyListener Route => route;

    public Task StartAsync(CancellationToken ct)
    {
        var socket = ReusePortSocket.Bind(route.EndPoint);
        try
        {
            socket.Listen(512);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        ReusePortSocket.SteerNewConnectionsToNewest(socket);
        listening = socket;
        acceptLoop = Task.Run(() => AcceptAsync(socket), CancellationToken.None);
        return Task.CompletedTask;
    }

    public void SwitchTo(ProxyListener route) => this.route = route;

    public async Task StopAsync(TimeSpan drain)
    {
        listening?.Dispose();
        await acceptLoop;
        var all = Task.WhenAll(open.Keys);
        if (await Task.WhenAny(all, Task.Delay(drain)) != all)
        {
            logger.LogInformation("{Listener}: closing {Count} TCP connections still open after the drain time", route.Address, open.Count);
            await cut.CancelAsync();
            await all;
        }

        cut.Dispose();
    }

    private async Task AcceptAsync(Socket socket)
    {
        while (true)
        {
            Socket client;
            try
            {
                client = await socket.AcceptAsync();
            }
            catch (Exception e) when (e is ObjectDisposedException or SocketException { SocketErrorCode: SocketError.OperationAborted or SocketError.Interrupted or SocketError.InvalidArgument })
            {
                return;
            }
            catch (SocketException e)
            {
                // Out of file descriptors, say: keep the listener, try again shortly.
                logger.LogWarning("{Listener}: accept failed: {Reason}", route.Address, e.Message);
                await Task.Delay(TimeSpan.FromMilliseconds(100));
                continue;
            }

            var connection = ServeAsync(client, route);
            open.TryAdd(connection, true);
            _ = connection.ContinueWith(t => open.TryRemove(t, out _), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
    }

    private async Task ServeAsync(Socket client, ProxyListener to)
    {
        await Task.Yield();
        metrics.ActiveConnections.Inc();
        Socket? upstream = null;
        try
        {
            client.NoDelay = true;
            upstream = await ConnectAsync(to);
            if (upstream is null)
            {
                client.Shutdown(SocketShutdown.Both);
                return;
            }

            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cut.Token);
            var up = PumpAsync(client, upstream, stop);
            var down = PumpAsync(upstream, client, stop);
            await Task.WhenAll(up, down);
            if (!up.Result || !down.Result)
            {
                // One side reset (or the drain time ran out): reset the other rather than pretend a clean end.
                client.LingerState = new LingerOption(true, 0);
                upstream.LingerState = new LingerOption(true, 0);
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            client.LingerState = new LingerOption(true, 0);
        }
        finally
        {
            upstream?.Dispose();
            client.Dispose();
            metrics.ActiveConnections.Dec();
        }
    }

    private async Task<Socket?> ConnectAsync(ProxyListener to)
    {
        EndPoint at = IPEndPoint.TryParse(to.Upstream, out var ip)
            ? ip
            : new DnsEndPoint(to.Upstream[..to.Upstream.LastIndexOf(':')], int.Parse(to.Upstream[(to.Upstream.LastIndexOf(':') + 1)..], System.Globalization.CultureInfo.InvariantCulture));
        var socket = ip is null ? new Socket(SocketType.Stream, ProtocolType.Tcp) : new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cut.Token);
        timeout.CancelAfter(ConnectTimeout);
        try
        {
            socket.NoDelay = true;
            await socket.ConnectAsync(at, timeout.Token);
            return socket;
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            socket.Dispose();
            metrics.UpstreamErrors.Inc();
            if (errorLog.TryEnter(out var suppressed))
            {
                logger.LogWarning("{Listener}: upstream {Upstream} ({Stack} {Port}, revision {Revision}) failed: {Reason} ({Suppressed} more since the last line)",
                    to.Address, to.Upstream, to.Stack, to.Port, to.Revision, e is OperationCanceledException ? "no answer within 10 s" : e.Message, suppressed);
            }

            return null;
        }
    }

    /// <summary>Copies until the source finishes sending, then ends the destination's sending half. False when a side failed (the other pump is then stopped too).</summary>
    private static async Task<bool> PumpAsync(Socket from, Socket to, CancellationTokenSource stop)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        try
        {
            while (true)
            {
                var read = await from.ReceiveAsync(buffer.AsMemory(), SocketFlags.None, stop.Token);
                if (read == 0)
                {
                    to.Shutdown(SocketShutdown.Send);
                    return true;
                }

                var sent = 0;
                while (sent < read)
                {
                    sent += await to.SendAsync(buffer.AsMemory(sent, read - sent), SocketFlags.None, stop.Token);
                }
            }
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
        {
            await stop.CancelAsync();
            return false;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
