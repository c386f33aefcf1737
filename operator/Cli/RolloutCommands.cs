using System.CommandLine;
using System.Globalization;
using Skiff.Hosting;
using Skiff.Reconcile;
using Skiff.State;

namespace Skiff.Cli;

/// <summary>
/// <c>skiff rollback NAME [--to-revision N]</c> and <c>skiff restart NAME</c> for the folder source: the CLI cannot edit the
/// user's YAML and does not own the status records (the running <c>skiff run</c> does), so it leaves a request in the state
/// folder's <c>requests/</c>; the operator takes it at once and rolls it out like any change (a new revision, history,
/// Events). The Kubernetes source takes the same requests as annotations (<see cref="RolloutRequests"/>).
/// </summary>
public static partial class RolloutCommands
{
    public static Command BuildRollback()
    {
        var name = StackContainers.Name("The AppDeployment to roll back");
        var ns = StackContainers.Namespace();
        var to = new Option<long?>("--to-revision")
        {
            Description = "The revision whose image to go back to (default: the last revision before the live one that succeeded with another image)",
            HelpName = "N",
            CustomParser = result =>
            {
                var text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
                if (long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n >= 1)
                {
                    return n;
                }

                result.AddError($"--to-revision {text}: want a revision number, 1 or more (skiff status NAME lists the history)");
                return null;
            },
        };
        var stateDir = CommonOptions.StateDir();
        var command = new Command("rollback", "Roll a stack back to an earlier revision's image (a new revision; the next edit of its document rolls forward again)")
        {
            name, ns, to, stateDir,
        };
        return WithSource(command, stateDir, ns, name, RolloutRequest.Rollback, parse => parse.GetValue(to));
    }

    public static Command BuildRestart()
    {
        var name = StackContainers.Name("The AppDeployment to restart");
        var ns = StackContainers.Namespace();
        var stateDir = CommonOptions.StateDir();
        var command = new Command("restart", "Roll a stack's current spec out again as a new revision: new app container, same image, migration run again")
        {
            name, ns, stateDir,
        };
        return WithSource(command, stateDir, ns, name, RolloutRequest.Restart, _ => null);
    }

    /// <summary>--source directory (a request in the state folder) or kubernetes (the annotation on the AppDeployment), and the action.</summary>
    private static Command WithSource(Command command, Option<string> stateDir, Option<string> ns, Argument<string> name, string action, Func<ParseResult, long?> revision)
    {
        var source = new Option<string>("--source")
        {
            Description = "directory (default: a request in the state folder that skiff run takes) or kubernetes (the annotation on the AppDeployment)",
            HelpName = "directory|kubernetes",
            DefaultValueFactory = _ => "directory",
        };
        source.AcceptOnlyFromAmong("directory", "kubernetes");
        var kubeconfig = new Option<string?>("--kubeconfig") { Description = "kubeconfig file (--source kubernetes; default in-cluster, then $KUBECONFIG, then ~/.kube/config)" };
        var context = new Option<string?>("--context") { Description = "kubeconfig context to use (--source kubernetes)" };
        command.Options.Add(source);
        command.Options.Add(kubeconfig);
        command.Options.Add(context);
        command.SetAction((parse, ct) => parse.GetValue(source) == "kubernetes"
            ? AnnotateAsync(parse.GetValue(kubeconfig), parse.GetValue(context), parse.GetValue(ns)!, parse.GetValue(name)!, action, revision(parse),
                parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, DateTimeOffset.UtcNow, ct)
            : Task.FromResult(Request(new StateStore(parse.GetValue(stateDir)!), parse.GetValue(ns)!, parse.GetValue(name)!, action, revision(parse),
                parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, DateTimeOffset.UtcNow)));
        return command;
    }

    /// <summary>Exit 0 requested; 1 no such stack, or no revision to go back to; 2 the state folder does not exist or cannot be written.</summary>
    public static int Request(StateStore store, string ns, string name, string action, long? toRevision, TextWriter stdout, TextWriter stderr, DateTimeOffset now)
    {
        var command = $"skiff {action}";
        if (!Directory.Exists(store.Root))
        {
            stderr.WriteLine($"--state-dir: {store.Root} does not exist; has skiff run used it?");
            return ExitCodes.UsageOrIo;
        }

        if (store.Read(ns, name) is not { } record)
        {
            var others = store.ReadAll().Where(r => r.Name == name).Select(r => $"{r.Namespace}/{r.Name}").ToList();
            stderr.WriteLine($"{command}: no AppDeployment {ns}/{name} in the state folder {store.Root}" +
                (others.Count > 0 ? $"; there is {string.Join(", ", others)} (-n NAMESPACE)" : ""));
            return ExitCodes.NotOk;
        }

        if (record.Source is not null)
        {
            stderr.WriteLine($"{command}: {ns}/{name} comes from the Kubernetes source; use {command} {name} -n {ns} --source kubernetes, or annotate the AppDeployment: " +
                (action == RolloutRequest.Rollback
                    ? $"kubectl annotate appdeployment {name} -n {ns} {RolloutRequests.RollbackTo}=REVISION --overwrite"
                    : $"kubectl annotate appdeployment {name} -n {ns} {RolloutRequests.RestartedAt}={now:yyyy-MM-ddTHH:mm:ssZ} --overwrite"));
            return ExitCodes.NotOk;
        }

        var request = new RolloutRequest { Action = action, RequestedAt = now };
        string what;
        if (action == RolloutRequest.Rollback)
        {
            if (RolloutRequests.Target(record.Status, toRevision, out var problem) is not { } target)
            {
                stderr.WriteLine($"{command}: {ns}/{name}: {problem}");
                return ExitCodes.NotOk;
            }

            request.Revision = target.Revision;
            request.Image = target.Image;
            what = $"roll back {ns}/{name} to revision {target.Revision.ToString(CultureInfo.InvariantCulture)} ({target.Image})";
        }
        else
        {
            what = $"restart {ns}/{name} ({record.Status?.Image ?? "its image"})";
        }

        try
        {
            store.WriteRequest(ns, name, request);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            stderr.WriteLine($"--state-dir: cannot write to {store.Root}: {e.Message}");
            return ExitCodes.UsageOrIo;
        }

        stdout.WriteLine($"{command}: requested to {what}; a new revision rolls out. skiff wait {name} -n {ns} follows it.");
        if (!OperatorRunning(store))
        {
            stdout.WriteLine($"{command}: no skiff run is using {store.Root} now: the request waits for the next one (skiff run, or skiff run --once).");
        }

        return ExitCodes.Ok;
    }

    /// <summary>Whether a skiff run holds the state folder's lock (a moment's try: free means nobody serves it now).</summary>
    private static bool OperatorRunning(StateStore store)
    {
        var path = Path.Combine(store.Root, "skiff.lock");
        if (!File.Exists(path))
        {
            return false;
        }

        try
        {
            using var probe = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.None);
            return false;
        }
        catch (IOException)
        {
            return true;
        }
        catch (UnauthorizedAccessException)
        {
            return true;
        }
    }
}
