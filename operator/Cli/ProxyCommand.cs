using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Skiff.Hosting;
using Skiff.Observability;
using Skiff.Proxy;

namespace Skiff.Cli;

/// <summary><c>skiff proxy</c>: the node proxy that owns the published ports (DESIGN §7, docs/PROXY.md).</summary>
public static class ProxyCommand
{
    public static Option<string> Routes { get; } = new("--routes")
    {
        Description = "The routes file the operator writes (JSON; followed for changes)",
        HelpName = "file",
        Required = true,
    };

    public static Option<string> MetricsBindAddress { get; } = new("--metrics-bind-address")
    {
        Description = "Where /metrics and /healthz are served ([host]:port, \"0\" to disable)",
        HelpName = "address",
        DefaultValueFactory = _ => ":9090",
        CustomParser = result =>
        {
            var text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
            try
            {
                BindAddress.Parse(text);
            }
            catch (FormatException e)
            {
                result.AddError($"--metrics-bind-address {text}: {e.Message}");
            }

            return text;
        },
    };

    public static Option<int> DrainSeconds { get; } = new("--drain-seconds")
    {
        Description = "How long a removed listener's connections, and all of them at shutdown, are given to finish",
        HelpName = "seconds",
        DefaultValueFactory = _ => 30,
        CustomParser = result =>
        {
            var text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
            if (int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds))
            {
                return seconds;
            }

            result.AddError($"--drain-seconds {text}: want a whole number of seconds, 0 or more");
            return 30;
        },
    };

    public static Command Build()
    {
        var command = new Command("proxy", "Run the node proxy: listen on every published port in the routes file and forward to the live revision, until SIGTERM")
        {
            Routes, MetricsBindAddress, DrainSeconds,
        };

        // A synchronous action on purpose: System.CommandLine gives an asynchronous one SkiffCommandLine.StopGrace
        // after SIGTERM before it returns 143, and the proxy needs its whole drain time (--drain-seconds, 30 s).
        // The proxy handles the signals itself.
        command.SetAction(parse => Run(parse.GetValue(Routes)!, parse.GetValue(MetricsBindAddress)!, parse.GetValue(DrainSeconds)));
        return command;
    }

    private static int Run(string routes, string metricsBindAddress, int drainSeconds)
    {
        // Socket completions run on the event thread that saw them rather than on a pool thread (with Kestrel's
        // inline scheduling, ProxyKestrel): measured, context switches per proxied request went from about 5 to
        // about 1 (docs/PERFORMANCE.md). Read once, when the first socket is made, which is after this line.
        Environment.SetEnvironmentVariable("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS", "1");

        // Checked when parsed (a bad value is a usage error there).
        var metricsAt = BindAddress.Parse(metricsBindAddress);
        var options = new ProxyOptions(
            routes,
            metricsAt is null ? null : new System.Net.IPEndPoint(metricsAt.Address ?? (System.Net.Sockets.Socket.OSSupportsIPv6 ? System.Net.IPAddress.IPv6Any : System.Net.IPAddress.Any), metricsAt.Port),
            TimeSpan.FromSeconds(drainSeconds));
        using var stop = new CancellationTokenSource();
        void OnSignal(PosixSignalContext context)
        {
            context.Cancel = true;
            stop.Cancel();
        }

        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
        var logger = CliContext.Logging.CreateLogger("Skiff.Proxy");
        try
        {
            new ProxyServer(options, CliContext.Logging).RunAsync(stop.Token).GetAwaiter().GetResult();
            return ExitCodes.Ok;
        }
        catch (IOException e)
        {
            logger.LogDebug(e, "The proxy could not start");
            Console.Error.WriteLine($"skiff proxy: cannot serve metrics on {metricsAt}: {e.GetBaseException().Message}; pick another --metrics-bind-address");
            return ExitCodes.UsageOrIo;
        }
    }
}
