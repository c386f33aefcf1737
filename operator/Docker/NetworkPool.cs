using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Skiff.Docker;

/// <summary>
/// The IPv4 range Skiff cuts into equal subnets, one per stack network (<c>--network-pool</c>, <c>--network-prefix</c>).
/// Docker's default address pools give each bridge network a /16 or /20 and run out after about 31 networks; a pool of
/// small subnets that Skiff hands out itself holds thousands (10.200.0.0/16 in /27s: 2,048).
/// </summary>
/// <remarks>
/// # Guarantees
/// - <see cref="FirstFree"/> is pure: the same pool and the same taken ranges give the same subnet, the lowest one of
///   the pool that overlaps none of them, aligned to its own size; null when there is none.
/// </remarks>
public sealed record NetworkPool(IPNetwork Pool, int Prefix)
{
    public const string DefaultPoolText = "10.200.0.0/16";
    public const int DefaultPrefix = 27;

    /// <summary>The longest prefix: a /29 has 6 usable addresses (gateway, app revisions, database, cache, migration).</summary>
    public const int LongestPrefix = 29;

    public static NetworkPool Default { get; } = new(IPNetwork.Parse(DefaultPoolText), DefaultPrefix);

    /// <summary>How many subnets the pool holds.</summary>
    public long Count => 1L << (Prefix - Pool.PrefixLength);

    private ulong Size => 1UL << (32 - Prefix);

    private ulong Start => ToNumber(Pool.BaseAddress);

    private ulong End => Start + (1UL << (32 - Pool.PrefixLength)) - 1;

    public override string ToString() => $"{Pool} in /{Prefix.ToString(CultureInfo.InvariantCulture)} subnets";

    /// <summary>The pool of the two flags, or what is wrong with them (naming the flag and the fix).</summary>
    public static NetworkPool? Create(string poolText, int prefix, out string? problem)
    {
        if (!TryParseCidr(poolText, out var address, out var length) || address.AddressFamily != AddressFamily.InterNetwork)
        {
            problem = $"--network-pool: \"{poolText}\" is not an IPv4 network in CIDR notation; use one such as {DefaultPoolText}";
            return null;
        }

        var pool = Masked(address, length);
        if (!pool.BaseAddress.Equals(address))
        {
            problem = $"--network-pool: {poolText} has bits set after its /{length} prefix; use {pool}";
            return null;
        }

        if (length > LongestPrefix)
        {
            problem = $"--network-pool: {poolText} is too small for a stack network; use a /{LongestPrefix} or larger (a shorter prefix), such as {DefaultPoolText}";
            return null;
        }

        if (prefix < length || prefix > LongestPrefix)
        {
            problem = $"--network-prefix: {prefix} is not between the pool's prefix ({length}, --network-pool {pool}) and {LongestPrefix}; each stack network is a /{DefaultPrefix} by default";
            return null;
        }

        problem = null;
        return new NetworkPool(pool, prefix);
    }

    /// <summary>The lowest subnet of the pool that overlaps none of <paramref name="taken"/> (IPv6 ones are ignored), or null.</summary>
    public IPNetwork? FirstFree(IEnumerable<IPNetwork> taken)
    {
        var ranges = Ranges(taken);
        var candidate = Start;
        while (candidate + Size - 1 <= End)
        {
            var last = candidate + Size - 1;
            var blocking = ranges.FindIndex(r => r.First <= last && r.Last >= candidate);
            if (blocking < 0)
            {
                return new IPNetwork(ToAddress(candidate), Prefix);
            }

            // Past the range that blocks it, at the next aligned subnet: each range blocks at most once.
            var next = ranges[blocking].Last + 1;
            candidate = Start + ((next - Start + Size - 1) / Size * Size);
        }

        return null;
    }

    /// <summary>How many of the pool's subnets overlap something in <paramref name="taken"/>.</summary>
    public long CountTaken(IEnumerable<IPNetwork> taken)
    {
        long count = 0;
        ulong? lastCounted = null;
        foreach (var (first, last) in Ranges(taken))
        {
            var from = Math.Max(first, Start);
            var to = Math.Min(last, End);
            var firstBlock = Start + ((from - Start) / Size * Size);
            var lastBlock = Start + ((to - Start) / Size * Size);
            if (lastCounted is { } counted && firstBlock <= counted)
            {
                firstBlock = counted + Size;
            }

            if (lastBlock >= firstBlock)
            {
                count += (long)((lastBlock - firstBlock) / Size) + 1;
                lastCounted = lastBlock;
            }
        }

        return count;
    }

    /// <summary>Whether the subnet lies inside the pool.</summary>
    public bool Holds(IPNetwork subnet) =>
        subnet.BaseAddress.AddressFamily == AddressFamily.InterNetwork && subnet.PrefixLength >= Pool.PrefixLength && Pool.Contains(subnet.BaseAddress);

    /// <summary>
    /// A network in CIDR notation as Docker or the host reports it, host bits cleared (Docker keeps them when a
    /// network was created with, say, 172.20.0.1/16); false when it is not one.
    /// </summary>
    public static bool TryParseNetwork(string? text, out IPNetwork network)
    {
        network = default;
        if (!TryParseCidr(text, out var address, out var length))
        {
            return false;
        }

        network = Masked(address, length);
        return true;
    }

    /// <summary>The first host address of a subnet: its gateway.</summary>
    public static IPAddress Gateway(IPNetwork subnet) => ToAddress(ToNumber(subnet.BaseAddress) + 1);

    /// <summary>Whether two networks share an address.</summary>
    public static bool Overlap(IPNetwork a, IPNetwork b) =>
        a.BaseAddress.AddressFamily == b.BaseAddress.AddressFamily && (a.Contains(b.BaseAddress) || b.Contains(a.BaseAddress));

    private static bool TryParseCidr(string? text, out IPAddress address, out int length)
    {
        address = IPAddress.None;
        length = 0;
        var slash = text?.IndexOf('/', StringComparison.Ordinal) ?? -1;
        if (text is null || slash <= 0
            || !IPAddress.TryParse(text.AsSpan(0, slash), out var parsed)
            || !int.TryParse(text.AsSpan(slash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out length)
            || length > (parsed.AddressFamily == AddressFamily.InterNetwork ? 32 : 128))
        {
            return false;
        }

        address = parsed;
        return true;
    }

    private static IPNetwork Masked(IPAddress address, int length)
    {
        var bytes = address.GetAddressBytes();
        for (var i = 0; i < bytes.Length; i++)
        {
            var keep = Math.Clamp(length - (i * 8), 0, 8);
            bytes[i] &= (byte)(0xFF << (8 - keep));
        }

        return new IPNetwork(new IPAddress(bytes), length);
    }

    /// <summary>The IPv4 ranges of <paramref name="taken"/> that touch the pool, by first address.</summary>
    private List<(ulong First, ulong Last)> Ranges(IEnumerable<IPNetwork> taken) =>
        [.. taken
            .Where(n => n.BaseAddress.AddressFamily == AddressFamily.InterNetwork)
            .Select(n => (First: ToNumber(n.BaseAddress), Last: ToNumber(n.BaseAddress) + (1UL << (32 - n.PrefixLength)) - 1))
            .Where(r => r.First <= End && r.Last >= Start)
            .OrderBy(r => r.First)];

    private static ulong ToNumber(IPAddress address)
    {
        var b = address.GetAddressBytes();
        return ((ulong)b[0] << 24) | ((ulong)b[1] << 16) | ((ulong)b[2] << 8) | b[3];
    }

    private static IPAddress ToAddress(ulong number) =>
        new([(byte)(number >> 24), (byte)(number >> 16), (byte)(number >> 8), (byte)number]);
}
