using System.Text.Json;
using Skiff.ImageGC;
using Skiff.State;

namespace Skiff.Sources.Directory;

/// <summary>The folder source's GC reports: <c>gc/&lt;node&gt;.json</c> in the state folder (and /status).</summary>
public sealed class FolderGcReporter(StateStore state) : IGcReporter
{
    public Task ReportAsync(GcNodeReport report, CancellationToken ct)
    {
        state.WriteGcReport(report.Node, JsonSerializer.SerializeToUtf8Bytes(report, GcJsonContext.Default.GcNodeReport));
        return Task.CompletedTask;
    }
}
