using System.CommandLine;
using Skiff.Docker;
using Skiff.Reconcile;
using Skiff.Sources;
using Skiff.Sources.Directory;
using Skiff.State;
using Skiff.Validation;
using Skiff.Hosting;

namespace Skiff.Cli;

/// <summary><c>skiff plan</c>: print the planner's actions; change nothing.</summary>
public static class PlanCommand
{
    public static Command Build()
    {
        var path = new Option<string>("--path") { Description = "Folder of resources", Required = true };
        var node = CommonOptions.Node();
        var dockerHost = CommonOptions.DockerHost();
        var stateDir = CommonOptions.StateDir();
        var sourceName = new Option<string?>("--source-name")
        {
            Description = "The folder source's name, when skiff run is given one (--source-name): plan as that source",
        };
        var ageKeyFile = CommonOptions.AgeKeyFile();
        var command = new Command("plan", "Print the actions the planner would take for each stack on this node; changes nothing")
        {
            path, node, dockerHost, stateDir, sourceName, ageKeyFile,
        };
        command.SetAction(async (parse, ct) =>
        {
            var nodeName = parse.GetValue(node);
            if (string.IsNullOrEmpty(nodeName))
            {
                parse.InvocationConfiguration.Error.WriteLine("--node: required (or set NODE_NAME)");
                return ExitCodes.UsageOrIo;
            }

            var folder = parse.GetValue(path)!;
            if (!Directory.Exists(folder))
            {
                parse.InvocationConfiguration.Error.WriteLine($"--path: folder {folder} does not exist");
                return ExitCodes.UsageOrIo;
            }

            return await PlanAsync(folder, nodeName, parse.GetValue(dockerHost), parse.GetValue(stateDir)!, parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, ct,
                parse.GetValue(sourceName), CommonOptions.Age(parse, ageKeyFile));
        });
        return command;
    }

    /// <summary>Exit 0 planned; 1 an invalid document, or no document names <paramref name="node"/>; 3 engine unreachable.</summary>
    public static async Task<int> PlanAsync(
        string folder, string node, string? dockerHost, string stateDir, TextWriter output, TextWriter error, CancellationToken ct, string? sourceName = null, AgeCli? age = null)
    {
        var source = new DirectorySource(folder, Microsoft.Extensions.Logging.Abstractions.NullLogger<DirectorySource>.Instance, age: age);
        source.Rescan();
        // Read-only: the state folder is only read (no lock: planning is safe beside a running skiff).
        var state = new StateStore(stateDir);
        using var engine = new DockerEngine(dockerHost);
        var invalid = false;
        try
        {
            // As the operator plans: with the node proxy when one runs on the engine (start-first rollouts, route switches).
            var routes = await PlannedRoutes.FindAsync(engine, stateDir, node, ct);
            var stacks = new StackReconciler(
                engine,
                new FolderSecretSource(state, source.GetSecret),
                new StackContext(node, FolderIdentity.SourceId(source.Path, sourceName), source.Path) { Proxy = routes is not null },
                new NullEvents(),
                Microsoft.Extensions.Logging.Abstractions.NullLogger<StackReconciler>.Instance,
                services: routes is null ? null : new StackServices { Routes = routes });
            foreach (var entry in source.Entries())
            {
                if (entry.Resource is null)
                {
                    invalid = true;
                    output.WriteLine($"{entry.Key}: invalid, nothing would change:");
                    foreach (var line in entry.Errors)
                    {
                        output.WriteLine($"  {line}");
                    }

                    continue;
                }

                if (entry.Resource.Spec.Node != node)
                {
                    continue;
                }

                if (ResourceValidator.BuildNeedsGitSource(entry.Resource.Spec) is { } needsGit)
                {
                    // skiff plan reads a folder, which does not build (skiff run --source git does): as `run --path` would say.
                    invalid = true;
                    output.WriteLine($"{entry.Key}: invalid, nothing would change:");
                    output.WriteLine($"  {entry.Location}: {needsGit}");
                    continue;
                }

                entry.Resource.Status = state.Read(entry.Key.Namespace ?? "default", entry.Key.Name)?.Status;
                var (plan, problem) = await stacks.PlanAsync(entry.Resource, ct);
                output.WriteLine($"{entry.Key}:");
                if (problem is not null)
                {
                    output.WriteLine($"  blocked: {problem}");
                    continue;
                }

                if (plan!.IsEmpty)
                {
                    output.WriteLine("  up to date");
                }

                var i = 1;
                foreach (var action in plan.Actions)
                {
                    output.WriteLine($"  {i++}. {action.Describe()}");
                }
            }

            var known = source.Entries().Select(e => e.Key.ToString()).ToHashSet(StringComparer.Ordinal);
            foreach (var stack in (await stacks.ListStacksAsync(ct)).Where(s => !known.Contains(s)).Order(StringComparer.Ordinal))
            {
                output.WriteLine($"{stack}:");
                output.WriteLine("  1. remove its containers and network (its document is gone; volumes and credentials are kept)");
            }

            foreach (var problem in source.Problems)
            {
                invalid = true;
                output.WriteLine(problem);
            }
        }
        catch (EngineUnreachableException e)
        {
            error.WriteLine(Preflight.Unreachable("skiff plan", e));
            return ExitCodes.Unreachable;
        }

        // A mistyped --node (vps1 for vps-1) would otherwise plan nothing and look like "all up to date".
        var entries = source.Entries();
        if (!entries.Any(e => e.Resource?.Spec.Node == node))
        {
            var named = entries.Select(e => e.Resource?.Spec.Node).OfType<string>().Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
            var unreadable = entries.Count(e => e.Resource is null);
            error.WriteLine($"skiff plan: no document in {source.Path} names node \"{node}\" (spec.node); " +
                (named.Count > 0 ? $"the nodes named are: {string.Join(", ", named)}" : "no valid document names any node") +
                (unreadable > 0 ? $" ({unreadable} invalid document(s) could not be read)" : ""));
            return ExitCodes.NotOk;
        }

        return invalid ? ExitCodes.NotOk : ExitCodes.Ok;
    }

    private sealed class NullEvents : IEventSink
    {
        public void Record(Api.AppDeployment resource, EventKind kind, string reason, string message)
        {
        }
    }
}
