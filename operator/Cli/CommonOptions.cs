using System.CommandLine;

namespace Skiff.Cli;

/// <summary>Options shared by several commands, defined once so their names and defaults agree.</summary>
public static class CommonOptions
{
    public static Option<LogFormat> LogFormat { get; } = new("--log-format")
    {
        Description = "auto (JSON inside a pod, console elsewhere), console or json",
        DefaultValueFactory = _ => Cli.LogFormat.Auto,
        Recursive = true,
    };

    public static Option<string> LogLevel { get; } = new("--log-level")
    {
        Description = "Minimum level: verbose, debug, information, warning, error or fatal",
        DefaultValueFactory = _ => "information",
        Recursive = true,
    };

    public static Option<string?> Node() => new("--node")
    {
        Description = "The node this instance serves (default $NODE_NAME)",
        DefaultValueFactory = _ => Environment.GetEnvironmentVariable("NODE_NAME"),
    };

    public static Option<string?> DockerHost() => new("--docker-host")
    {
        Description = "Docker engine URI (default $DOCKER_HOST, then unix:///var/run/docker.sock)",
        DefaultValueFactory = _ => Environment.GetEnvironmentVariable("DOCKER_HOST"),
    };

    public static Option<string> StateDir() => new("--state-dir")
    {
        Description = "State folder (default /var/lib/skiff for root, else ~/.local/state/skiff)",
        DefaultValueFactory = _ => DefaultStateDir(),
    };

    public static Option<OutputFormat> Output() => new("--output", "-o")
    {
        Description = "table or json",
        DefaultValueFactory = _ => OutputFormat.Table,
    };

    public static string DefaultStateDir() =>
        Environment.UserName == "root"
            ? "/var/lib/skiff"
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".local", "state", "skiff");
}

/// <summary>Output formats of the commands that print resources.</summary>
public enum OutputFormat
{
    Table,
    Json,
}
