// Serves the test API server (tests/Skiff.TestApiServer) on a port until SIGTERM or Ctrl-C, with Skiff's CRDs:
//   kube-apiserver --port 0 --kubeconfig /tmp/x/kubeconfig [--namespace NS]...
// It writes the kubeconfig (for `skiff run --source kubernetes --kubeconfig`, kubectl, curl) and then prints one line,
// "serving <base URI>", on stdout.
using Skiff.TestApiServer;

var port = 0;
string? kubeconfig = null;
var namespaces = new List<string>();
for (var i = 0; i < args.Length - 1; i += 2)
{
    switch (args[i])
    {
        case "--port": port = int.Parse(args[i + 1], System.Globalization.CultureInfo.InvariantCulture); break;
        case "--kubeconfig": kubeconfig = args[i + 1]; break;
        case "--namespace": namespaces.Add(args[i + 1]); break;
        default: Console.Error.WriteLine($"unknown option {args[i]}"); return 2;
    }
}

if (kubeconfig is null)
{
    Console.Error.WriteLine("usage: kube-apiserver [--port N] --kubeconfig FILE [--namespace NS]...");
    return 2;
}

var crds = Path.Combine(AppContext.BaseDirectory, "crds");
await using var server = await TestApiServer.StartAsync(new TestApiServerOptions
{
    CrdPaths = [Path.Combine(crds, "skiff.dev_appdeployments.yaml"), Path.Combine(crds, "skiff.dev_imagegcpolicies.yaml")],
    Port = port,
    Namespaces = namespaces,
    // Change-latency runs send a few hundred events; resumable watches need them all.
    WatchHistorySize = 10_000,
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
