using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;

namespace Skiff.Cli;

/// <summary>Options shared by several commands, defined once so their names, defaults and checks agree.</summary>
public static class CommonOptions
{
    public static Option<LogFormat> LogFormat { get; } = new("--log-format")
    {
        Description = "auto (JSON inside a pod, console elsewhere), console or json",
        HelpName = "auto|console|json",
        DefaultValueFactory = _ => Cli.LogFormat.Auto,
        CustomParser = result => OneOf(result, "--log-format", Cli.LogFormat.Auto, [Cli.LogFormat.Auto, Cli.LogFormat.Console, Cli.LogFormat.Json]),
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

    /// <summary>
    /// <c>--docker-host</c> of every command that talks to the engine: the URI (or $DOCKER_HOST) is checked
    /// here, at parse time, so a bad one is a usage error (exit 2) naming what is accepted, never an exception.
    /// </summary>
    public static Option<string?> DockerHost() => new("--docker-host")
    {
        Description = "Docker engine URI: unix:///PATH, tcp://HOST:PORT or http(s)://HOST:PORT (default $DOCKER_HOST, then unix:///var/run/docker.sock)",
        HelpName = "uri",
        DefaultValueFactory = result =>
        {
            var value = Environment.GetEnvironmentVariable("DOCKER_HOST");
            if (DockerHosts.Problem(value) is { } problem)
            {
                result.AddError($"DOCKER_HOST={value} (the default of --docker-host): {problem}");
            }

            return string.IsNullOrEmpty(value) ? null : value;
        },
        CustomParser = result =>
        {
            var value = result.Tokens.Count > 0 ? result.Tokens[0].Value : null;
            if (DockerHosts.Problem(value) is { } problem)
            {
                result.AddError($"--docker-host {value}: {problem}");
            }

            return value;
        },
    };

    /// <summary><c>--age-key-file</c> for the commands that read a folder's Secret documents (plan, backup, restore).</summary>
    public static Option<string?> AgeKeyFile() => new("--age-key-file")
    {
        Description = "age identity file that decrypts the *.age files Secret documents name, as given to skiff run (env SKIFF_AGE_KEY_FILE)",
        HelpName = "file",
    };

    /// <summary>The key <paramref name="option"/> (else <c>SKIFF_AGE_KEY_FILE</c>) names, or null; a bad file shows as SecretNotDecrypted on the stacks that need it.</summary>
    public static Sources.Directory.AgeCli? Age(ParseResult parse, Option<string?> option) =>
        AgeKeyFileOrEnvironment(parse, option) is { } file ? new Sources.Directory.AgeCli(Path.GetFullPath(file), TimeSpan.FromSeconds(30)) : null;

    /// <summary><paramref name="option"/>'s value, else <c>SKIFF_AGE_KEY_FILE</c> (read here, not as the option's default, so that the kubernetes source ignores the variable).</summary>
    public static string? AgeKeyFileOrEnvironment(ParseResult parse, Option<string?> option) =>
        parse.GetValue(option) ?? (Environment.GetEnvironmentVariable("SKIFF_AGE_KEY_FILE") is { Length: > 0 } env ? env : null);

    public static Option<string> StateDir() => new("--state-dir")
    {
        Description = "State folder (default /var/lib/skiff for root, else ~/.local/state/skiff)",
        DefaultValueFactory = _ => DefaultStateDir(),
    };

    /// <summary><c>-o/--output</c> with the formats a command supports; a value outside them is a usage error naming them.</summary>
    public static Option<OutputFormat> Output(params OutputFormat[] allowed) => new("--output", "-o")
    {
        Description = "Output format: " + Alternatives(allowed),
        HelpName = string.Join('|', allowed.Select(Name)),
        DefaultValueFactory = _ => allowed[0],
        CustomParser = result => OneOf(result, "--output", allowed[0], allowed),
    };

    /// <summary>A whole number of seconds, at least 1; anything else is a usage error naming the option.</summary>
    internal static int PositiveSeconds(ArgumentResult result, string option, int fallback)
    {
        var text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
        if (int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds) && seconds >= 1)
        {
            return seconds;
        }

        result.AddError($"{option} {text}: want a whole number of seconds, at least 1");
        return fallback;
    }

    public static string DefaultStateDir() =>
        Environment.UserName == "root"
            ? "/var/lib/skiff"
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".local", "state", "skiff");

    /// <summary>How a value is written on the command line: lower case.</summary>
    internal static string Name<T>(T value) where T : struct, Enum => value.ToString().ToLowerInvariant();

    /// <summary>"a, b or c".</summary>
    internal static string Alternatives<T>(IReadOnlyList<T> values) where T : struct, Enum =>
        values.Count == 1 ? Name(values[0]) : string.Join(", ", values.Take(values.Count - 1).Select(Name)) + " or " + Name(values[^1]);

    private static T OneOf<T>(ArgumentResult result, string option, T fallback, IReadOnlyList<T> allowed) where T : struct, Enum
    {
        var text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
        foreach (var value in allowed)
        {
            if (string.Equals(Name(value), text, StringComparison.OrdinalIgnoreCase))
            {
                return value;
            }
        }

        result.AddError($"{option} {text}: unknown value; use {Alternatives(allowed)}");
        return fallback;
    }
}

/// <summary>Output formats of the commands that print resources.</summary>
public enum OutputFormat
{
    Table,
    Json,
    Yaml,

    /// <summary>The table with more columns (<c>skiff status</c>: REASON).</summary>
    Wide,
}
