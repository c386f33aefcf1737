using System.CommandLine;

namespace Skiff.Cli;

/// <summary><c>skiff validate</c>: check resource files without a cluster.</summary>
public static class ValidateCommand
{
    public static Command Build()
    {
        var paths = new Argument<string[]>("PATH") { Description = "Files or folders of YAML documents", Arity = ArgumentArity.OneOrMore };
        var command = new Command("validate", "Validate AppDeployment and ImageGCPolicy documents: one line per problem, FILE:DOC: PATH: message")
        {
            paths,
        };
        command.SetAction((_, _) => Task.FromResult(SkiffCommandLine.NotBuiltYet("skiff validate")));
        return command;
    }
}
