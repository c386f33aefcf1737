using System.Globalization;
using System.Numerics;
using System.Text.RegularExpressions;
using Skiff.Api;

namespace Skiff.Validation;

/// <summary>What a quantity field counts.</summary>
public enum QuantityUnit
{
    /// <summary>Bytes, rounded up (Kubernetes' <c>Quantity.Value()</c>).</summary>
    Bytes,

    /// <summary>Thousandths of a CPU, rounded up (Kubernetes' <c>Quantity.MilliValue()</c>).</summary>
    MilliCpu,
}

/// <summary>
/// A quantity field of an AppDeployment with the range Skiff can apply on Docker: validation and
/// conversion both go through <see cref="TryConvert"/>, so a value is accepted exactly when it can
/// be applied, and never becomes "no limit" by accident.
/// </summary>
/// <param name="Unit">What the number counts.</param>
/// <param name="Minimum">The smallest accepted value, in <paramref name="Unit"/>.</param>
/// <param name="Maximum">The largest accepted value, in <paramref name="Unit"/>.</param>
/// <param name="MinimumText">The minimum as written in messages, with why.</param>
/// <param name="MaximumText">The maximum as written in messages, with why.</param>
public sealed record QuantityField(QuantityUnit Unit, long Minimum, long Maximum, string MinimumText, string MaximumText)
{
    /// <summary>
    /// The value in <see cref="Unit"/>, or false with the message for the field (without its path):
    /// not a quantity, or outside <see cref="Minimum"/>..<see cref="Maximum"/>.
    /// </summary>
    public bool TryConvert(string? text, out long value, out string? error)
    {
        value = 0;
        if (!Quantity.TryParseExact(text, out var numerator, out var denominator))
        {
            error = $"must be {Patterns.QuantityText}, got {Text.Quote(text ?? "")}";
            return false;
        }

        var scaled = Quantity.Ceiling(Unit == QuantityUnit.MilliCpu ? numerator * 1000 : numerator, denominator);
        if (scaled < Minimum)
        {
            error = $"must be at least {MinimumText}, got {Text.Quote(text!)}";
            return false;
        }

        if (scaled > Maximum)
        {
            error = $"must be at most {MaximumText}, got {Text.Quote(text!)}";
            return false;
        }

        value = (long)scaled;
        error = null;
        return true;
    }

    /// <summary>
    /// The value of a validated field for the engine; null when the field is not set. A value that does not
    /// convert is a bug (validation lets through only what converts): it throws rather than mean "no limit".
    /// </summary>
    public long? Convert(string? text) =>
        text is null ? null
        : TryConvert(text, out var value, out var error) ? value
        : throw new InvalidOperationException($"quantity {Text.Quote(text)} reached the engine unvalidated: {error}");
}

/// <summary>
/// Kubernetes quantities in the forms Skiff accepts (<see cref="Patterns.Quantity"/>, the CRD's pattern):
/// a decimal number with an optional SI (k, M, G, ...), binary (Ki, Mi, Gi, ...) or milli (m) suffix.
/// The one parser of the operator: the validator and the conversion to Docker limits both use
/// <see cref="QuantityField.TryConvert"/>. Exact (no floating point), rounding up as Kubernetes does.
/// </summary>
public static partial class Quantity
{
    /// <summary>Docker refuses a memory limit under 6 MiB ("Minimum memory limit allowed is 6MB").</summary>
    public const long DockerMinimumMemoryBytes = 6L * 1024 * 1024;

    /// <summary>
    /// 4 PiB (2^52 bytes): the most physical memory an x86-64 or arm64 machine can address. A larger
    /// limit can never bind (1Ei is a typo, not a host), so it is an error rather than silently no limit.
    /// </summary>
    public const long MaximumMemoryBytes = 1L << 52;

    /// <summary>Docker's smallest CPU limit is 0.01 CPU: a quota of 1 ms per 100 ms period (the kernel refuses less).</summary>
    public const long DockerMinimumMilliCpu = 10;

    /// <summary>8192 CPUs: the most a Linux kernel supports (NR_CPUS); Docker also refuses more CPUs than the node has.</summary>
    public const long MaximumMilliCpu = 8192L * 1000;

    /// <summary><c>resources.memory</c> of the app, the database and the cache: a Docker memory limit.</summary>
    public static readonly QuantityField Memory = new(
        QuantityUnit.Bytes,
        DockerMinimumMemoryBytes,
        MaximumMemoryBytes,
        "6Mi (Docker's smallest memory limit; omit the field for no limit)",
        "4Pi (more memory than any host can address)");

    /// <summary><c>resources.cpu</c>: a Docker CPU limit (NanoCPUs).</summary>
    public static readonly QuantityField Cpu = new(
        QuantityUnit.MilliCpu,
        DockerMinimumMilliCpu,
        MaximumMilliCpu,
        "10m (Docker's smallest CPU limit, 0.01 CPU; omit the field for no limit)",
        "8192 (the most CPUs Linux supports)");

    /// <summary><c>cache.maxMemory</c>: Redis' maxmemory (0 would mean no limit to Redis).</summary>
    public static readonly QuantityField MaxMemory = new(
        QuantityUnit.Bytes,
        1024 * 1024,
        MaximumMemoryBytes,
        "1Mi (Redis warns below 1 MB; omit the field for no limit)",
        "4Pi (more memory than any host can address)");

    /// <summary><c>storage.size</c>: advisory on Docker; a PersistentVolumeClaim's size needs more than 0 and fits in 64 bits.</summary>
    public static readonly QuantityField StorageSize = new(
        QuantityUnit.Bytes,
        1,
        long.MaxValue,
        "1 byte",
        "8Ei minus one byte (2^63-1 bytes)");

    /// <summary>
    /// The field a <see cref="QuantityAttribute"/> property holds, by its JSON name. A quantity property without
    /// bounds here is a bug of ours, found by the first test that validates it.
    /// </summary>
    public static QuantityField ForField(string jsonName) => jsonName switch
    {
        "memory" => Memory,
        "cpu" => Cpu,
        "maxMemory" => MaxMemory,
        "size" => StorageSize,
        _ => throw new InvalidOperationException($"the quantity field {jsonName} has no bounds in Quantity.ForField"),
    };

    /// <summary>A Docker memory limit in bytes, or null when not set.</summary>
    public static long? MemoryBytes(string? text) => Memory.Convert(text);

    /// <summary>A Docker CPU limit in billionths of a CPU, or null when not set.</summary>
    public static long? NanoCpus(string? text) => Cpu.Convert(text) * 1_000_000;

    /// <summary>Redis' maxmemory in bytes, or null when not set.</summary>
    public static long? MaxMemoryBytes(string? text) => MaxMemory.Convert(text);

    /// <summary>Any size in bytes, rounded up (as Kubernetes does for fractions); false when it is not a quantity or exceeds 64 bits.</summary>
    public static bool TryParseBytes(string? text, out long bytes) => TryScale(text, 1, out bytes);

    /// <summary>Any CPU amount in millicores: <c>500m</c> is 500, <c>2</c> is 2000, <c>0.5</c> is 500.</summary>
    public static bool TryParseMilliCpu(string? text, out long milliCpu) => TryScale(text, 1000, out milliCpu);

    /// <summary>The exact value of a quantity as <paramref name="numerator"/> / <paramref name="denominator"/>.</summary>
    internal static bool TryParseExact(string? text, out BigInteger numerator, out BigInteger denominator)
    {
        numerator = BigInteger.Zero;
        denominator = BigInteger.One;
        // Bounded: a hostile value must not cost a big-number multiplication of any size.
        if (text is null || text.Length > 64)
        {
            return false;
        }

        var match = Shape().Match(text);
        if (!match.Success)
        {
            return false;
        }

        var fraction = match.Groups["fraction"].Value;
        numerator = BigInteger.Parse(match.Groups["integer"].Value + fraction, NumberStyles.None, CultureInfo.InvariantCulture);
        denominator = BigInteger.Pow(10, fraction.Length);
        var suffix = match.Groups["suffix"].Value;
        if (suffix == "m")
        {
            denominator *= 1000;
        }
        else if (suffix.Length == 1)
        {
            numerator *= BigInteger.Pow(10, 3 * ("kMGTPE".IndexOf(suffix[0], StringComparison.Ordinal) + 1));
        }
        else if (suffix.Length == 2)
        {
            numerator *= BigInteger.Pow(2, 10 * ("KMGTPE".IndexOf(suffix[0], StringComparison.Ordinal) + 1));
        }

        return true;
    }

    /// <summary>The smallest integer not below <paramref name="numerator"/> / <paramref name="denominator"/> (both non-negative).</summary>
    internal static BigInteger Ceiling(BigInteger numerator, BigInteger denominator) =>
        BigInteger.DivRem(numerator, denominator, out var remainder) + (remainder.IsZero ? 0 : 1);

    private static bool TryScale(string? text, int scale, out long result)
    {
        result = 0;
        if (!TryParseExact(text, out var numerator, out var denominator))
        {
            return false;
        }

        var scaled = Ceiling(numerator * scale, denominator);
        if (scaled > long.MaxValue)
        {
            return false;
        }

        result = (long)scaled;
        return true;
    }

    [GeneratedRegex(@"^(?<integer>[0-9]+)(\.(?<fraction>[0-9]+))?(?<suffix>m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$", RegexOptions.CultureInvariant)]
    private static partial Regex Shape();
}
