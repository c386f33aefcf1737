using System.CommandLine;
using System.Diagnostics;
using Docker.DotNet;
using Docker.DotNet.Models;
using Skiff.Docker;
using Skiff.Hosting;
using Skiff.Reconcile;

namespace Skiff.Cli;

/// <summary>
/// <c>skiff exec NAME [-c COMPONENT] [-i] [-t] -- CMD…</c>: a command inside a running container of the stack, through the
/// engine's exec API; its exit code is skiff's. In the database, psql and its tools connect as the stack's user to its database.
/// </summary>
public static class ExecCommand
{
    private const string Command = "skiff exec";

    public static Command Build()
    {
        var name = StackContainers.Name("The AppDeployment whose container runs the command");
        var ns = StackContainers.Namespace();
        var component = StackContainers.Component();
        var interactive = new Option<bool>("--stdin", "-i") { Description = "Pass skiff's standard input to the command" };
        var tty = new Option<bool>("--tty", "-t") { Description = "Give the command a terminal (for psql, a shell)" };
        var dockerHost = CommonOptions.DockerHost();
        var stateDir = CommonOptions.StateDir();
        var cmd = new Argument<string[]>("COMMAND") { Description = "The command and its arguments, after --", Arity = ArgumentArity.OneOrMore };
        var command = new Command("exec", "Run a command in a running container of a stack (the live app by default); exits with its exit code")
        {
            name, ns, component, interactive, tty, dockerHost, stateDir, cmd,
        };
        command.SetAction((parse, ct) => RunAsync(
            new ExecOptions(parse.GetValue(name)!, parse.GetValue(ns)!, parse.GetValue(component)!, parse.GetValue(interactive), parse.GetValue(tty),
                parse.GetValue(dockerHost), parse.GetValue(stateDir)!, parse.GetValue(cmd)!),
            parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, ct));
        return command;
    }

    public sealed record ExecOptions(string Name, string Namespace, string Component, bool Interactive, bool Tty, string? DockerHost, string StateDir, string[] Command);

    /// <summary>The command's exit code; before it runs: 1 no such stack or container (or it is not running), 3 engine unreachable.</summary>
    public static async Task<int> RunAsync(ExecOptions o, TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        using var engine = new DockerEngine(o.DockerHost);
        var target = await StackTarget.FindAsync(engine, Command, o.Namespace, o.Name, o.Component, previous: false, o.StateDir, stderr, ct);
        if (target.Container is not { } container)
        {
            return target.Exit;
        }

        if (!container.Running)
        {
            stderr.WriteLine($"{Command}: {container.Name} is {container.State}, not running; skiff logs {o.Name} -c {o.Component} says why (or skiff run-once {o.Name} -- CMD)");
            return ExitCodes.NotOk;
        }

        var env = new List<string>();
        if (container.Component == StackNames.DatabaseComponent)
        {
            // psql, pg_dump and the other tools read PGUSER and PGDATABASE: the stack's user and database, over the local socket.
            var inspect = await engine.Client.Containers.InspectContainerAsync(container.Id, ct);
            foreach (var (from, to) in new[] { ("POSTGRES_USER=", "PGUSER="), ("POSTGRES_DB=", "PGDATABASE=") })
            {
                if (inspect.Config?.Env?.FirstOrDefault(e => e.StartsWith(from, StringComparison.Ordinal)) is { } value)
                {
                    env.Add(to + value[from.Length..]);
                }
            }
        }

        var tty = o.Tty && !Console.IsOutputRedirected;
        if (o.Tty && !tty)
        {
            stderr.WriteLine($"{Command}: --tty: standard output is not a terminal; running without one");
        }

        try
        {
            var exec = await engine.Client.Exec.CreateContainerExecAsync(container.Id, new ContainerExecCreateParameters
            {
                Cmd = o.Command,
                AttachStdin = o.Interactive,
                AttachStdout = true,
                AttachStderr = true,
                TTY = tty,
                Env = env,
            }, ct);
            using var stream = await engine.Client.Exec.StartContainerExecAsync(exec.ID, new ContainerExecStartParameters { TTY = tty }, ct);
            using var raw = tty && o.Interactive && !Console.IsInputRedirected ? RawTerminal.Enter() : null;
            if (tty)
            {
                await ResizeAsync(engine, exec.ID, ct);
            }

            using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
            var input = o.Interactive ? Task.Run(() => PumpStdinAsync(stream, stop.Token), CancellationToken.None) : Task.CompletedTask;
            await new MaskedOutput(stdout, stderr, target.Secrets) { Raw = tty }.CopyAsync(stream, ct);
            await stop.CancelAsync();
            return (int)await DockerEngine.ExecExitCodeAsync(engine.Client, exec.ID, CancellationToken.None);
        }
        catch (DockerApiException e) when (e.StatusCode == System.Net.HttpStatusCode.Conflict)
        {
            stderr.WriteLine($"{Command}: {container.Name} is not running (the engine answered: {e.ResponseBody?.Trim()})");
            return ExitCodes.NotOk;
        }
        catch (Exception e) when (e is HttpRequestException or IOException && !ct.IsCancellationRequested)
        {
            stderr.WriteLine($"{Command}: the engine at {engine.Endpoint} stopped answering: {e.Message}");
            return ExitCodes.Unreachable;
        }
    }

    private static async Task PumpStdinAsync(MultiplexedStream stream, CancellationToken ct)
    {
        var buffer = new byte[4096];
        using var stdin = Console.OpenStandardInput();
        try
        {
            while (!ct.IsCancellationRequested)
            {
                var n = await stdin.ReadAsync(buffer, ct);
                if (n == 0)
                {
                    break;
                }

                await stream.WriteAsync(buffer, 0, n, ct);
            }

            stream.CloseWrite();
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or ObjectDisposedException)
        {
            // The command ended first.
        }
    }

    private static async Task ResizeAsync(DockerEngine engine, string execId, CancellationToken ct)
    {
        try
        {
            await engine.Client.Exec.ResizeExecTtyAsync(
                execId, new ContainerResizeParameters { Width = Console.WindowWidth, Height = Console.WindowHeight }, ct);
        }
        catch (Exception e) when (e is DockerApiException or IOException)
        {
            // A terminal of the default size works too.
        }
    }

    /// <summary>The terminal in raw mode (keys go to the command as typed, Ctrl+C included) until disposed.</summary>
    private sealed class RawTerminal : IDisposable
    {
        private readonly string? saved;

        private RawTerminal(string? saved) => this.saved = saved;

        public static RawTerminal Enter() => new(Stty("-g")?.Trim() is { Length: > 0 } state && Stty("raw -echo") is not null ? state : null);

        public void Dispose()
        {
            if (saved is not null)
            {
                Stty(saved);
            }
        }

        private static string? Stty(string args)
        {
            try
            {
                var info = new ProcessStartInfo("stty") { RedirectStandardOutput = true, UseShellExecute = false };
                foreach (var a in args.Split(' '))
                {
                    info.ArgumentList.Add(a);
                }

                using var p = Process.Start(info)!;
                var output = p.StandardOutput.ReadToEnd();
                p.WaitForExit();
                return p.ExitCode == 0 ? output : null;
            }
            catch (System.ComponentModel.Win32Exception)
            {
                return null;
            }
        }
    }
}
