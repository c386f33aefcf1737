using System.CommandLine;

namespace Skiff.Cli;

/// <summary>Builds the <c>skiff</c> command tree (DESIGN §5).</summary>
public static class SkiffCommandLine
{
    public static RootCommand Build()
    {
        var root = new RootCommand("Skiff deploys small application stacks (app + PostgreSQL + Redis) onto single-node Docker hosts and keeps those hosts healthy.");
        root.Options.Add(CommonOptions.LogFormat);
        root.Options.Add(CommonOptions.LogLevel);
        root.Subcommands.Add(RunCommand.Build());
        root.Subcommands.Add(PlanCommand.Build());
        root.Subcommands.Add(StatusCommand.Build());
        root.Subcommands.Add(ValidateCommand.Build());
        root.Subcommands.Add(GcCommand.Build());
        root.Subcommands.Add(CrdsCommand.Build());
        return root;
    }

    /// <summary>What a command whose issue has not landed yet answers.</summary>
    internal static int NotBuiltYet(string what)
    {
        Console.Error.WriteLine($"skiff: {what} is not built yet in this version.");
        return ExitCodes.UsageOrIo;
    }
}
