using Skiff.Validation;

namespace Skiff.Backup;

/// <summary>
/// When each stack's next backup is due: pure bookkeeping over a clock the caller reads, so tests drive it with a fake
/// one. Like cron, occurrences missed while the operator was down are not caught up: the first is the next one after
/// the operator saw the schedule.
/// </summary>
public sealed class BackupSchedule
{
    private readonly Dictionary<string, (string Schedule, DateTimeOffset? Next)> next = new(StringComparer.Ordinal);
    private readonly Lock gate = new();

    /// <summary>
    /// The keys due at <paramref name="now"/> among <paramref name="stacks"/> (key and cron text); a stack seen for the
    /// first time, or whose schedule changed, gets its next occurrence after now. Stacks no longer listed are forgotten.
    /// </summary>
    public IReadOnlyList<string> Due(IEnumerable<(string Key, string Schedule)> stacks, DateTimeOffset now)
    {
        lock (gate)
        {
            return DueLocked(stacks, now);
        }
    }

    private List<string> DueLocked(IEnumerable<(string Key, string Schedule)> stacks, DateTimeOffset now)
    {
        var due = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (key, schedule) in stacks)
        {
            seen.Add(key);
            if (!next.TryGetValue(key, out var entry) || entry.Schedule != schedule)
            {
                next[key] = (schedule, CronSchedule.TryParse(schedule, out _)?.Next(now));
                continue;
            }

            if (entry.Next is { } at && at <= now)
            {
                due.Add(key);
            }
        }

        foreach (var gone in next.Keys.Where(k => !seen.Contains(k)).ToList())
        {
            next.Remove(gone);
        }

        return due;
    }

    /// <summary>A due backup ran (whatever its result): the next is the first occurrence after <paramref name="now"/>.</summary>
    public void Ran(string key, DateTimeOffset now)
    {
        lock (gate)
        {
            if (next.TryGetValue(key, out var entry))
            {
                next[key] = (entry.Schedule, CronSchedule.TryParse(entry.Schedule, out _)?.Next(now));
            }
        }
    }

    /// <summary>The stack's next backup, or null when it has none.</summary>
    public DateTimeOffset? NextFor(string key)
    {
        lock (gate)
        {
            return next.TryGetValue(key, out var e) ? e.Next : null;
        }
    }

    /// <summary>The earliest next backup of any stack, or null.</summary>
    public DateTimeOffset? Earliest
    {
        get
        {
            lock (gate)
            {
                return next.Values.Select(v => v.Next).Where(n => n is not null).Min();
            }
        }
    }
}
