using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Skiff.Cli;
using Skiff.Tests.Resources;
using Skiff.Hosting;

namespace Skiff.Tests.Cli;

public sealed class CrdsAndVersionTests
{
    [Theory]
    [InlineData("yaml")]
    [InlineData("json")]
    [InlineData("YML")]
    public void Crds_output_that_looks_like_a_format_is_refused_and_creates_no_folder(string format)
    {
        // The word as typed, relative to the working directory (the test's bin folder, which has no such folder).
        Assert.False(Directory.Exists(format));
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        Assert.Equal(ExitCodes.UsageOrIo, CrdsCommand.Run(format, stdout, stderr));
        Assert.False(Directory.Exists(format));
        Assert.Contains("without --output the CRDs go to stdout as YAML", stderr.ToString(), StringComparison.Ordinal);
        Assert.Equal("", stdout.ToString());
    }

    [Fact]
    public void Crds_output_to_an_existing_folder_named_yaml_writes_there()
    {
        var target = Path.Combine(Path.GetTempPath(), "skiff-crds-" + Guid.NewGuid().ToString("N"), "yaml");
        Directory.CreateDirectory(target);
        try
        {
            Assert.Equal(ExitCodes.Ok, CrdsCommand.Run(target, new StringWriter(), new StringWriter()));
            Assert.True(File.Exists(Path.Combine(target, "skiff.dev_appdeployments.yaml")));
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(target)!, recursive: true);
        }
    }

    [Fact]
    public void The_binary_and_the_chart_have_one_version()
    {
        var chart = File.ReadAllText(Path.Combine(RepoPaths.Root, "charts", "skiff", "Chart.yaml"));
        string Field(string name) => Regex.Match(chart, $@"^{name}:\s*""?([^""\s]+)""?\s*$", RegexOptions.Multiline).Groups[1].Value;

        Assert.Matches(@"^\d+\.\d+\.\d+", VersionCommand.Version);
        Assert.Equal(VersionCommand.Version, Field("version"));
        Assert.Equal(VersionCommand.Version, Field("appVersion"));
    }

    [Fact]
    public void Version_as_json_names_version_runtime_and_platform()
    {
        using var stdout = new StringWriter();
        VersionCommand.Write(OutputFormat.Json, stdout);

        var json = JsonNode.Parse(stdout.ToString())!;
        Assert.Equal(VersionCommand.Version, (string?)json["version"]);
        Assert.StartsWith(".NET ", (string?)json["runtime"], StringComparison.Ordinal);
        Assert.Equal("linux", (string?)json["os"]);
        Assert.Contains((string?)json["arch"], new[] { "amd64", "arm64" });
    }
}
