using System.CommandLine;
using System.Globalization;
using Skiff.Api;
using Skiff.Hosting;
using Skiff.Reconcile;
using Skiff.State;
using Skiff.Yaml;

namespace Skiff.Cli;

/// <summary>Where a stack stands for <c>skiff wait</c>.</summary>
public enum WaitState
{
    /// <summary>Not there yet: keep waiting.</summary>
    Waiting,

    /// <summary>Ready for the spec the source has now (exit 0).</summary>
    Ready,

    /// <summary>Stalled for the spec the source has now: nothing moves until someone changes something (exit 1).</summary>
    Failed,
}

/// <summary>What <c>skiff wait</c> and <c>skiff status --watch</c> make of one status record.</summary>
/// <param name="State">Waiting, Ready or Failed.</param>
/// <param name="Line">One line: phase, revision, image, the reason and message.</param>
public sealed record WaitVerdict(WaitState State, string Line);

/// <summary>
/// <c>skiff wait NAME [--for Ready] [--timeout 5m]</c>: waits until the stack is Ready for its current spec (exit 0), or has
/// failed (Stalled, exit 1), reading the status a running <c>skiff run</c> publishes in the state folder: it takes no lock, so
/// it works beside the operator. Progress goes to stderr: one line rewritten in place on a terminal, one line per change
/// otherwise (CI logs).
/// </summary>
public static class WaitCommand
{
    private const string Command = "skiff wait";

    public static Command Build()
    {
        var name = StackContainers.Name("The AppDeployment to wait for");
        var ns = StackContainers.Namespace();
        var forCondition = new Option<string>("--for")
        {
            Description = "The condition to wait for: Ready (the stack serves its current spec)",
            HelpName = "Ready",
            DefaultValueFactory = _ => ConditionTypes.Ready,
        };
        forCondition.Validators.Add(result =>
        {
            if (result.Tokens is [{ Value: var text }] && !IsReady(text))
            {
                result.AddError($"--for {text}: unknown condition; use Ready (or condition=Ready)");
            }
        });
        var timeout = new Option<TimeSpan>("--timeout")
        {
            Description = "Give up after this long (exit 1): 90s, 5m, 1h",
            HelpName = "duration",
            DefaultValueFactory = _ => TimeSpan.FromMinutes(5),
            CustomParser = result =>
            {
                var text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
                if (Durations.TryParse(text, out var d) && d > TimeSpan.Zero)
                {
                    return d;
                }

                result.AddError($"--timeout {text}: want a duration like 90s, 5m or 1h");
                return TimeSpan.Zero;
            },
        };
        var image = new Option<string?>("--image")
        {
            Description = "Also wait until the stack runs this image (the one CI just pushed); a failed rollout of it exits 1",
            HelpName = "reference",
        };
        var stateDir = CommonOptions.StateDir();
        var command = new Command("wait", "Wait until a stack is Ready for its current spec (exit 0) or its rollout failed (exit 1), beside a running skiff run")
        {
            name, ns, forCondition, timeout, image, stateDir,
        };
        command.SetAction((parse, ct) => RunAsync(
            new StateStore(parse.GetValue(stateDir)!), parse.GetValue(ns)!, parse.GetValue(name)!, parse.GetValue(timeout), parse.GetValue(image),
            parse.InvocationConfiguration.Error, !Console.IsErrorRedirected, ct));
        return command;
    }

    /// <summary>Exit 0 Ready; 1 failed, or not Ready within the timeout (a state folder that never appears included).</summary>
    /// <param name="store">The state folder.</param>
    /// <param name="ns">The namespace.</param>
    /// <param name="name">The stack.</param>
    /// <param name="timeout">How long to wait.</param>
    /// <param name="image">The image the stack must run, if any.</param>
    /// <param name="stderr">Where progress goes.</param>
    /// <param name="terminal">Set when stderr is a terminal: progress is one line rewritten in place.</param>
    /// <param name="ct">Stops waiting (exit 1).</param>
    public static async Task<int> RunAsync(StateStore store, string ns, string name, TimeSpan timeout, string? image, TextWriter stderr, bool terminal, CancellationToken ct)
    {
        var started = DateTimeOffset.UtcNow;
        string? last = null;
        var width = 0;
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(timeout);
        while (true)
        {
            var record = store.Read(ns, name);
            // A CI job may start waiting before the operator has created its state folder: that is waiting too, and says where it looks.
            var verdict = !Directory.Exists(store.Root)
                ? new WaitVerdict(WaitState.Waiting, $"no state folder {store.Root} yet (is skiff run using it? --state-dir)")
                : store.ReadRequest(ns, name) is { } request
                ? new WaitVerdict(WaitState.Waiting, $"waiting for skiff run to take the {request.Action} request")
                : Judge(record, record?.File is { } file ? CurrentDocumentHash(file, ns, name) : null, image);
            var elapsed = Durations.Format(DateTimeOffset.UtcNow - started);
            var line = $"{ns}/{name}: {verdict.Line}";
            if (terminal)
            {
                var text = $"{line} ({elapsed})";
                stderr.Write("\r" + text.PadRight(width));
                width = text.Length;
            }
            else if (line != last)
            {
                stderr.WriteLine($"{DateTimeOffset.UtcNow.ToString("HH:mm:ss", CultureInfo.InvariantCulture)} {line}");
            }

            last = line;
            if (verdict.State != WaitState.Waiting)
            {
                if (terminal)
                {
                    stderr.WriteLine();
                }

                return verdict.State == WaitState.Ready ? ExitCodes.Ok : ExitCodes.NotOk;
            }

            try
            {
                await Task.Delay(TimeSpan.FromMilliseconds(250), deadline.Token);
            }
            catch (OperationCanceledException)
            {
                if (terminal)
                {
                    stderr.WriteLine();
                }

                stderr.WriteLine(ct.IsCancellationRequested
                    ? $"{Command}: stopped before {ns}/{name} was Ready"
                    : $"{Command}: {ns}/{name} was not Ready within {Durations.Format(timeout)}; skiff status {name} -n {ns} shows why");
                return ExitCodes.NotOk;
            }
        }
    }

    /// <summary>
    /// Where a record stands. <paramref name="documentHash"/> is the hash of the document as the folder has it now (null when
    /// unknown): a record that has not caught up with it is still waiting, so a wait right after an edit does not answer
    /// for the spec before it.
    /// </summary>
    public static WaitVerdict Judge(StatusRecord? record, string? documentHash, string? image)
    {
        if (record is null)
        {
            return new WaitVerdict(WaitState.Waiting, "not in the state folder yet (is skiff run serving it?)");
        }

        var status = record.Status;
        var ready = Conditions.Get(status, ConditionTypes.Ready);
        var stalled = Conditions.Get(status, ConditionTypes.Stalled);
        var shown = Conditions.IsTrue(status, ConditionTypes.Stalled) ? stalled
            : Conditions.IsTrue(status, ConditionTypes.Reconciling) ? Conditions.Get(status, ConditionTypes.Reconciling)
            : ready;
        var revision = status?.Revision is { } r ? $"revision {r.ToString(CultureInfo.InvariantCulture)}" : "no revision";
        var line = $"{status?.Phase ?? Phases.Pending}, {revision}" + (status?.Image is { } img ? $" ({img})" : "") +
            (shown is { Reason: { Length: > 0 } reason } ? $": {reason}" + (shown.Message is { Length: > 0 } m ? $": {m}" : "") : "");
        if (documentHash is not null && record.DocumentHash is not null && documentHash != record.DocumentHash)
        {
            return new WaitVerdict(WaitState.Waiting, "waiting for skiff run to read the changed document; now " + line);
        }

        // Conditions written for an older generation say nothing about the current spec yet.
        var current = (Condition? c) => c?.ObservedGeneration is not { } seen || seen >= record.Generation;
        if (image is not null)
        {
            var tried = status?.History?.Where(h => h.Image == image).MaxBy(h => h.Revision);
            if (Conditions.IsTrue(status, ConditionTypes.Stalled) && current(stalled) && tried?.Outcome is Outcomes.Failed or Outcomes.RolledBack)
            {
                return new WaitVerdict(WaitState.Failed, line);
            }

            if (status?.Image != image)
            {
                return new WaitVerdict(WaitState.Waiting, $"waiting for {image}; now " + line);
            }
        }

        if (Conditions.IsTrue(status, ConditionTypes.Stalled) && current(stalled))
        {
            return new WaitVerdict(WaitState.Failed, line);
        }

        if (ready?.Status == "True" && current(ready) && !Conditions.IsTrue(status, ConditionTypes.Reconciling))
        {
            return new WaitVerdict(WaitState.Ready, line);
        }

        return new WaitVerdict(WaitState.Waiting, line);
    }

    /// <summary>The hash the folder source gives the document now, or null when it cannot be read (then the record decides).</summary>
    private static string? CurrentDocumentHash(string file, string ns, string name)
    {
        try
        {
            var loaded = ResourceLoader.LoadPaths([file]);
            return loaded.AppDeployments
                .FirstOrDefault(a => a.Metadata.Name == name && (a.Metadata.NamespaceProperty ?? "default") == ns)?.Spec is { } spec
                ? SpecHash.Compute(spec)
                : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static bool IsReady(string text) =>
        string.Equals(text, ConditionTypes.Ready, StringComparison.OrdinalIgnoreCase)
        || string.Equals(text, "condition=Ready", StringComparison.OrdinalIgnoreCase);
}
