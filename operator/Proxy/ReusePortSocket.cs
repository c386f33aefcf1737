using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Skiff.Proxy;

/// <summary>
/// Listening sockets that a second proxy (an upgrade) can bind beside the first: <c>SO_REUSEADDR</c> and
/// <c>SO_REUSEPORT</c>, and on Linux a one-instruction classic BPF program that hands every new connection
/// of the address to the newest socket.
/// </summary>
/// <remarks>
/// # Why the BPF program
/// With plain <c>SO_REUSEPORT</c> the kernel spreads new connections over every socket of the address by
/// hash; when the old proxy then closes its socket, the connections waiting in its accept queue are reset.
/// <c>SO_ATTACH_REUSEPORT_CBPF</c> with "return 1" sends them all to the second socket of the group, which
/// is the one the new proxy just added (sockets are numbered in <c>listen</c> order). The old proxy's
/// queue stops filling the moment the new one listens, so by the time it gets SIGTERM and closes, nothing
/// waits there. With one socket in the group, index 1 does not exist and the kernel falls back to its
/// hash, that is, the only socket. When the old one closes, the new one moves to index 0; the next
/// upgrade again lands at 1.
///
/// # Caveats
/// Linux only (elsewhere the options are skipped and a second proxy cannot bind). The sockets of one
/// group must belong to the same user, as <c>SO_REUSEPORT</c> requires.
/// </remarks>
internal static class ReusePortSocket
{
    private const int SolSocket = 1;
    private const int SoReusePort = 15;
    private const int SoAttachReusePortCbpf = 51;

    /// <summary>A TCP socket bound to <paramref name="endPoint"/> with the reuse options set, not yet listening.</summary>
    /// <exception cref="SocketException">The address cannot be bound (taken by a socket without <c>SO_REUSEPORT</c>, not on this host).</exception>
    public static Socket Bind(IPEndPoint endPoint)
    {
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            if (endPoint.AddressFamily == AddressFamily.InterNetworkV6 && endPoint.Address.Equals(IPAddress.IPv6Any))
            {
                socket.DualMode = true;
            }

            socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            if (OperatingSystem.IsLinux())
            {
                socket.SetRawSocketOption(SolSocket, SoReusePort, BitConverter.GetBytes(1));
            }

            socket.NoDelay = true;
            socket.Bind(endPoint);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Sends new connections of the address to the newest listening socket (see the remarks). Call it
    /// after <c>listen</c>: before, the socket is not in the address's group yet.
    /// </summary>
    /// <returns>False when the kernel refused (the proxy still works; only an upgrade may reset a few queued connections).</returns>
    public static bool SteerNewConnectionsToNewest(Socket listening)
    {
        if (!OperatingSystem.IsLinux() || IntPtr.Size != 8 || !BitConverter.IsLittleEndian)
        {
            return false;
        }

        // struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; } = { BPF_RET | BPF_K, 0, 0, 1 }
        var filter = Marshal.AllocHGlobal(8);
        try
        {
            Span<byte> instruction = stackalloc byte[8];
            BinaryPrimitives.WriteUInt16LittleEndian(instruction, 0x06);
            BinaryPrimitives.WriteUInt32LittleEndian(instruction[4..], 1);
            Marshal.Copy(instruction.ToArray(), 0, filter, 8);

            // struct sock_fprog { unsigned short len; /* padding */ struct sock_filter *filter; }
            Span<byte> program = stackalloc byte[16];
            program.Clear();
            BinaryPrimitives.WriteUInt16LittleEndian(program, 1);
            BinaryPrimitives.WriteInt64LittleEndian(program[8..], filter.ToInt64());
            listening.SetRawSocketOption(SolSocket, SoAttachReusePortCbpf, program);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
        finally
        {
            Marshal.FreeHGlobal(filter);
        }
    }
}
