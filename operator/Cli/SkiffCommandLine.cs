using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;
using System.CommandLine.Parsing;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using Skiff.Docker;
using Skiff.Yaml;
using Skiff.Reconcile;
using Skiff.Hosting;

namespace Skiff.Cli;

/// <summary>Builds the <c>skiff</c> command tree (DESIGN §5) and invokes it.</summary>
public static partial class SkiffCommandLine
{
    public static RootCommand Build()
    {
        var root = new RootCommand("Skiff deploys small application stacks (app + PostgreSQL + Redis) onto single-node Docker hosts and keeps those hosts healthy.");
        root.Options.Add(CommonOptions.LogFormat);
        root.Options.Add(CommonOptions.LogLevel);
        root.Subcommands.Add(RunCommand.Build());
        root.Subcommands.Add(PlanCommand.Build());
        root.Subcommands.Add(StatusCommand.Build());
        root.Subcommands.Add(ValidateCommand.Build());
        root.Subcommands.Add(GcCommand.Build());
        root.Subcommands.Add(CrdsCommand.Build());
        root.Subcommands.Add(VersionCommand.Build());
        root.Subcommands.Add(ProxyCommand.Build());
        foreach (var command in BackupCommands.Build())
        {
            root.Subcommands.Add(command);
        }
        DayTwo.AddTo(root);
        return root;
    }

    /// <summary>How long a command has to end after Ctrl+C or SIGTERM before the process exits 143.</summary>
    public static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(25);

    /// <summary>
    /// Runs a parsed command line: the one place that turns usage errors (an unknown command or option, a
    /// missing required option, a bad value) into exit 2 with a short message, and an unexpected exception
    /// into one line instead of a stack trace (the trace goes to the debug log).
    /// </summary>
    /// <remarks>System.CommandLine returns 1 for parse errors and prints a stack trace for exceptions; Skiff's contract is 2, and no trace.</remarks>
    public static async Task<int> InvokeAsync(ParseResult parse, TextWriter? stdout = null, TextWriter? stderr = null, CancellationToken ct = default)
    {
        stdout ??= Console.Out;
        stderr ??= Console.Error;
        var command = CommandPath(parse.CommandResult);
        if (parse.Action is ParseErrorAction)
        {
            var errors = parse.Errors.ToList();
            if (errors.Any(e => UnknownToken().IsMatch(e.Message)))
            {
                // "skiff stauts": the unknown word says more than "a command is required".
                errors.RemoveAll(e => e.Message.StartsWith("Required command was not provided", StringComparison.Ordinal));
            }

            // An unknown option first: the words after it ("--stat-dir /tmp") are only unexpected because of it.
            var messages = errors.Select(e => Describe(e, parse)).OrderBy(m => m.StartsWith("unknown option", StringComparison.Ordinal) ? 0 : 1);
            foreach (var message in messages.Distinct(StringComparer.Ordinal))
            {
                stderr.WriteLine($"{command}: {message}");
            }

            stderr.WriteLine($"See '{command} --help' for usage.");
            return ExitCodes.UsageOrIo;
        }

        try
        {
            // Ctrl+C or SIGTERM cancels the command's token and System.CommandLine then waits this long for it to end
            // before it exits 143. Its default, 2 s, cut off a `skiff run` cleaning up a backup in flight on a loaded
            // host (a container to remove); 25 s stays inside Kubernetes' 30 s grace period before SIGKILL.
            var invocation = new InvocationConfiguration
            {
                EnableDefaultExceptionHandler = false, Output = stdout, Error = stderr, ProcessTerminationTimeout = StopGrace,
            };
            return await parse.InvokeAsync(invocation, ct);
        }
        catch (OperationCanceledException)
        {
            // Stopped (Ctrl+C, SIGTERM) before the command finished, as System.CommandLine's own handler answers.
            return ExitCodes.NotOk;
        }
        catch (Exception e)
        {
            CliContext.Logging.CreateLogger("Skiff.Cli").LogDebug(e, "{Command} failed", command);
            stderr.WriteLine($"{command}: {e.Message.TrimEnd('.')} ({e.GetType().Name}); run with --log-level debug for details");
            return e switch
            {
                EngineUnreachableException => ExitCodes.Unreachable,
                IOException or UnauthorizedAccessException => ExitCodes.UsageOrIo,
                _ => ExitCodes.NotOk,
            };
        }
    }

    /// <summary>What a command whose issue has not landed yet answers.</summary>
    internal static int NotBuiltYet(string what)
    {
        Console.Error.WriteLine($"skiff: {what} is not built yet in this version.");
        return ExitCodes.UsageOrIo;
    }

    /// <summary>"skiff status": the command as typed, for messages.</summary>
    private static string CommandPath(CommandResult result)
    {
        var names = new List<string>();
        for (SymbolResult? r = result; r is not null; r = r.Parent)
        {
            if (r is CommandResult c)
            {
                names.Insert(0, c.Command is RootCommand ? "skiff" : c.Command.Name);
            }
        }

        return string.Join(' ', names);
    }

    /// <summary>A parse error in Skiff's words: what was wrong and what is accepted, never a .NET type name.</summary>
    private static string Describe(ParseError error, ParseResult parse)
    {
        var message = error.Message;
        var command = parse.CommandResult.Command;
        if (UnknownToken().Match(message) is { Success: true } unknown)
        {
            var token = unknown.Groups[1].Value;
            if (token.StartsWith('-'))
            {
                var options = command.Options.Concat(parse.RootCommandResult.Command.Options.Where(o => o.Recursive))
                    .Where(o => o is not HelpOption)
                    .SelectMany(o => o.Aliases.Prepend(o.Name))
                    .Distinct(StringComparer.Ordinal)
                    .ToList();
                var flag = token.Split('=')[0];
                return $"unknown option {flag}" + SchemaChecker.Suggest(flag, options);
            }

            if (command.Subcommands.Count > 0)
            {
                var names = command.Subcommands.Select(c => c.Name).ToList();
                var suggestion = SchemaChecker.Suggest(token, names);
                return $"unknown command \"{token}\"" + (suggestion.Length > 0 ? suggestion : $"; the commands are {string.Join(", ", names)}");
            }

            return $"unexpected argument \"{token}\"";
        }

        if (message.StartsWith("Required command was not provided", StringComparison.Ordinal))
        {
            return $"a command is required: {string.Join(", ", command.Subcommands.Select(c => c.Name))}";
        }

        if (MissingArgument().Match(message) is { Success: true } argument)
        {
            return $"{argument.Groups[1].Value} is required";
        }

        if (RequiredOption().Match(message) is { Success: true } required)
        {
            return $"{required.Groups[1].Value} is required";
        }

        if (MissingValue().Match(message) is { Success: true } missing)
        {
            return $"{missing.Groups[1].Value} needs a value";
        }

        if (WrongType().Match(message) is { Success: true } wrong)
        {
            var expected = wrong.Groups[3].Value switch
            {
                "System.Int32" or "System.Int64" => "a whole number",
                "System.Boolean" => "true or false",
                _ => "a valid value",
            };
            return $"{wrong.Groups[2].Value} {wrong.Groups[1].Value}: want {expected}";
        }

        return message.TrimEnd('.');
    }

    [GeneratedRegex(@"^Unrecognized command or argument '(.*)'\.?$")]
    private static partial Regex UnknownToken();

    [GeneratedRegex(@"^Required argument '(.*)' missing for command")]
    private static partial Regex MissingArgument();

    [GeneratedRegex(@"^Option '(.*)' is required\.?$")]
    private static partial Regex RequiredOption();

    [GeneratedRegex(@"^Required argument missing for option: '(.*)'\.?$")]
    private static partial Regex MissingValue();

    [GeneratedRegex(@"^Cannot parse argument '(.*)' for option '(.*)' as expected type '(.*)'\.?")]
    private static partial Regex WrongType();
}
