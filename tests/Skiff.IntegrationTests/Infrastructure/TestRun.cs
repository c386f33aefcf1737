using System.Security.Cryptography;

namespace Skiff.IntegrationTests.Infrastructure;

/// <summary>
/// This test run as <c>scripts/test.sh</c> knows it: an id that names what the run creates on the
/// host, and whether engines stay up for the next run.
/// </summary>
/// <remarks>
/// # Guarantees
/// <see cref="Id"/> is <c>$SKIFF_TEST_RUN_ID</c> when test.sh set it, else random per test
/// process; either way it is in this process's environment, so every process a test starts
/// carries it and test.sh can find (and stop) what an interrupted run left running.
///
/// # Caveats
/// <see cref="KeepEngines"/> (<c>SKIFF_TEST_KEEP_ENGINES=1</c>) is a developer's opt-in for speed:
/// the second engine, and the namespaces and data roots of the throwaway engines (under fixed
/// names), stay for the next run to reuse.
/// </remarks>
public static class TestRun
{
    public const string IdVariable = "SKIFF_TEST_RUN_ID";

    public const string KeepEnginesVariable = "SKIFF_TEST_KEEP_ENGINES";

    static TestRun()
    {
        var id = Environment.GetEnvironmentVariable(IdVariable);
        Id = string.IsNullOrEmpty(id) ? Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4)) : id;
        Environment.SetEnvironmentVariable(IdVariable, Id);
        KeepEngines = Environment.GetEnvironmentVariable(KeepEnginesVariable) == "1";
    }

    public static string Id { get; }

    public static bool KeepEngines { get; }
}
