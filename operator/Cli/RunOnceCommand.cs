using System.CommandLine;
using Docker.DotNet;
using Docker.DotNet.Models;
using Skiff.Docker;
using Skiff.Hosting;
using Skiff.Reconcile;

namespace Skiff.Cli;

/// <summary>
/// <c>skiff run-once NAME -- CMD…</c>: a one-off container of the live app's image with the app's environment (secrets,
/// DATABASE_URL, REDIS_URL) on the stack's network; CMD replaces the image's entrypoint, as <c>spec.app.migrate.command</c>
/// does. The container is removed afterwards and its exit code is skiff's.
/// </summary>
/// <remarks>
/// It carries the label <c>dev.skiff.run-once</c> and not the stack's labels, so the operator never mistakes it for a
/// container of the stack (to replace or remove) while it runs.
/// </remarks>
public static class RunOnceCommand
{
    public const string Label = "dev.skiff.run-once";
    private const string Command = "skiff run-once";

    public static Command Build()
    {
        var name = StackContainers.Name("The AppDeployment whose live image, environment and network the command gets");
        var ns = StackContainers.Namespace();
        var dockerHost = CommonOptions.DockerHost();
        var stateDir = CommonOptions.StateDir();
        var cmd = new Argument<string[]>("COMMAND") { Description = "The command and its arguments, after --", Arity = ArgumentArity.OneOrMore };
        var command = new Command("run-once", "Run a one-off command in a new container of the stack's live app image, environment and network; removed after, exits with the command's exit code")
        {
            name, ns, dockerHost, stateDir, cmd,
        };
        command.SetAction((parse, ct) => RunAsync(
            parse.GetValue(name)!, parse.GetValue(ns)!, parse.GetValue(dockerHost), parse.GetValue(stateDir)!, parse.GetValue(cmd)!,
            parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, ct));
        return command;
    }

    /// <summary>The command's exit code; before it runs: 1 no such stack or no live app, 2 the image is gone, 3 engine unreachable.</summary>
    public static async Task<int> RunAsync(string name, string ns, string? dockerHost, string stateDir, string[] cmd, TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        using var engine = new DockerEngine(dockerHost);
        var target = await StackTarget.FindAsync(engine, Command, ns, name, "app", previous: false, stateDir, stderr, ct);
        if (target.Container is not { } app)
        {
            return target.Exit;
        }

        string? id = null;
        try
        {
            var live = await engine.Client.Containers.InspectContainerAsync(app.Id, ct);
            var network = new StackNames(ns, name).Network;
            var created = await engine.Client.Containers.CreateContainerAsync(new CreateContainerParameters
            {
                Image = live.Image,
                Entrypoint = cmd,
                Cmd = [],
                Env = live.Config?.Env ?? [],
                WorkingDir = live.Config?.WorkingDir ?? "",
                User = live.Config?.User ?? "",
                Labels = new Dictionary<string, string> { [Label] = $"{ns}/{name}" },
                HostConfig = new HostConfig
                {
                    Init = true,
                    SecurityOpt = ["no-new-privileges"],
                    NetworkMode = network,
                    Memory = live.HostConfig?.Memory ?? 0,
                    NanoCPUs = live.HostConfig?.NanoCPUs ?? 0,
                    LogConfig = new LogConfig { Type = "json-file" },
                },
            }, ct);
            id = created.ID;
            await engine.Client.Containers.StartContainerAsync(id, new ContainerStartParameters(), ct);
            using (var stream = await engine.Client.Containers.GetContainerLogsAsync(
                id, new ContainerLogsParameters { ShowStdout = true, ShowStderr = true, Follow = true }, ct))
            {
                await new MaskedOutput(stdout, stderr, target.Secrets).CopyAsync(stream, ct);
            }

            var wait = await engine.Client.Containers.WaitContainerAsync(id, ct);
            return (int)wait.StatusCode;
        }
        catch (DockerImageNotFoundException)
        {
            stderr.WriteLine($"{Command}: the live image of {ns}/{name} ({app.Image}) is no longer on the engine; skiff status {name} -n {ns}");
            return ExitCodes.UsageOrIo;
        }
        catch (DockerApiException e) when (e.StatusCode is System.Net.HttpStatusCode.BadRequest or System.Net.HttpStatusCode.NotFound)
        {
            // The command does not exist in the image, and the like: the engine says which.
            stderr.WriteLine($"{Command}: the engine could not run {string.Join(' ', cmd)}: {e.ResponseBody?.Trim()}");
            return ExitCodes.NotOk;
        }
        catch (Exception e) when (e is HttpRequestException or IOException && !ct.IsCancellationRequested)
        {
            stderr.WriteLine($"{Command}: the engine at {engine.Endpoint} stopped answering: {e.Message}");
            return ExitCodes.Unreachable;
        }
        finally
        {
            if (id is not null)
            {
                try
                {
                    // With its anonymous volumes (an image's VOLUME lines), as the operator removes its own containers:
                    // each run would leave one behind otherwise. Named volumes, the database's included, are never removed.
                    await engine.Client.Containers.RemoveContainerAsync(id, new ContainerRemoveParameters { Force = true, RemoveVolumes = true }, CancellationToken.None);
                }
                catch (Exception e) when (e is DockerApiException or HttpRequestException or IOException)
                {
                    stderr.WriteLine($"{Command}: could not remove the one-off container {id[..12]}: {e.Message}");
                }
            }
        }
    }
}
