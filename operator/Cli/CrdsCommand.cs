using System.CommandLine;
using Skiff.Crds;
using Skiff.Hosting;

namespace Skiff.Cli;

/// <summary><c>skiff crds</c>: the CustomResourceDefinitions generated from the C# types.</summary>
public static class CrdsCommand
{
    public static Command Build()
    {
        var output = new Option<string?>("--output") { Description = "Write one file per CRD into this folder instead of stdout", HelpName = "folder" };
        var command = new Command("crds", "Print the CRDs as multi-document YAML, or write skiff.dev_appdeployments.yaml and skiff.dev_imagegcpolicies.yaml into --output")
        {
            output,
        };
        command.SetAction((parse, _) => Task.FromResult(Run(parse.GetValue(output), parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error)));
        return command;
    }

    internal static int Run(string? outputDir, TextWriter stdout, TextWriter stderr)
    {
        if (outputDir is null)
        {
            stdout.Write(CrdGenerator.AllToYaml());
            return ExitCodes.Ok;
        }

        // kubectl habits make "--output yaml" look like a format: a folder named yaml created in passing would
        // hide the mistake. An existing folder of that name is still written to.
        if (!Directory.Exists(outputDir) && outputDir.ToLowerInvariant() is "yaml" or "yml" or "json")
        {
            stderr.WriteLine($"skiff crds: --output takes a folder to write one file per CRD into, and there is no folder named {outputDir}; " +
                "without --output the CRDs go to stdout as YAML (skiff crds > crds.yaml). To create a folder of that name, pass it as ./" + outputDir);
            return ExitCodes.UsageOrIo;
        }

        try
        {
            Directory.CreateDirectory(outputDir);
            foreach (var (fileName, crd) in CrdGenerator.All())
            {
                var path = Path.Combine(outputDir, fileName);
                File.WriteAllText(path, CrdGenerator.ToYaml(crd));
                stdout.WriteLine(path);
            }

            return ExitCodes.Ok;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            stderr.WriteLine($"skiff crds: cannot write to {outputDir}: {e.Message}");
            return ExitCodes.UsageOrIo;
        }
    }
}
