using System.Globalization;
using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;

namespace Skiff.Docker;

/// <summary>
/// The IPv4 networks this host already reaches, which a stack network must not shadow: its routes (Linux's
/// <c>/proc/net/route</c>, the default route left out) and its interfaces' addresses. Docker checks the same before
/// it takes one of its default pools.
/// </summary>
/// <remarks>
/// # Caveats
/// It reads the host it runs on: right for a local engine (the socket), meaningless for a remote one, where
/// <see cref="DockerEngine"/> does not ask.
/// </remarks>
public static class HostNetworks
{
    public static IReadOnlyList<IPNetwork> Read()
    {
        var networks = new List<IPNetwork>();
        try
        {
            networks.AddRange(ParseRoutes(File.ReadAllText("/proc/net/route")));
        }
        catch (IOException)
        {
            // Not Linux, or no procfs: the interfaces below are what is known.
        }
        catch (UnauthorizedAccessException)
        {
        }

        try
        {
            foreach (var nic in NetworkInterface.GetAllNetworkInterfaces())
            {
                foreach (var address in nic.GetIPProperties().UnicastAddresses)
                {
                    if (address.Address.AddressFamily == AddressFamily.InterNetwork
                        && NetworkPool.TryParseNetwork($"{address.Address}/{address.PrefixLength.ToString(CultureInfo.InvariantCulture)}", out var network))
                    {
                        networks.Add(network);
                    }
                }
            }
        }
        catch (NetworkInformationException)
        {
        }

        return networks;
    }

    /// <summary>The destinations of <c>/proc/net/route</c> (hex, in the kernel's byte order), the default route left out.</summary>
    public static IEnumerable<IPNetwork> ParseRoutes(string table)
    {
        foreach (var line in table.Split('\n').Skip(1))
        {
            var fields = line.Split(['\t', ' '], StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length < 8
                || !uint.TryParse(fields[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var destination)
                || !uint.TryParse(fields[7], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var mask)
                || mask == 0)
            {
                continue;
            }

            // The kernel prints the network-order bytes as a host-order integer: back in memory order, they are the address.
            var bytes = BitConverter.GetBytes(destination);

            var length = System.Numerics.BitOperations.PopCount(mask);
            if (NetworkPool.TryParseNetwork($"{new IPAddress(bytes)}/{length.ToString(CultureInfo.InvariantCulture)}", out var network))
            {
                yield return network;
            }
        }
    }
}
