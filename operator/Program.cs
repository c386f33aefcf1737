using System.CommandLine.Invocation;
using Microsoft.Extensions.Configuration;
using Serilog;
using Serilog.Events;
using Serilog.Formatting;
using Serilog.Formatting.Compact;
using Serilog.Formatting.Display;
using Skiff.Observability;
using Skiff.Cli;
using Skiff.Hosting;

// Only this file knows Serilog: everything else logs through Microsoft.Extensions.Logging.
StartupTrace.Mark("main");
Skiff.Sources.Kubernetes.KubeJson.Register();
var root = SkiffCommandLine.Build();
var parse = root.Parse(args);
StartupTrace.Mark("command line parsed");
if (parse.Action is ParseErrorAction)
{
    // A usage error needs no logger (and its values cannot be read): SkiffCommandLine reports it, exit 2.
    return await SkiffCommandLine.InvokeAsync(parse);
}

var format = parse.GetValue(CommonOptions.LogFormat);
if (format == LogFormat.Auto)
{
    format = Environment.GetEnvironmentVariable("KUBERNETES_SERVICE_HOST") is { Length: > 0 } ? LogFormat.Json : LogFormat.Console;
}

// Levels: information by default; per source (a logger category or namespace prefix) from appsettings.json
// beside the executable and SKIFF_-prefixed environment variables, in the usual .NET shape
// (SKIFF_Serilog__MinimumLevel__Override__Skiff.ImageGC=Debug); --log-level, when given, sets the default.
// Only the levels are read from configuration, never sinks, so no setting can open a log that bypasses
// the redactor below: that is why this does not hand the section to Serilog.Settings.Configuration.
var settings = new ConfigurationBuilder()
    .SetBasePath(AppContext.BaseDirectory)
    .AddJsonFile("appsettings.json", optional: true)
    .AddEnvironmentVariables("SKIFF_")
    .Build();
var levels = settings.GetSection("Serilog:MinimumLevel");
var overrides = new List<(string Source, LogEventLevel Level)> { ("Microsoft", LogEventLevel.Warning), ("System.Net.Http", LogEventLevel.Warning) };
var level = LogEventLevel.Information;
foreach (var entry in levels.AsEnumerable(makePathsRelative: true).Where(e => e.Key.Length > 0 && e.Value is not null))
{
    var isDefault = entry.Key == "Default";
    var source = entry.Key.StartsWith("Override:", StringComparison.Ordinal) ? entry.Key["Override:".Length..] : null;
    if (!Enum.TryParse<LogEventLevel>(entry.Value, ignoreCase: true, out var parsed) || (!isDefault && source is not { Length: > 0 }))
    {
        Console.Error.WriteLine($"log settings: Serilog:MinimumLevel:{entry.Key} = \"{entry.Value}\" is not understood; " +
            "use Serilog:MinimumLevel:Default or Serilog:MinimumLevel:Override:<source> (SKIFF_Serilog__MinimumLevel__Override__<source>) " +
            "with verbose, debug, information, warning, error or fatal");
        return ExitCodes.UsageOrIo;
    }

    if (isDefault)
    {
        level = parsed;
    }
    else
    {
        overrides.Add((source!, parsed));
    }
}

if (levels.Value is { } plain)
{
    // "Serilog:MinimumLevel": "Debug" is Serilog's short form of Default.
    if (!Enum.TryParse(plain, ignoreCase: true, out level))
    {
        Console.Error.WriteLine($"log settings: Serilog:MinimumLevel = \"{plain}\" is not a level; use verbose, debug, information, warning, error or fatal");
        return ExitCodes.UsageOrIo;
    }
}

if (parse.GetResult(CommonOptions.LogLevel) is { Implicit: false })
{
    var levelText = parse.GetValue(CommonOptions.LogLevel) ?? "information";
    if (!Enum.TryParse(levelText, ignoreCase: true, out level))
    {
        Console.Error.WriteLine($"--log-level: unknown level \"{levelText}\"; use verbose, debug, information, warning, error or fatal");
        return ExitCodes.UsageOrIo;
    }
}

var config = new LoggerConfiguration()
    .MinimumLevel.Is(level)
    .Enrich.FromLogContext();
foreach (var (source, sourceLevel) in overrides)
{
    config = config.MinimumLevel.Override(source, sourceLevel);
}

// Logs go to stderr so that command output on stdout (tables, YAML, JSON) stays machine-readable.
// Every line passes the redactor: a secret value the operator knows never reaches a log.
ITextFormatter formatter = format == LogFormat.Json
    ? new RenderedCompactJsonFormatter()
    : new MessageTemplateTextFormatter("{Timestamp:HH:mm:ss} {Level:u3} {Message:lj}{NewLine}{Exception}");
config = config.WriteTo.Console(new RedactingFormatter(formatter), standardErrorFromLevel: LogEventLevel.Verbose);
Log.Logger = config.CreateLogger();
CliContext.Logging = new Serilog.Extensions.Logging.SerilogLoggerFactory(Log.Logger);
StartupTrace.Mark("logging (configuration, Serilog)");

try
{
    return await SkiffCommandLine.InvokeAsync(parse);
}
finally
{
    await Log.CloseAndFlushAsync();
}

/// <summary>Formats a log event, then masks every registered secret value in the text.</summary>
internal sealed class RedactingFormatter(ITextFormatter inner) : ITextFormatter
{
    public void Format(LogEvent logEvent, TextWriter output)
    {
        using var buffer = new StringWriter();
        inner.Format(logEvent, buffer);
        output.Write(SecretRedactor.Shared.Redact(buffer.ToString()));
    }
}
