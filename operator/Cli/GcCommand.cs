using System.CommandLine;

namespace Skiff.Cli;

/// <summary><c>skiff gc</c>: one image garbage collection pass on this node.</summary>
public static class GcCommand
{
    public static Command Build()
    {
        var node = CommonOptions.Node();
        var dockerHost = CommonOptions.DockerHost();
        var stateDir = CommonOptions.StateDir();
        var policy = new Option<string?>("--policy") { Description = "An ImageGCPolicy YAML file (default: the built-in policy)" };
        var dryRun = new Option<bool>("--dry-run") { Description = "List every image with its decision and reason; remove nothing" };
        var output = CommonOptions.Output();
        var command = new Command("gc", "Collect unused images on this node's Docker engine per the image GC policy")
        {
            node, dockerHost, stateDir, policy, dryRun, output,
        };
        command.SetAction((_, _) => Task.FromResult(SkiffCommandLine.NotBuiltYet("skiff gc")));
        return command;
    }
}
