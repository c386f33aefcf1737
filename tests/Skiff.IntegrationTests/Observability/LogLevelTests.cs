using System.Text.Json.Nodes;
using Skiff.IntegrationTests.FolderSource;

namespace Skiff.IntegrationTests.Observability;

/// <summary>Log levels per source from the environment (SKIFF_Serilog__MinimumLevel__…), as operators tune a noisy part.</summary>
public sealed class LogLevelTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(3);

    private static List<(string Level, string Source)> JsonLines(string stderr) =>
        [.. stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => JsonNode.Parse(line)!.AsObject())
            .Select(o => (o["@l"]?.GetValue<string>() ?? "Information", o["SourceContext"]?.GetValue<string>() ?? ""))];

    [Fact]
    public async Task A_source_can_be_given_its_own_level_and_an_explicit_log_level_sets_the_default()
    {
        await using var w = new FolderWorkspace();
        w.Write("bot.yaml", w.Bot());
        var once = w.RunOnceArgs();
        Assert.Equal(["--log-level", "warning"], once[^2..]);
        once = [.. once[..^2], "--log-format", "json"];

        // Everything at Warning except the reconciler, which tells its rollout at Information.
        await using (var run = SkiffProcess.StartWith(
            new Dictionary<string, string>
            {
                ["SKIFF_Serilog__MinimumLevel__Default"] = "Warning",
                ["SKIFF_Serilog__MinimumLevel__Override__Skiff.Reconcile"] = "Information",
            },
            once))
        {
            Assert.Equal(0, await run.WaitAsync(Timeout));
            var lines = JsonLines(run.Stderr);
            Assert.Contains(lines, l => l.Level == "Information" && l.Source.StartsWith("Skiff.Reconcile.", StringComparison.Ordinal));
            Assert.DoesNotContain(lines, l => l.Level is "Information" or "Debug" && !l.Source.StartsWith("Skiff.Reconcile.", StringComparison.Ordinal));
        }

        // Without settings, the same start-up tells what it serves at Information (Skiff.Run); --log-level given
        // on the command line wins over the default from the environment.
        var (exit, _, plain) = await SkiffProcess.RunAsync(Timeout, once);
        Assert.Equal(0, exit);
        Assert.Contains(JsonLines(plain), l => l.Level == "Information" && l.Source == "Skiff.Run");
        await using (var quiet = SkiffProcess.StartWith(
            new Dictionary<string, string> { ["SKIFF_Serilog__MinimumLevel__Default"] = "Debug" },
            [.. once, "--log-level", "warning"]))
        {
            Assert.Equal(0, await quiet.WaitAsync(Timeout));
            Assert.DoesNotContain(JsonLines(quiet.Stderr), l => l.Level is "Information" or "Debug" or "Verbose");
        }
    }

    [Fact]
    public async Task Every_log_line_of_a_run_names_its_node()
    {
        await using var w = new FolderWorkspace();
        w.Write("bot.yaml", w.Bot());
        string[] once = [.. w.RunOnceArgs()[..^2], "--log-format", "json", "--log-level", "debug"];

        var (exit, _, stderr) = await SkiffProcess.RunAsync(Timeout, once);

        Assert.Equal(0, exit);
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(line => JsonNode.Parse(line)!.AsObject()).ToList();
        Assert.True(lines.Count > 10, stderr);
        // From the engine check to the last GC line: reconcile workers, pulls, events and GC alike.
        var without = lines.Where(l => l["Node"]?.GetValue<string>() != "local").Select(l => l.ToJsonString()).ToList();
        Assert.True(without.Count == 0, "lines without Node=local:\n" + string.Join("\n", without));
    }

    [Fact]
    public async Task A_level_that_is_not_one_is_refused_naming_the_setting()
    {
        await using var p = SkiffProcess.StartWith(
            new Dictionary<string, string> { ["SKIFF_Serilog__MinimumLevel__Override__Skiff.ImageGC"] = "loud" },
            "validate", "/nonexistent");
        Assert.Equal(2, await p.WaitAsync(Timeout));
        Assert.Contains("Serilog:MinimumLevel:Override:Skiff.ImageGC = \"loud\"", p.Stderr);
    }
}
