using System.CommandLine;
using System.Globalization;
using Docker.DotNet.Models;
using Skiff.Docker;
using Skiff.Hosting;
using Skiff.Reconcile;

namespace Skiff.Cli;

/// <summary><c>skiff logs NAME</c>: one container's output, found by Skiff's labels, secrets masked.</summary>
public static class LogsCommand
{
    private const string Command = "skiff logs";

    public static Command Build()
    {
        var name = StackContainers.Name("The AppDeployment whose logs to show");
        var ns = StackContainers.Namespace();
        var component = StackContainers.Component();
        var follow = new Option<bool>("--follow", "-f") { Description = "Keep printing new lines until interrupted (Ctrl+C)" };
        var since = new Option<string?>("--since")
        {
            Description = "Only lines newer than a duration (10m, 1h30m, 45s) or a time (2026-01-02T15:04:05Z)",
            HelpName = "duration|time",
        };
        since.Validators.Add(result =>
        {
            if (result.Tokens is [{ Value: var text }] && ParseSince(text, DateTimeOffset.UtcNow) is null)
            {
                result.AddError($"--since {text}: want a duration like 10m, 1h30m or 45s, or a time like 2026-01-02T15:04:05Z");
            }
        });
        var tail = new Option<int?>("--tail")
        {
            Description = "Only the last N lines (default: all)",
            HelpName = "N",
            CustomParser = result =>
            {
                var text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
                if (int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var n))
                {
                    return n;
                }

                result.AddError($"--tail {text}: want a whole number of lines, 0 or more");
                return null;
            },
        };
        var previous = new Option<bool>("--previous", "-p") { Description = "The container of the revision before the live one (app or migration), if it is still there" };
        var dockerHost = CommonOptions.DockerHost();
        var stateDir = CommonOptions.StateDir();
        var command = new Command("logs", "Print the logs of a stack's container (the live revision's app by default), secrets masked")
        {
            name, ns, component, follow, since, tail, previous, dockerHost, stateDir,
        };
        command.SetAction((parse, ct) => RunAsync(
            new LogsOptions(parse.GetValue(name)!, parse.GetValue(ns)!, parse.GetValue(component)!, parse.GetValue(follow), parse.GetValue(since),
                parse.GetValue(tail), parse.GetValue(previous), parse.GetValue(dockerHost), parse.GetValue(stateDir)!),
            parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, ct));
        return command;
    }

    public sealed record LogsOptions(
        string Name, string Namespace, string Component, bool Follow, string? Since, int? Tail, bool Previous, string? DockerHost, string StateDir);

    /// <summary>Exit 0 when the logs were printed (or following stopped); 1 no such stack or container; 3 engine unreachable.</summary>
    public static async Task<int> RunAsync(LogsOptions o, TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        using var engine = new DockerEngine(o.DockerHost);
        var target = await StackTarget.FindAsync(engine, Command, o.Namespace, o.Name, o.Component, o.Previous, o.StateDir, stderr, ct);
        if (target.Container is not { } container)
        {
            return target.Exit;
        }

        var parameters = new ContainerLogsParameters
        {
            ShowStdout = true,
            ShowStderr = true,
            Follow = o.Follow,
            Tail = o.Tail?.ToString(CultureInfo.InvariantCulture) ?? "all",
            Since = o.Since is { } since ? ParseSince(since, DateTimeOffset.UtcNow)?.ToString(CultureInfo.InvariantCulture) : null,
        };
        try
        {
            using var stream = await engine.Client.Containers.GetContainerLogsAsync(container.Id, parameters, ct);
            await new MaskedOutput(stdout, stderr, target.Secrets).CopyAsync(stream, ct);
            return ExitCodes.Ok;
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Ctrl+C ends -f: what was followed is the answer.
            return ExitCodes.Ok;
        }
        catch (Exception e) when (e is HttpRequestException or IOException)
        {
            stderr.WriteLine($"{Command}: the engine at {engine.Endpoint} stopped answering: {e.Message}");
            return ExitCodes.Unreachable;
        }
    }

    /// <summary>
    /// <c>--since</c> as the Unix time (seconds) the engine wants: a duration back from <paramref name="now"/> (<c>10m</c>,
    /// <c>1h30m</c>, <c>45s</c>, <c>2d</c>) or an RFC 3339 time; null when it is neither.
    /// </summary>
    public static long? ParseSince(string text, DateTimeOffset now)
    {
        if (Durations.TryParse(text, out var back))
        {
            return (now - back).ToUnixTimeSeconds();
        }

        return text.Contains('T', StringComparison.Ordinal)
            && DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var at)
            ? at.ToUnixTimeSeconds()
            : null;
    }
}
