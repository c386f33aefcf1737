using System.CommandLine;

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
        var command = new Command("plan", "Print the actions the planner would take for each stack on this node; changes nothing")
        {
            path, node, dockerHost, stateDir,
        };
        command.SetAction((_, _) => Task.FromResult(SkiffCommandLine.NotBuiltYet("skiff plan")));
        return command;
    }
}
