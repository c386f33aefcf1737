using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Skiff.TestApp;

/// <summary>TESTAPP_TCP_PORT: says the version and a newline, then echoes every byte until the client closes.</summary>
internal static class TcpEcho
{
    public static async Task RunAsync(int port, string version, CancellationToken ct)
    {
        var listener = new TcpListener(IPAddress.Any, port);
        listener.Start(512);
        Log.Line($"tcp echo listening on 0.0.0.0:{port}");
        var open = new List<Task>();
        try
        {
            while (!ct.IsCancellationRequested)
            {
                var client = await listener.AcceptSocketAsync(ct);
                open.Add(EchoAsync(client, version));
                open.RemoveAll(t => t.IsCompleted);
            }
        }
        catch (OperationCanceledException)
        {
        }
        finally
        {
            listener.Stop();
        }

        // Connections open at SIGTERM may finish (a drained app's would), for a moment.
        await Task.WhenAny(Task.WhenAll(open), Task.Delay(TimeSpan.FromSeconds(2), CancellationToken.None));
    }

    private static async Task EchoAsync(Socket client, string version)
    {
        using (client)
        {
            try
            {
                await client.SendAsync(Encoding.ASCII.GetBytes(version + "\n"), SocketFlags.None);
                var buffer = new byte[4096];
                int read;
                while ((read = await client.ReceiveAsync(buffer, SocketFlags.None)) > 0)
                {
                    await client.SendAsync(buffer.AsMemory(0, read), SocketFlags.None);
                }

                client.Shutdown(SocketShutdown.Send);
            }
            catch (SocketException)
            {
            }
        }
    }
}
