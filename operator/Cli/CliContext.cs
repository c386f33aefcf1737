using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Skiff.Cli;

/// <summary>What Program.cs hands the commands: the logger factory (only Program.cs knows Serilog).</summary>
public static class CliContext
{
    public static ILoggerFactory Logging { get; set; } = NullLoggerFactory.Instance;
}
