using System.CommandLine;

namespace Skiff.Cli;

/// <summary><c>skiff status</c>: the resources' status from the state folder.</summary>
public static class StatusCommand
{
    public static Command Build()
    {
        var stateDir = CommonOptions.StateDir();
        var output = CommonOptions.Output();
        var command = new Command("status", "Show every resource's status from the state folder: NAMESPACE, NAME, NODE, READY, PHASE, IMAGE, REVISION, AGE")
        {
            stateDir, output,
        };
        command.SetAction(parse =>
        {
            var store = new State.StateStore(parse.GetValue(stateDir)!);
            if (!Directory.Exists(store.Root))
            {
                Console.Error.WriteLine($"--state-dir: {store.Root} does not exist; has skiff run used it?");
                return ExitCodes.UsageOrIo;
            }

            var records = store.ReadAll();
            StatusTable.Write(records, parse.GetValue(output), Console.Out, DateTimeOffset.UtcNow);
            return records.All(r => Reconcile.Conditions.IsTrue(r.Status, Api.ConditionTypes.Ready)) ? ExitCodes.Ok : ExitCodes.NotOk;
        });
        return command;
    }
}
