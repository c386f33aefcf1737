using System.Globalization;
using System.Text.RegularExpressions;
using Skiff.Api;

namespace Skiff.Validation;

/// <summary>
/// Kubernetes quantities in the forms Skiff accepts (<see cref="Patterns.Quantity"/>): a decimal
/// number with an optional SI (k, M, G, ...), binary (Ki, Mi, Gi, ...) or milli (m) suffix.
/// </summary>
public static partial class Quantity
{
    /// <summary>Whether <paramref name="text"/> is a quantity Skiff accepts.</summary>
    public static bool IsValid(string? text) => TryParse(text, out _);

    /// <summary>A memory or storage size in bytes, rounded up (as Kubernetes does for fractions).</summary>
    public static bool TryParseBytes(string? text, out long bytes) => TryScale(text, 1m, out bytes);

    /// <summary>A CPU amount in millicores: <c>500m</c> is 500, <c>2</c> is 2000, <c>0.5</c> is 500.</summary>
    public static bool TryParseMilliCpu(string? text, out long milliCpu) => TryScale(text, 1000m, out milliCpu);

    private static bool TryScale(string? text, decimal scale, out long result)
    {
        result = 0;
        if (!TryParse(text, out var value))
        {
            return false;
        }

        try
        {
            var scaled = decimal.Ceiling(value * scale);
            if (scaled > long.MaxValue)
            {
                return false;
            }

            result = (long)scaled;
            return true;
        }
        catch (OverflowException)
        {
            return false;
        }
    }

    private static bool TryParse(string? text, out decimal value)
    {
        value = 0;
        if (text is null || text.Length > 64)
        {
            return false;
        }

        var match = Shape().Match(text);
        if (!match.Success
            || !decimal.TryParse(match.Groups["number"].Value, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var number))
        {
            return false;
        }

        var multiplier = match.Groups["suffix"].Value switch
        {
            "" => 1m,
            "m" => 0.001m,
            "k" => 1e3m,
            "M" => 1e6m,
            "G" => 1e9m,
            "T" => 1e12m,
            "P" => 1e15m,
            "E" => 1e18m,
            "Ki" => 1024m,
            "Mi" => 1024m * 1024,
            "Gi" => 1024m * 1024 * 1024,
            "Ti" => 1024m * 1024 * 1024 * 1024,
            "Pi" => 1024m * 1024 * 1024 * 1024 * 1024,
            "Ei" => 1024m * 1024 * 1024 * 1024 * 1024 * 1024,
            _ => 0m,
        };
        try
        {
            value = number * multiplier;
            return true;
        }
        catch (OverflowException)
        {
            return false;
        }
    }

    [GeneratedRegex(@"^(?<number>[0-9]+(\.[0-9]+)?)(?<suffix>m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$", RegexOptions.CultureInvariant)]
    private static partial Regex Shape();
}
