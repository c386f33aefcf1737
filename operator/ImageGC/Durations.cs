using System.Globalization;

namespace Skiff.ImageGC;

/// <summary>
/// Ages and periods as the GC's reasons print them. Parsing is <see cref="Skiff.Validation.GoDuration.TryParse"/>'s
/// job, the one parser of the resources' durations; this human form adds days, which Go's does not
/// have, because "3d4h" reads better than "76h0m0s" in a dry-run listing.
/// </summary>
internal static class Durations
{
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
