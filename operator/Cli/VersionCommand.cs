using System.CommandLine;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Skiff.Crds;
using Skiff.Hosting;

namespace Skiff.Cli;

/// <summary><c>skiff version</c>: the binary's version (the one the Helm chart's appVersion names), the .NET runtime and the platform.</summary>
public static class VersionCommand
{
    public static Command Build()
    {
        var output = CommonOptions.Output(OutputFormat.Table, OutputFormat.Json, OutputFormat.Yaml);
        var command = new Command("version", "Print Skiff's version, the .NET runtime and the OS/architecture")
        {
            output,
        };
        command.SetAction(parse =>
        {
            Write(parse.GetValue(output), parse.InvocationConfiguration.Output);
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>The informational version: <c>0.1.0</c>, with <c>+COMMIT</c> when the build knew its commit.</summary>
    public static string Informational { get; } =
        typeof(VersionCommand).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";

    /// <summary>The release version without build metadata: what the chart's version and appVersion say.</summary>
    public static string Version => Informational.Split('+')[0];

    /// <summary>The commit the binary was built from, when the build knew it.</summary>
    public static string? Commit => Informational.Split('+') is [_, var commit, ..] ? commit : null;

    internal static void Write(OutputFormat format, TextWriter output)
    {
        var os = OperatingSystem.IsLinux() ? "linux" : OperatingSystem.IsMacOS() ? "darwin" : OperatingSystem.IsWindows() ? "windows" : RuntimeInformation.OSDescription;
        // Go's names, as docker version and kubectl version print them.
        var arch = RuntimeInformation.OSArchitecture switch
        {
            Architecture.X64 => "amd64",
            Architecture.Arm64 => "arm64",
            Architecture.Arm => "arm",
            Architecture.X86 => "386",
            var other => other.ToString().ToLowerInvariant(),
        };
        var runtime = $".NET {Environment.Version}";
        if (format is OutputFormat.Json or OutputFormat.Yaml)
        {
            var doc = new JsonObject
            {
                ["version"] = Version,
                ["commit"] = Commit,
                ["runtime"] = runtime,
                ["os"] = os,
                ["arch"] = arch,
            };
            output.Write(format == OutputFormat.Json
                ? doc.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n"
                : YamlWriter.Write([doc]));
            return;
        }

        output.WriteLine($"Version:  {Version}");
        if (Commit is { } commit)
        {
            output.WriteLine($"Commit:   {commit}");
        }

        output.WriteLine($"Runtime:  {runtime}");
        output.WriteLine($"Platform: {os}/{arch}");
    }
}
