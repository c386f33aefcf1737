using System.CommandLine;
using Serilog;
using Serilog.Events;
using Serilog.Formatting;
using Serilog.Formatting.Compact;
using Serilog.Formatting.Display;
using Skiff.Observability;
using Skiff.Cli;

// Only this file knows Serilog: everything else logs through Microsoft.Extensions.Logging.
var root = SkiffCommandLine.Build();
var parse = root.Parse(args);

var format = parse.GetValue(CommonOptions.LogFormat);
if (format == LogFormat.Auto)
{
    format = Environment.GetEnvironmentVariable("KUBERNETES_SERVICE_HOST") is { Length: > 0 } ? LogFormat.Json : LogFormat.Console;
}

var levelText = parse.GetValue(CommonOptions.LogLevel) ?? "information";
if (!Enum.TryParse<LogEventLevel>(levelText, ignoreCase: true, out var level))
{
    Console.Error.WriteLine($"--log-level: unknown level \"{levelText}\"; use verbose, debug, information, warning, error or fatal");
    return ExitCodes.UsageOrIo;
}

var config = new LoggerConfiguration()
    .MinimumLevel.Is(level)
    .MinimumLevel.Override("Microsoft", LogEventLevel.Warning)
    .MinimumLevel.Override("System.Net.Http", LogEventLevel.Warning)
    .Enrich.FromLogContext();
// Logs go to stderr so that command output on stdout (tables, YAML, JSON) stays machine-readable.
// Every line passes the redactor: a secret value the operator knows never reaches a log.
ITextFormatter formatter = format == LogFormat.Json
    ? new RenderedCompactJsonFormatter()
    : new MessageTemplateTextFormatter("{Timestamp:HH:mm:ss} {Level:u3} {Message:lj}{NewLine}{Exception}");
config = config.WriteTo.Console(new RedactingFormatter(formatter), standardErrorFromLevel: LogEventLevel.Verbose);
Log.Logger = config.CreateLogger();
CliContext.Logging = new Serilog.Extensions.Logging.SerilogLoggerFactory(Log.Logger);

try
{
    return await parse.InvokeAsync();
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
