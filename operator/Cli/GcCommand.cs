using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Skiff.Docker;
using Skiff.ImageGC;
using Skiff.State;
using Skiff.Yaml;
using Skiff.Reconcile;
using Skiff.Hosting;
using Skiff.Sources.Directory;

namespace Skiff.Cli;

/// <summary><c>skiff gc</c>: one image garbage collection pass on this node.</summary>
/// <remarks>
/// A real pass takes the state folder's lock, the one <c>skiff run</c> holds for its whole life:
/// the two never collect at once, and a running operator already collects by itself. A dry run
/// only reads (like <c>skiff plan</c>), so it works beside a running operator.
/// </remarks>
public static class GcCommand
{
    private const string Command = "skiff gc";

    public static Command Build()
    {
        var node = CommonOptions.Node();
        var dockerHost = CommonOptions.DockerHost();
        var stateDir = CommonOptions.StateDir();
        var policy = new Option<string?>("--policy") { Description = "An ImageGCPolicy YAML file (default: the built-in policy)" };
        var dryRun = new Option<bool>("--dry-run") { Description = "List every image with its decision and reason; remove nothing" };
        var output = CommonOptions.Output(OutputFormat.Table, OutputFormat.Json, OutputFormat.Yaml);
        var command = new Command("gc", "Collect unused images on this node's Docker engine per the image GC policy")
        {
            node, dockerHost, stateDir, policy, dryRun, output,
        };
        command.SetAction((parse, ct) => RunAsync(
            new GcOptions(parse.GetValue(node), parse.GetValue(dockerHost), parse.GetValue(stateDir)!, parse.GetValue(policy), parse.GetValue(dryRun), parse.GetValue(output)),
            parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, CliContext.Logging, ct));
        return command;
    }

    /// <summary>The options of one <c>skiff gc</c>; <see cref="Meter"/> lets tests force disk usage.</summary>
    public sealed record GcOptions(string? Node, string? DockerHost, string StateDir, string? PolicyFile, bool DryRun, OutputFormat Output)
    {
        public IDiskMeter? Meter { get; init; }
    }

    /// <summary>Exit 0 done; 1 an invalid --policy, or GC incomplete (still above the high threshold, or a removal failed); 2 usage or I/O; 3 engine unreachable.</summary>
    public static async Task<int> RunAsync(GcOptions options, TextWriter stdout, TextWriter stderr, ILoggerFactory logging, CancellationToken ct)
    {
        var nodeName = options.Node ?? "";
        GcPolicy chosen;
        if (options.PolicyFile is { } file)
        {
            var loaded = ResourceLoader.LoadPaths([file]);
            foreach (var unreadable in loaded.Unreadable)
            {
                stderr.WriteLine($"--policy: cannot read {unreadable.Path}: {unreadable.Message}");
            }

            var problems = loaded.Documents.SelectMany(d => d.Errors.Select(e => $"{d.File}:{d.Index}: {e}")).ToList();
            foreach (var problem in problems)
            {
                stderr.WriteLine(problem);
            }

            var policies = loaded.ImageGCPolicies.ToList();
            if (loaded.Unreadable.Count > 0)
            {
                return ExitCodes.UsageOrIo;
            }

            // A file that was read but holds no valid policy is invalid input (1), not a usage error.
            if (problems.Count > 0)
            {
                stderr.WriteLine($"--policy: {file} is not a valid ImageGCPolicy; nothing was collected");
                return ExitCodes.NotOk;
            }

            if (policies.Count == 0)
            {
                stderr.WriteLine($"--policy: {file} holds no ImageGCPolicy document (kind: ImageGCPolicy, apiVersion: skiff.dev/v1alpha1)");
                return ExitCodes.NotOk;
            }

            chosen = ImageGcPlanner.ResolvePolicy(policies, nodeName, out var warning);
            if (warning is not null)
            {
                stderr.WriteLine($"--policy: {warning}");
            }

            if (policies.All(p => p.Spec.Nodes is { Count: > 0 } nodes && !nodes.Contains(nodeName)))
            {
                stderr.WriteLine($"--policy: no policy in {file} selects node \"{nodeName}\"; using the built-in policy");
            }
        }
        else
        {
            chosen = GcPolicy.BuiltIn;
        }

        if (options.DryRun)
        {
            chosen = chosen with { DryRun = true };
        }

        var state = new StateStore(options.StateDir);
        IDisposable? stateLock = null;
        if (!chosen.DryRun)
        {
            stateLock = Preflight.LockState(state, $"skiff gc --node {nodeName}", stderr, out var lockExit, Command,
                "A running skiff run collects this node by itself (after rollouts, every interval, under pressure); " +
                "skiff gc --dry-run shows its decisions without the lock");
            if (stateLock is null)
            {
                return lockExit;
            }
        }

        using (stateLock)
        using (var engine = new DockerEngine(options.DockerHost))
        {
            if (!await Preflight.EngineAnswersAsync(engine, logging.CreateLogger("Skiff.Gc"), stderr, ct, Command))
            {
                return ExitCodes.Unreachable;
            }

            try
            {
                var firstSeen = await FirstSeenStore.LoadAsync(state.FirstSeenPath, ct);
                if (firstSeen.LoadWarning is { } loadWarning)
                {
                    stderr.WriteLine($"skiff gc: {loadWarning}");
                }

                // Protection comes from the folder source's records: every stack this state folder serves on the node.
                var deployments = state.ReadAll()
                    .Where(r => options.Node is null || r.Node is null || r.Node == options.Node)
                    .Select(r => DeploymentImagesFrom.Status(r.Namespace, r.Name, r.Spec, r.Status))
                    .ToList();
                var pass = new ImageGcPass(
                    new DockerImageStore(engine, options.Meter ?? new DataRootDiskMeter(engine)),
                    firstSeen,
                    new ImageEngineLock(),
                    () => deployments,
                    logging.CreateLogger<GcExecutor>())
                {
                    ReadOnly = chosen.DryRun,
                };
                var result = await pass.RunAsync(chosen, ct);
                if (!chosen.DryRun && options.Node is { Length: > 0 } reportNode)
                {
                    var report = GcNodeReport.Of(result, reportNode, "skiff gc", DateTimeOffset.UtcNow, result.Run.AboveHighThreshold,
                        $"skiff gc removed {result.Run.Removed.Count} images");
                    await new FolderGcReporter(state).ReportAsync(report, ct);
                }

                Print(result, options.Output, stdout);
                var incomplete = chosen.DryRun
                    ? result.Plan.UnderPressure && !result.Plan.CanReachLowThreshold
                    : result.Run.AboveHighThreshold || result.Run.Failed.Count > 0;
                if (incomplete)
                {
                    stderr.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"skiff gc: incomplete: disk {result.Run.After.Percent:0.0}% used (high threshold {chosen.HighThresholdPercent}%); {ImageGcLoop.CannotFree(result.Plan, result.Run)}"));
                }

                return incomplete ? ExitCodes.NotOk : ExitCodes.Ok;
            }
            catch (EngineUnreachableException e)
            {
                stderr.WriteLine(Preflight.Unreachable(Command, e));
                return ExitCodes.Unreachable;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                stderr.WriteLine($"skiff gc: {e.Message}");
                return ExitCodes.UsageOrIo;
            }
        }
    }

    private static void Print(GcPassResult result, OutputFormat format, TextWriter stdout)
    {
        var (plan, run) = (result.Plan, result.Run);
        if (format is OutputFormat.Json or OutputFormat.Yaml)
        {
            var doc = new JsonObject
            {
                ["policy"] = plan.Policy.Name,
                ["dryRun"] = run.DryRun,
                ["underPressure"] = plan.UnderPressure,
                ["diskBefore"] = Math.Round(run.Before.Percent, 2),
                ["diskAfter"] = Math.Round(run.After.Percent, 2),
                ["bytesReclaimed"] = run.BytesReclaimed,
                ["buildCacheBytes"] = result.BuildCacheBytes,
                ["complete"] = run.Complete && !run.AboveHighThreshold,
                ["seconds"] = Math.Round(result.Elapsed.TotalSeconds, 3),
                ["removed"] = new JsonArray([.. run.Removed.Select(d => (JsonNode)Decision(d, "removed"))]),
                ["skipped"] = new JsonArray([.. run.Skipped.Concat(run.Failed).Select(s => { var o = Decision(s.Decision, "skipped"); o["error"] = s.Reason; return (JsonNode)o; })]),
                ["images"] = new JsonArray([..
                    plan.Delete.Select(d => (JsonNode)Decision(d, "delete"))
                        .Concat(plan.Protected.Select(d => (JsonNode)Decision(d, "protect")))
                        .Concat(plan.Kept.Select(d => (JsonNode)Decision(d, "keep")))]),
            };
            if (format == OutputFormat.Yaml)
            {
                stdout.Write(Crds.YamlWriter.Write([doc]));
                return;
            }

            stdout.WriteLine(doc.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            return;
        }

        stdout.Write(plan.Explain());
        if (run.DryRun)
        {
            return;
        }

        foreach (var s in run.Skipped.Concat(run.Failed))
        {
            stdout.WriteLine($"not removed: {ImageRefs.Display(s.Decision.Image)} ({s.Decision.Image.Id}): {s.Reason}");
        }

        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"Removed {run.Removed.Count} images, reclaimed {GcPlan.FormatBytes(run.BytesReclaimed)}{(result.BuildCacheBytes > 0 ? $" (+{GcPlan.FormatBytes(result.BuildCacheBytes)} build cache)" : "")}; disk {run.Before.Percent:0.0}% -> {run.After.Percent:0.0}% in {result.Elapsed.TotalSeconds:0.00} s"));
    }

    private static JsonObject Decision(GcDecision d, string action) => new()
    {
        ["action"] = action,
        ["id"] = d.Image.Id,
        ["reference"] = ImageRefs.Display(d.Image),
        ["size"] = d.Image.Size,
        ["reason"] = d.Reason.ToString(),
        ["detail"] = d.Detail,
    };
}
