using System.Diagnostics;
using Skiff.IntegrationTests.FolderSource;

namespace Skiff.IntegrationTests.DayTwo;

/// <summary>The bash completion script as bash runs it, with the real skiff answering.</summary>
public sealed class CompletionTests
{
    [Fact]
    public async Task Bash_completes_commands_and_components_through_skiff()
    {
        var script = (await SkiffProcess.RunAsync(TimeSpan.FromSeconds(30), "completion", "bash")).Stdout;

        Assert.Equal(["rollback"], await CompleteAsync(script, "skiff roll", ["skiff", "roll"]));
        Assert.Equal(["database"], await CompleteAsync(script, "skiff logs api -c da", ["skiff", "logs", "api", "-c", "da"]));
    }

    private static async Task<string[]> CompleteAsync(string script, string line, string[] words)
    {
        var file = Path.Combine(Path.GetTempPath(), $"skiff-completion-{Guid.NewGuid():N}.bash");
        await File.WriteAllTextAsync(file, script);
        try
        {
            var info = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            info.ArgumentList.Add("-c");
            info.ArgumentList.Add(
                $"skiff() {{ {SkiffProcess.ShellCommand} \"$@\"; }}; source '{file}'; " +
                $"COMP_LINE='{line}'; COMP_POINT={line.Length}; COMP_WORDS=({string.Join(' ', words.Select(w => $"'{w}'"))}); COMP_CWORD={words.Length - 1}; " +
                "_skiff_complete; printf '%s\\n' \"${COMPREPLY[@]}\"");
            using var bash = Process.Start(info)!;
            var stdout = await bash.StandardOutput.ReadToEndAsync();
            await bash.WaitForExitAsync();
            Assert.True(bash.ExitCode == 0, await bash.StandardError.ReadToEndAsync());
            return stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        }
        finally
        {
            File.Delete(file);
        }
    }
}
