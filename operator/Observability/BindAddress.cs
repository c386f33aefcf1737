using System.Globalization;
using System.Net;

namespace Skiff.Observability;

/// <summary>
/// A listen address in controller-runtime's flag syntax: <c>":8080"</c> (every interface),
/// <c>"127.0.0.1:8080"</c>, <c>"[::1]:8080"</c>, port 0 for an ephemeral port, and <c>"0"</c> to
/// disable the server.
/// </summary>
/// <param name="Address">The interface to bind, or null for every interface (IPv6 and IPv4 where the host has both).</param>
/// <param name="Port">The port; 0 asks the OS for a free one.</param>
public sealed record BindAddress(IPAddress? Address, int Port)
{
    /// <summary>Parses a bind address; null means the server is disabled (<c>"0"</c> or empty).</summary>
    /// <param name="text">The flag's value.</param>
    /// <exception cref="FormatException">The value is not <c>[host]:port</c>, <c>"0"</c> or empty.</exception>
    public static BindAddress? Parse(string? text)
    {
        text = text?.Trim();
        if (string.IsNullOrEmpty(text) || text == "0")
        {
            return null;
        }

        var colon = text.LastIndexOf(':');
        if (colon < 0)
        {
            throw new FormatException($"bind address \"{text}\": want [host]:port, or \"0\" to disable");
        }

        var host = text[..colon];
        var portText = text[(colon + 1)..];
        if (!int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port > 65535)
        {
            throw new FormatException($"bind address \"{text}\": port \"{portText}\" is not a number between 0 and 65535");
        }

        if (host.StartsWith('[') && host.EndsWith(']'))
        {
            host = host[1..^1];
        }

        if (host.Length == 0)
        {
            return new BindAddress(null, port);
        }

        if (host.Equals("localhost", StringComparison.OrdinalIgnoreCase))
        {
            return new BindAddress(IPAddress.Loopback, port);
        }

        return IPAddress.TryParse(host, out var ip)
            ? new BindAddress(ip, port)
            : throw new FormatException($"bind address \"{text}\": \"{host}\" is not an IP address");
    }

    /// <inheritdoc/>
    public override string ToString()
    {
        var port = Port.ToString(CultureInfo.InvariantCulture);
        return Address switch
        {
            null => ":" + port,
            { AddressFamily: System.Net.Sockets.AddressFamily.InterNetworkV6 } a => $"[{a}]:{port}",
            { } a => $"{a}:{port}",
        };
    }
}
