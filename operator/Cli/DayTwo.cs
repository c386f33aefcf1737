using System.CommandLine;

namespace Skiff.Cli;

/// <summary>The commands people reach for after the first deploy (issue 20), added to the tree in one place.</summary>
public static class DayTwo
{
    public static void AddTo(RootCommand root)
    {
        root.Subcommands.Add(LogsCommand.Build());
        root.Subcommands.Add(ExecCommand.Build());
        root.Subcommands.Add(RunOnceCommand.Build());
        root.Subcommands.Add(WaitCommand.Build());
        root.Subcommands.Add(RolloutCommands.BuildRollback());
        root.Subcommands.Add(RolloutCommands.BuildRestart());
        root.Subcommands.Add(CompletionCommand.Build());
    }
}
