namespace Skiff.IntegrationTests.Infrastructure;

/// <summary>How a one-off container or an exec ended: its exit code and its output (stdout, then stderr).</summary>
public sealed record ContainerRun(long ExitCode, string Output)
{
    public override string ToString() => $"exit {ExitCode}: {Output}";
}
