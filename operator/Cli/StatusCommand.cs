using System.CommandLine;
using System.Text.Json;
using Skiff.Api;
using Skiff.Crds;
using Skiff.State;
using Skiff.Hosting;

namespace Skiff.Cli;

/// <summary><c>skiff status [NAME]</c>: the resources' status from the state folder, or one resource in full.</summary>
public static class StatusCommand
{
    public static Command Build()
    {
        var name = new Argument<string?>("NAME") { Description = "Show this AppDeployment in full (spec, status, conditions, history, components, events), like kubectl describe", Arity = ArgumentArity.ZeroOrOne };
        // A ZeroOrOne argument would take "--bogus" as a NAME: an unknown option stays a usage error.
        name.Validators.Add(result =>
        {
            if (result.Tokens is [{ Value: var token }] && token.StartsWith('-'))
            {
                result.AddError($"Unrecognized command or argument '{token}'.");
            }
        });
        var ns = new Option<string>("--namespace", "-n") { Description = "The namespace of NAME, or the only namespace listed (default: default with NAME, every namespace without)", HelpName = "namespace" };
        var stateDir = CommonOptions.StateDir();
        var output = CommonOptions.Output(OutputFormat.Table, OutputFormat.Json, OutputFormat.Yaml, OutputFormat.Wide);
        var watch = new Option<bool>("--watch", "-w") { Description = "Keep watching (beside a running skiff run): the table redrawn on a terminal, one line per change otherwise; Ctrl+C ends it" };
        var command = new Command("status", "Show every resource's status from the state folder: NAMESPACE, NAME, NODE, READY, PHASE, IMAGE, REVISION, AGE (wide: REASON); or one resource with NAME")
        {
            name, ns, stateDir, output, watch,
        };
        command.SetAction((parse, ct) => parse.GetValue(watch)
            ? StatusWatch.RunAsync(new State.StateStore(parse.GetValue(stateDir)!), parse.GetValue(name), parse.GetValue(ns), parse.GetValue(output),
                parse.InvocationConfiguration.Output, !Console.IsOutputRedirected, ct)
            : Task.FromResult(Run(
            new State.StateStore(parse.GetValue(stateDir)!),
            parse.GetValue(name),
            parse.GetValue(ns),
            parse.GetValue(output),
            parse.InvocationConfiguration.Output,
            parse.InvocationConfiguration.Error,
            DateTimeOffset.UtcNow)));
        return command;
    }

    /// <summary>Exit 0 when every resource shown is Ready, 1 when one is not (or NAME is not there), 2 when the state folder does not exist.</summary>
    internal static int Run(StateStore store, string? name, string? ns, OutputFormat format, TextWriter stdout, TextWriter stderr, DateTimeOffset now)
    {
        if (!Directory.Exists(store.Root))
        {
            stderr.WriteLine($"--state-dir: {store.Root} does not exist; has skiff run used it?");
            return ExitCodes.UsageOrIo;
        }

        if (name is null)
        {
            var records = store.ReadAll().Where(r => ns is null || r.Namespace == ns).ToList();
            StatusTable.Write(records, format, stdout, now);
            return records.All(IsReady) ? ExitCodes.Ok : ExitCodes.NotOk;
        }

        ns ??= "default";
        if (store.Read(ns, name) is not { } record)
        {
            var others = store.ReadAll().Where(r => r.Name == name).Select(r => $"{r.Namespace}/{r.Name}").ToList();
            stderr.WriteLine($"skiff status: no AppDeployment {ns}/{name} in the state folder {store.Root}" +
                (others.Count > 0 ? $"; there is {string.Join(", ", others)} (-n NAMESPACE)" : ""));
            return ExitCodes.NotOk;
        }

        var events = store.ReadEvents(ns, name);
        var file = ProxyRoutesFile(store);
        var routes = file?.Listeners.Where(l => l.Stack == $"{ns}/{name}").OrderBy(l => l.Address, StringComparer.Ordinal).ToList();
        var domains = file is null ? null : Proxy.DomainState.Of(file, $"{ns}/{name}", Path.Combine(store.Root, "proxy", "certs"), now);
        switch (format)
        {
            case OutputFormat.Json or OutputFormat.Yaml:
                var node = JsonSerializer.SerializeToNode(record, StateStore.Json.Info<StatusRecord>())!.AsObject();
                node["events"] = JsonSerializer.SerializeToNode(events, StateStore.Json.Info<IReadOnlyList<StoredEvent>>());
                if (routes is not null)
                {
                    node["routes"] = JsonSerializer.SerializeToNode(routes, Proxy.ProxyJsonContext.Default.ListProxyListener);
                }

                if (domains is { Count: > 0 })
                {
                    node["domains"] = JsonSerializer.SerializeToNode(domains, Proxy.ProxyJsonContext.Default.ListDomainState);
                }

                stdout.Write(format == OutputFormat.Json ? node.ToJsonString(StateStore.Json) + "\n" : YamlWriter.Write([node]));
                break;
            default:
                StatusDescription.Write(record, events, stdout, now, routes, domains);
                break;
        }

        return IsReady(record) ? ExitCodes.Ok : ExitCodes.NotOk;
    }

    /// <summary>The node proxy's routes file (the state folder's <c>proxy/routes.json</c>), or null without the proxy.</summary>
    private static Proxy.ProxyRoutes? ProxyRoutesFile(StateStore store)
    {
        try
        {
            return Proxy.ProxyRoutes.Read(Path.Combine(store.Root, "proxy", "routes.json"));
        }
        catch (Exception e) when (e is IOException or Proxy.ProxyRoutesException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static bool IsReady(StatusRecord record) => Reconcile.Conditions.IsTrue(record.Status, ConditionTypes.Ready);
}
