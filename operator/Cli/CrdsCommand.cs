using System.CommandLine;

namespace Skiff.Cli;

/// <summary><c>skiff crds</c>: the CustomResourceDefinitions generated from the C# types.</summary>
public static class CrdsCommand
{
    public static Command Build()
    {
        var output = new Option<string?>("--output") { Description = "Write one file per CRD into this folder instead of stdout" };
        var command = new Command("crds", "Print the CRDs as multi-document YAML, or write skiff.dev_appdeployments.yaml and skiff.dev_imagegcpolicies.yaml into --output")
        {
            output,
        };
        command.SetAction((_, _) => Task.FromResult(SkiffCommandLine.NotBuiltYet("skiff crds")));
        return command;
    }
}
