using System.Globalization;
using Skiff.Hosting;
using Skiff.State;

namespace Skiff.Cli;

/// <summary>
/// <c>skiff status --watch</c>: the state folder read again every half second (no lock: a running <c>skiff run</c> writes
/// it). On a terminal the table is redrawn in place; otherwise one line per change, with the time, for logs.
/// </summary>
public static class StatusWatch
{
    public static async Task<int> RunAsync(StateStore store, string? name, string? ns, OutputFormat format, TextWriter stdout, bool terminal, CancellationToken ct)
    {
        var seen = new Dictionary<string, string>(StringComparer.Ordinal);
        var lastDraw = DateTimeOffset.MinValue;
        var first = true;
        while (!ct.IsCancellationRequested)
        {
            var records = store.ReadAll()
                .Where(r => (ns is null || r.Namespace == ns) && (name is null || r.Name == name))
                .ToList();
            var now = DateTimeOffset.UtcNow;
            var changed = Changes(records, seen);
            if (terminal)
            {
                if (changed.Count > 0 || seen.Count != records.Count || now - lastDraw >= TimeSpan.FromSeconds(1))
                {
                    // Home and clear, then the table as skiff status prints it (AGE moves on).
                    stdout.Write("\u001b[H\u001b[2J");
                    StatusTable.Write(records, format == OutputFormat.Wide ? OutputFormat.Wide : OutputFormat.Table, stdout, now);
                    stdout.Flush();
                    lastDraw = now;
                }
            }
            else
            {
                if (first && records.Count == 0)
                {
                    // Something to show that the watch runs: a state folder skiff run has not filled (or created) yet.
                    stdout.WriteLine($"{now.ToString("HH:mm:ss", CultureInfo.InvariantCulture)} no resources in {store.Root} yet; watching");
                }

                foreach (var line in changed)
                {
                    stdout.WriteLine($"{now.ToString("HH:mm:ss", CultureInfo.InvariantCulture)} {line}");
                }

                stdout.Flush();
            }

            first = false;
            foreach (var gone in seen.Keys.Except(records.Select(Key)).ToList())
            {
                seen.Remove(gone);
                if (!terminal)
                {
                    stdout.WriteLine($"{now.ToString("HH:mm:ss", CultureInfo.InvariantCulture)} {gone}: deleted");
                }
            }

            try
            {
                await Task.Delay(TimeSpan.FromMilliseconds(500), ct);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }

        return ExitCodes.Ok;
    }

    /// <summary>"ns/name: Phase, revision N (image): Reason: message" for each record whose line changed since <paramref name="seen"/>; updates it.</summary>
    public static List<string> Changes(IEnumerable<StatusRecord> records, Dictionary<string, string> seen)
    {
        var lines = new List<string>();
        foreach (var record in records.OrderBy(Key, StringComparer.Ordinal))
        {
            var line = $"{Key(record)}: {WaitCommand.Judge(record, null, null).Line}";
            if (!seen.TryGetValue(Key(record), out var before) || before != line)
            {
                seen[Key(record)] = line;
                lines.Add(line);
            }
        }

        return lines;
    }

    private static string Key(StatusRecord r) => $"{r.Namespace}/{r.Name}";
}
