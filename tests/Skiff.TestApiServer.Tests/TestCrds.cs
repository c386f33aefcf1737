namespace Skiff.TestApiServer.Tests;

/// <summary>
/// Finds the CRD files tests load: the repository's generated crds/ when they exist (found by walking up from the test
/// binaries to Operator.sln), else the fixtures shipped with these tests.
/// </summary>
public static class TestCrds
{
    public static string AppDeployments => Find("skiff.dev_appdeployments.yaml", "appdeployments.yaml");

    public static string ImageGCPolicies => Find("skiff.dev_imagegcpolicies.yaml", "imagegcpolicies.yaml");

    public static IList<string> All => [AppDeployments, ImageGCPolicies];

    public static TestApiServerOptions Options() => new() { CrdPaths = All };

    /// <summary>A fixture CRD shipped with these tests, for tests of schema features the generated CRDs may not use.</summary>
    public static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", name);

    private static string Find(string generated, string fixture)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Operator.sln")))
            {
                var candidate = Path.Combine(dir.FullName, "crds", generated);
                if (File.Exists(candidate))
                {
                    return candidate;
                }

                break;
            }
        }

        return Path.Combine(AppContext.BaseDirectory, "Fixtures", fixture);
    }
}
