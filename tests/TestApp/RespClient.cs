using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace Skiff.TestApp;

/// <summary>
/// Just enough of the Redis protocol (RESP2) for PING, INCR and GET: one connection per use, so a
/// restarted Redis is picked up without reconnect logic. The test app avoids a Redis library on purpose.
/// </summary>
internal sealed class RespClient : IAsyncDisposable
{
    private static readonly TimeSpan IoTimeout = TimeSpan.FromSeconds(3);
    private readonly TcpClient _tcp;
    private readonly NetworkStream _stream;
    private readonly BufferedStream _reader;

    private RespClient(TcpClient tcp)
    {
        _tcp = tcp;
        _stream = tcp.GetStream();
        _reader = new BufferedStream(_stream);
    }

    public static async Task<RespClient> ConnectAsync(RedisEndpoint endpoint, CancellationToken ct)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(IoTimeout);
        var tcp = new TcpClient { NoDelay = true };
        try
        {
            await tcp.ConnectAsync(endpoint.Host, endpoint.Port, timeout.Token);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            tcp.Dispose();
            throw new IOException($"connecting to Redis at {endpoint.Host}:{endpoint.Port} timed out");
        }
        catch
        {
            tcp.Dispose();
            throw;
        }

        var client = new RespClient(tcp);
        try
        {
            if (endpoint.Password is not null)
            {
                _ = endpoint.User is null
                    ? await client.CommandAsync(ct, "AUTH", endpoint.Password)
                    : await client.CommandAsync(ct, "AUTH", endpoint.User, endpoint.Password);
            }

            if (endpoint.Database != 0)
            {
                _ = await client.CommandAsync(ct, "SELECT", endpoint.Database.ToString(CultureInfo.InvariantCulture));
            }
        }
        catch
        {
            await client.DisposeAsync();
            throw;
        }

        return client;
    }

    /// <summary>Sends one command; returns the reply as text (null for a nil bulk string); throws on an error reply.</summary>
    public async Task<string?> CommandAsync(CancellationToken ct, params string[] parts)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(IoTimeout);
        var request = new StringBuilder();
        request.Append('*').Append(parts.Length).Append("\r\n");
        foreach (var part in parts)
        {
            request.Append('$').Append(Encoding.UTF8.GetByteCount(part)).Append("\r\n").Append(part).Append("\r\n");
        }

        try
        {
            await _stream.WriteAsync(Encoding.UTF8.GetBytes(request.ToString()), timeout.Token);
            return await ReadReplyAsync(timeout.Token);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new IOException($"Redis did not answer {parts[0]} within {IoTimeout.TotalSeconds:0} s");
        }
    }

    private async Task<string?> ReadReplyAsync(CancellationToken ct)
    {
        var line = await ReadLineAsync(ct);
        if (line.Length == 0)
        {
            throw new IOException("empty reply from Redis");
        }

        switch (line[0])
        {
            case '+':
            case ':':
                return line[1..];
            case '-':
                throw new RedisException(line[1..]);
            case '$':
                var length = int.Parse(line.AsSpan(1), CultureInfo.InvariantCulture);
                if (length < 0)
                {
                    return null;
                }

                var buffer = new byte[length + 2];
                await _reader.ReadExactlyAsync(buffer, ct);
                return Encoding.UTF8.GetString(buffer, 0, length);
            default:
                throw new IOException($"unexpected reply from Redis: {line}");
        }
    }

    private async Task<string> ReadLineAsync(CancellationToken ct)
    {
        var bytes = new List<byte>();
        var one = new byte[1];
        while (true)
        {
            if (await _reader.ReadAsync(one, ct) == 0)
            {
                throw new IOException("Redis closed the connection");
            }

            if (one[0] == '\n' && bytes.Count > 0 && bytes[^1] == '\r')
            {
                return Encoding.UTF8.GetString(bytes.ToArray(), 0, bytes.Count - 1);
            }

            bytes.Add(one[0]);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _reader.DisposeAsync();
        await _stream.DisposeAsync();
        _tcp.Dispose();
    }
}

internal sealed class RedisException(string message) : Exception(message);
