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
        command.SetAction((_, _) => Task.FromResult(SkiffCommandLine.NotBuiltYet("skiff status")));
        return command;
    }
}
