using System.CommandLine;
using Skiff.Yaml;

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
        command.SetAction((parse, _) => Task.FromResult(
            Run(parse.GetValue(paths) ?? [], parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error)));
        return command;
    }

    /// <summary>
    /// Prints one line per problem on <paramref name="stdout"/> (<c>FILE:DOC: PATH: message</c>) and a
    /// summary on <paramref name="stderr"/>. Exit 0 when every document is valid, 1 when any has a
    /// problem, 2 when a path cannot be read.
    /// </summary>
    internal static int Run(IReadOnlyList<string> paths, TextWriter stdout, TextWriter stderr)
    {
        var result = ResourceLoader.LoadPaths(paths);
        foreach (var unreadable in result.Unreadable)
        {
            stderr.WriteLine($"skiff validate: cannot read {unreadable.Path}: {unreadable.Message}");
        }

        var problems = 0;
        foreach (var document in result.Documents)
        {
            foreach (var error in document.Errors)
            {
                problems++;
                stdout.WriteLine($"{document.File}:{document.Index}: {error}");
            }
        }

        var valid = result.Documents.Count(d => d.IsValid);
        var skipped = result.Skipped.Select(d => $"{d.File}:{d.Index} ({d.Kind})").ToList();
        var invalid = result.Documents.Count(d => d.Errors.Count > 0);
        stderr.WriteLine((problems == 0 ? $"{valid} valid document(s), no problems" : $"{valid} valid document(s), {problems} problem(s) in {invalid} document(s)")
            + (skipped.Count > 0 ? $"; skipped kinds Skiff does not read: {string.Join(", ", skipped)}" : ""));

        return result.Unreadable.Count > 0 ? ExitCodes.UsageOrIo
            : problems > 0 ? ExitCodes.NotOk
            : ExitCodes.Ok;
    }
}
