using System.Globalization;
using System.Text.Json;
using Skiff.Api;
using Skiff.Crds;
using Skiff.Reconcile;
using Skiff.State;

namespace Skiff.Cli;

/// <summary>The status table of <c>skiff status</c> and <c>skiff run --once</c>.</summary>
public static class StatusTable
{
    public static void Write(IEnumerable<StatusRecord> records, OutputFormat format, TextWriter output, DateTimeOffset now)
    {
        var list = records.OrderBy(r => r.Namespace, StringComparer.Ordinal).ThenBy(r => r.Name, StringComparer.Ordinal).ToList();
        switch (format)
        {
            case OutputFormat.Json:
                output.WriteLine(JsonSerializer.Serialize(list, StateStore.Json.Info<List<StatusRecord>>()));
                return;
            case OutputFormat.Yaml:
                output.Write(YamlWriter.Write([JsonSerializer.SerializeToNode(list, StateStore.Json.Info<List<StatusRecord>>())!]));
                return;
        }

        var wide = format == OutputFormat.Wide;
        string[] header = ["NAMESPACE", "NAME", "NODE", "READY", "PHASE", "IMAGE", "REVISION", "AGE"];
        var rows = new List<string[]> { wide ? [.. header, "REASON"] : header };
        rows.AddRange(list.Select(r =>
        {
            var ready = Conditions.Get(r.Status, ConditionTypes.Ready);
            string[] row =
            [
                r.Namespace,
                r.Name,
                r.Node ?? "",
                ready?.Status ?? "Unknown",
                r.Status?.Phase ?? Phases.Pending,
                r.Status?.Image ?? "",
                r.Status?.Revision?.ToString(CultureInfo.InvariantCulture) ?? "",
                Age(now - r.CreatedAt),
            ];
            // REASON: why the resource is not Ready; empty when it is.
            return wide ? [.. row, ready?.Status == "True" ? "" : ready?.Reason ?? ""] : row;
        }));
        WriteColumns(rows, output, "");
    }

    /// <summary>Left-aligned columns three spaces apart, as kubectl prints them; <paramref name="indent"/> before each row.</summary>
    internal static void WriteColumns(IReadOnlyList<string[]> rows, TextWriter output, string indent)
    {
        var widths = Enumerable.Range(0, rows[0].Length).Select(i => rows.Max(row => row[i].Length)).ToArray();
        foreach (var row in rows)
        {
            output.WriteLine(indent + string.Join("   ", row.Select((cell, i) => i == row.Length - 1 ? cell : cell.PadRight(widths[i]))).TrimEnd());
        }
    }

    /// <summary>Ages the way kubectl prints them: 45s, 5m, 3h, 2d.</summary>
    public static string Age(TimeSpan age)
    {
        if (age < TimeSpan.Zero)
        {
            age = TimeSpan.Zero;
        }

        return age.TotalSeconds < 120 ? $"{(int)age.TotalSeconds}s"
            : age.TotalMinutes < 120 ? $"{(int)age.TotalMinutes}m"
            : age.TotalHours < 48 ? $"{(int)age.TotalHours}h"
            : $"{(int)age.TotalDays}d";
    }

    /// <summary>Why each resource that is not Ready is not, one line each.</summary>
    public static void WriteProblems(IEnumerable<StatusRecord> records, TextWriter output)
    {
        foreach (var r in records.Where(r => !Conditions.IsTrue(r.Status, ConditionTypes.Ready)))
        {
            var c = Conditions.Get(r.Status, ConditionTypes.Stalled) is { Status: "True" } stalled ? stalled : Conditions.Get(r.Status, ConditionTypes.Ready);
            output.WriteLine($"{r.Namespace}/{r.Name}: {c?.Reason ?? "NotReady"}: {c?.Message ?? "not reconciled"}");
        }
    }
}
