using System.Runtime.InteropServices;
using Skiff.TestApp;

// testapp            serve HTTP on 0.0.0.0:$PORT (default 8080)
// testapp serve      the same
// testapp migrate    create the visits table; exit 1 when the database stays unreachable
using var stopping = new CancellationTokenSource();

// Containers stop with SIGTERM (SIGINT from a terminal): finish promptly instead of waiting to be killed.
using var onTerm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
using var onInt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);

try
{
    var settings = Settings.FromEnvironment();
    var mode = args.Length > 0 ? args[0] : "serve";
    return mode switch
    {
        "serve" => await Serve(settings, stopping.Token),
        "migrate" => await Migration.RunAsync(settings, stopping.Token),
        "version" => PrintVersion(settings),
        _ => Usage(mode),
    };
}
catch (SettingsException e)
{
    Log.Line($"invalid configuration: {e.Message}");
    return 2;
}

void Stop(PosixSignalContext context)
{
    context.Cancel = true;
    Log.Line($"{context.Signal} received, stopping");
    stopping.Cancel();
}

static async Task<int> Serve(Settings settings, CancellationToken ct)
{
    var tcp = settings.TcpPort is { } port ? TcpEcho.RunAsync(port, settings.Version, ct) : Task.CompletedTask;
    var code = await new Server(settings).RunAsync(ct);
    await tcp;
    return code;
}

static int PrintVersion(Settings settings)
{
    Console.WriteLine(settings.Version);
    return 0;
}

static int Usage(string mode)
{
    Console.Error.WriteLine($"unknown command '{mode}'; usage: testapp [serve|migrate|version]");
    return 2;
}
