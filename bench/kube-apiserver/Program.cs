// Serves the test API server (tests/Skiff.TestApiServer) on a port until SIGTERM or Ctrl-C, with Skiff's CRDs:
//   kube-apiserver --port 0 --kubeconfig /tmp/x/kubeconfig [--namespace NS]... [--watch-history N] [--request-log FILE]
// It writes the kubeconfig (for `skiff run --source kubernetes --kubeconfig`, kubectl, curl) and then prints one line,
// "serving <base URI>", on stdout.
// --request-log FILE appends one line per request as it arrives (before it is served), written through at once:
// "<epoch seconds, 6 decimals>\t<METHOD>\t<path>[?<query, URL-decoded>]\t<User-Agent>", on the same wall clock as
// Python's time.time(), like bench/docker-relay.py's log (bench/queue, P8, matches changes to the operator's writes).
using System.Globalization;
using Skiff.TestApiServer;

var port = 0;
string? kubeconfig = null;
var namespaces = new List<string>();
string? requestLog = null;
var watchHistory = 10_000;
for (var i = 0; i < args.Length - 1; i += 2)
{
    switch (args[i])
    {
        case "--port": port = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
        case "--kubeconfig": kubeconfig = args[i + 1]; break;
        case "--namespace": namespaces.Add(args[i + 1]); break;
        case "--request-log": requestLog = args[i + 1]; break;
        case "--watch-history": watchHistory = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
        default: Console.Error.WriteLine($"unknown option {args[i]}"); return 2;
    }
}

if (kubeconfig is null)
{
    Console.Error.WriteLine("usage: kube-apiserver [--port N] --kubeconfig FILE [--namespace NS]... [--watch-history N] [--request-log FILE]");
    return 2;
}

using var log = requestLog is null ? null : new RequestLog(requestLog);
var crds = Path.Combine(AppContext.BaseDirectory, "crds");
await using var server = await TestApiServer.StartAsync(new TestApiServerOptions
{
    CrdPaths = [Path.Combine(crds, "skiff.dev_appdeployments.yaml"), Path.Combine(crds, "skiff.dev_imagegcpolicies.yaml")],
    Port = port,
    Namespaces = namespaces,
    // Change-latency runs send a few hundred events; resumable watches need them all. bench/queue sends far more.
    WatchHistorySize = watchHistory,
    OnRequestArrived = log is null ? null : log.Write,
});
server.WriteKubeconfig(kubeconfig);
Console.WriteLine($"serving {server.BaseUri}");
using var stop = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Cancel(); };
using var term = System.Runtime.InteropServices.PosixSignalRegistration.Create(
    System.Runtime.InteropServices.PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
try
{
    await Task.Delay(Timeout.Infinite, stop.Token);
}
catch (OperationCanceledException)
{
}

return 0;

/// <summary>The --request-log file: one line per request as it arrives, written through (no buffering across requests).</summary>
internal sealed class RequestLog(string path) : IDisposable
{
    private static readonly long EpochTicks = DateTimeOffset.UnixEpoch.UtcTicks;
    private readonly Lock gate = new();
    private readonly StreamWriter writer = new(new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.ReadWrite, 4096)) { AutoFlush = true };

    public void Write(Microsoft.AspNetCore.Http.HttpRequest request)
    {
        var micros = (DateTimeOffset.UtcNow.UtcTicks - EpochTicks) / 10;
        var query = request.QueryString.HasValue ? Uri.UnescapeDataString(request.QueryString.Value!) : "";
        var line = string.Create(CultureInfo.InvariantCulture,
            $"{micros / 1_000_000}.{micros % 1_000_000:D6}\t{request.Method}\t{Clean(request.Path.Value)}{Clean(query)}\t{Clean(request.Headers.UserAgent.ToString())}\n");
        lock (gate)
        {
            writer.Write(line);
        }
    }

    private static string Clean(string? s) => (s ?? "").Replace('\t', ' ').Replace('\n', ' ');

    public void Dispose()
    {
        lock (gate)
        {
            writer.Dispose();
        }
    }
}
