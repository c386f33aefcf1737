using System.Globalization;

namespace Skiff.ImageGC;

/// <summary>
/// Go-style durations (<c>30s</c>, <c>1h30m</c>, <c>1.5h</c>, <c>720h</c>) for the GC policy.
/// TEMPORARY: a private stand-in until <c>Skiff.Validation.GoDuration.TryParse</c> lands on main
/// (issue 9 follow-up); then <see cref="TryParse"/> should call it and this parser go.
/// </summary>
internal static class Durations
{
    private static readonly (string Unit, double Ticks)[] Units =
    [
        ("ns", 0.01), ("us", 10), ("µs", 10), ("μs", 10), ("ms", TimeSpan.TicksPerMillisecond),
        ("s", TimeSpan.TicksPerSecond), ("m", TimeSpan.TicksPerMinute), ("h", TimeSpan.TicksPerHour),
    ];

    /// <summary>Parses a Go duration; only non-negative values are accepted, as every GC duration is an age or interval.</summary>
    public static bool TryParse(string? text, out TimeSpan value)
    {
        value = TimeSpan.Zero;
        if (string.IsNullOrEmpty(text))
        {
            return false;
        }

        var s = text.AsSpan();
        if (s[0] == '+')
        {
            s = s[1..];
        }

        if (s is "0")
        {
            return true;
        }

        if (s.IsEmpty)
        {
            return false;
        }

        double ticks = 0;
        while (!s.IsEmpty)
        {
            var n = 0;
            while (n < s.Length && (char.IsAsciiDigit(s[n]) || s[n] == '.'))
            {
                n++;
            }

            if (n == 0 || s[..n] is "." || !double.TryParse(s[..n], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var number))
            {
                return false;
            }

            s = s[n..];
            var u = 0;
            while (u < s.Length && !char.IsAsciiDigit(s[u]) && s[u] != '.')
            {
                u++;
            }

            var unit = s[..u];
            var factor = -1d;
            foreach (var (name, t) in Units)
            {
                if (unit.SequenceEqual(name))
                {
                    factor = t;
                    break;
                }
            }

            if (factor < 0)
            {
                return false;
            }

            ticks += number * factor;
            s = s[u..];
        }

        if (ticks > TimeSpan.MaxValue.Ticks)
        {
            return false;
        }

        value = TimeSpan.FromTicks((long)ticks);
        return true;
    }

    /// <summary>A short human form, Go-like but with days: <c>45s</c>, <c>12m</c>, <c>1h30m</c>, <c>3d4h</c>.</summary>
    public static string Format(TimeSpan span)
    {
        if (span < TimeSpan.Zero)
        {
            return "-" + Format(span.Negate());
        }

        if (span < TimeSpan.FromSeconds(1))
        {
            return span == TimeSpan.Zero ? "0s" : string.Create(CultureInfo.InvariantCulture, $"{span.TotalMilliseconds:0}ms");
        }

        // One allocation per call: the planner formats an age for every image it reports on.
        var ci = CultureInfo.InvariantCulture;
        var (d, h, m, sec) = (span.Days, span.Hours, span.Minutes, span.Seconds);
        if (d > 0)
        {
            return h > 0 ? string.Create(ci, $"{d}d{h}h") : string.Create(ci, $"{d}d");
        }

        if (h > 0)
        {
            return m > 0 ? string.Create(ci, $"{h}h{m}m") : string.Create(ci, $"{h}h");
        }

        if (m > 0)
        {
            return sec > 0 ? string.Create(ci, $"{m}m{sec}s") : string.Create(ci, $"{m}m");
        }

        return string.Create(ci, $"{sec}s");
    }
}
