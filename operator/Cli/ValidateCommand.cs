using System.CommandLine;
using System.CommandLine.Parsing;
using Skiff.Observability;
using Skiff.Validation;
using Skiff.Yaml;
using Skiff.Hosting;

namespace Skiff.Cli;

/// <summary><c>skiff validate</c>: check resource files without a cluster.</summary>
public static class ValidateCommand
{
    public static Command Build()
    {
        var paths = new Argument<string[]>("PATH") { Description = "Files or folders of YAML documents", Arity = ArgumentArity.OneOrMore };
        var metrics = BindAddressOption("--metrics-bind-address", ":8080", "/metrics");
        var probes = BindAddressOption("--health-probe-bind-address", ":8081", "/healthz and /readyz");
        var source = new Option<string>("--source")
        {
            Description = "Which source will read the documents: directory (default; referenced Secrets must be defined in the files given) or kubernetes (Secrets live in the cluster)",
            HelpName = "directory|kubernetes",
            DefaultValueFactory = _ => "directory",
        };
        source.AcceptOnlyFromAmong("directory", "kubernetes");
        var command = new Command("validate", "Validate AppDeployment, ImageGCPolicy and Secret documents, each and across them: one line per problem, FILE:DOC: PATH: message")
        {
            paths, metrics, probes, source,
        };
        command.SetAction((parse, _) => Task.FromResult(
            Run(parse.GetValue(paths) ?? [], parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, parse.GetValue(metrics), parse.GetValue(probes), parse.GetValue(source) == "directory")));
        return command;
    }

    /// <summary>
    /// Prints one line per problem on <paramref name="stdout"/> (<c>FILE:DOC: PATH: message</c>) and a
    /// summary on <paramref name="stderr"/>. Exit 0 when every document is valid, 1 when any has a
    /// problem (alone or with the others: Secrets not defined, host ports taken twice or by the operator),
    /// 2 when a path cannot be read.
    /// </summary>
    internal static int Run(IReadOnlyList<string> paths, TextWriter stdout, TextWriter stderr, BindAddress? metrics = null, BindAddress? probes = null, bool secretsInFiles = true)
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

        var across = FolderChecks.Check(result, metrics, probes, secretsInFiles);
        foreach (var problem in across)
        {
            problems++;
            stdout.WriteLine(problem);
        }

        var documentsWithProblems = result.Documents.Where(d => d.Errors.Count > 0).Concat(across.Select(p => p.Document)).Distinct().Count();
        var valid = result.Documents.Count(d => d.IsValid) - across.Select(p => p.Document).Distinct().Count(d => d.IsValid);
        var skipped = result.Skipped.Select(d => $"{d.File}:{d.Index} ({d.Kind})").ToList();
        var summary = problems > 0 ? $"{valid} valid document(s), {problems} problem(s) in {documentsWithProblems} document(s)"
            // A path that could not be read was not checked: "no problems" would say more than is known.
            : result.Unreadable.Count > 0 ? $"{valid} valid document(s) in what could be read; {result.Unreadable.Count} path(s) could not be read"
            : $"{valid} valid document(s), no problems";
        stderr.WriteLine(summary + (skipped.Count > 0 ? $"; skipped kinds Skiff does not read: {string.Join(", ", skipped)}" : ""));

        return result.Unreadable.Count > 0 ? ExitCodes.UsageOrIo
            : problems > 0 ? ExitCodes.NotOk
            : ExitCodes.Ok;
    }

    /// <summary>The operator's listen address, as given to <c>skiff run</c>, so that host ports can be checked against it.</summary>
    private static Option<BindAddress?> BindAddressOption(string name, string fallback, string what) => new(name)
    {
        Description = $"The operator's {what} address on the node, as given to skiff run (default {fallback}; \"0\" skips the check): a hostPort must not take it",
        HelpName = "address",
        DefaultValueFactory = _ => BindAddress.Parse(fallback),
        CustomParser = result => Parse(result, name),
    };

    private static BindAddress? Parse(ArgumentResult result, string name)
    {
        var text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
        try
        {
            return BindAddress.Parse(text);
        }
        catch (FormatException e)
        {
            result.AddError($"{name} {text}: {e.Message}");
            return null;
        }
    }
}
