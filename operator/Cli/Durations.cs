using System.Globalization;
using System.Text.RegularExpressions;

namespace Skiff.Cli;

/// <summary>Durations as the day-two flags take them: <c>45s</c>, <c>10m</c>, <c>1h30m</c>, <c>2d</c> (units in that order or not, summed).</summary>
public static partial class Durations
{
    public static bool TryParse(string? text, out TimeSpan duration)
    {
        duration = TimeSpan.Zero;
        if (text is null || DurationText().Match(text) is not { Success: true } m)
        {
            return false;
        }

        foreach (Capture part in m.Groups["part"].Captures)
        {
            var number = long.Parse(part.Value[..^1], CultureInfo.InvariantCulture);
            duration += part.Value[^1] switch
            {
                'd' => TimeSpan.FromDays(number),
                'h' => TimeSpan.FromHours(number),
                'm' => TimeSpan.FromMinutes(number),
                _ => TimeSpan.FromSeconds(number),
            };
        }

        return true;
    }

    /// <summary>How a duration reads back: 45s, 5m, 1h30m.</summary>
    public static string Format(TimeSpan d)
    {
        if (d < TimeSpan.FromMinutes(1))
        {
            return $"{(int)d.TotalSeconds}s";
        }

        var text = d.TotalHours >= 1 ? $"{(int)d.TotalHours}h" : "";
        text += d.Minutes > 0 ? $"{d.Minutes}m" : "";
        text += d.Seconds > 0 ? $"{d.Seconds}s" : "";
        return text;
    }

    [GeneratedRegex(@"^(?<part>\d{1,6}[dhms])+$")]
    private static partial Regex DurationText();
}
