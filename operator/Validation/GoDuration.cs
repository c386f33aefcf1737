using System.Globalization;
using System.Text.RegularExpressions;
using Skiff.Api;

namespace Skiff.Validation;

/// <summary>Go-style durations (<c>30s</c>, <c>10m</c>, <c>1h30m</c>, <c>1.5h</c>, <c>720h</c>), as the resources write them.</summary>
public static partial class GoDuration
{
    /// <summary>Parses an unsigned Go duration made of number+unit parts (ns, us, µs, ms, s, m, h).</summary>
    public static bool TryParse(string? text, out TimeSpan duration)
    {
        duration = TimeSpan.Zero;
        if (string.IsNullOrEmpty(text) || text.Length > 64 || !Shape().IsMatch(text))
        {
            return false;
        }

        decimal nanoseconds = 0;
        foreach (Match part in Part().Matches(text))
        {
            if (!decimal.TryParse(part.Groups["number"].Value, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var number)
                || number > 1e12m)
            {
                return false; // far beyond TimeSpan's range in any unit
            }

            var unit = part.Groups["unit"].Value switch
            {
                "ns" => 1m,
                "us" or "µs" or "μs" => 1e3m,
                "ms" => 1e6m,
                "s" => 1e9m,
                "m" => 60e9m,
                _ => 3600e9m,
            };
            nanoseconds += number * unit;
            if (nanoseconds > TimeSpan.MaxValue.Ticks * 100m)
            {
                return false;
            }
        }

        duration = TimeSpan.FromTicks((long)(nanoseconds / 100m));
        return true;
    }

    /// <summary>Formats a duration the way Go prints it: <c>1h30m0s</c>, <c>10m0s</c>, <c>1.5s</c>.</summary>
    public static string Format(TimeSpan duration)
    {
        if (duration == TimeSpan.Zero)
        {
            return "0s";
        }

        var sign = duration < TimeSpan.Zero ? "-" : "";
        duration = duration.Duration();
        var hours = (long)duration.TotalHours;
        var seconds = (duration - TimeSpan.FromHours(hours) - TimeSpan.FromMinutes(duration.Minutes)).TotalSeconds;
        var s = seconds.ToString("0.#########", CultureInfo.InvariantCulture);
        return hours > 0 ? $"{sign}{hours}h{duration.Minutes}m{s}s"
            : duration.Minutes > 0 ? $"{sign}{duration.Minutes}m{s}s"
            : $"{sign}{s}s";
    }

    [GeneratedRegex(Patterns.Duration, RegexOptions.CultureInvariant)]
    private static partial Regex Shape();

    [GeneratedRegex(@"(?<number>[0-9]+(\.[0-9]+)?)(?<unit>ns|us|µs|μs|ms|s|m|h)", RegexOptions.CultureInvariant)]
    private static partial Regex Part();
}
