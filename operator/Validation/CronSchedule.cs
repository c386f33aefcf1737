using Cronos;

namespace Skiff.Validation;

/// <summary>
/// A backup schedule in cron syntax, parsed by Cronos: five fields (minute hour day-of-month month day-of-week), or six
/// with seconds first; times are UTC, as in Kubernetes CronJobs without a time zone.
/// </summary>
public sealed class CronSchedule
{
    private readonly CronExpression expression;

    private CronSchedule(string text, CronExpression expression)
    {
        Text = text;
        this.expression = expression;
    }

    /// <summary>The schedule as written.</summary>
    public string Text { get; }

    /// <summary>Parses <paramref name="text"/>; null with <paramref name="error"/> saying what is wrong.</summary>
    public static CronSchedule? TryParse(string? text, out string? error)
    {
        error = null;
        var trimmed = (text ?? "").Trim();
        if (trimmed.Length == 0)
        {
            error = "required: a cron schedule such as \"0 3 * * *\" (every day at 03:00 UTC)";
            return null;
        }

        var fields = trimmed.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length;
        if (fields is not (5 or 6))
        {
            error = $"must be a cron schedule of 5 fields (minute hour day-of-month month day-of-week, e.g. \"0 3 * * *\") or 6 with seconds first, got {fields} field(s) in \"{trimmed}\"";
            return null;
        }

        try
        {
            return new CronSchedule(trimmed, CronExpression.Parse(trimmed, fields == 6 ? CronFormat.IncludeSeconds : CronFormat.Standard));
        }
        catch (CronFormatException e)
        {
            error = $"is not a valid cron schedule (\"{trimmed}\"): {e.Message.TrimEnd('.')}; e.g. \"0 3 * * *\" is every day at 03:00 UTC";
            return null;
        }
    }

    /// <summary>The first occurrence strictly after <paramref name="after"/>, or null when there is none (e.g. 30 February).</summary>
    public DateTimeOffset? Next(DateTimeOffset after) => expression.GetNextOccurrence(after, TimeZoneInfo.Utc);

    /// <summary>The time between the next two occurrences after <paramref name="from"/>: what "twice its schedule" is measured in.</summary>
    public TimeSpan? Interval(DateTimeOffset from) =>
        Next(from) is { } a && Next(a) is { } b ? b - a : null;
}
