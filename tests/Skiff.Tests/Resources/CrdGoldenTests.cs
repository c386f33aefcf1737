using Skiff.Crds;
using Skiff.Yaml;

namespace Skiff.Tests.Resources;

public class CrdGoldenTests
{
    private const string Hint = "crds/ is stale: run `dotnet run --project operator -- crds --output crds` and commit the result";

    [Theory]
    [InlineData(CrdGenerator.AppDeploymentsFile)]
    [InlineData(CrdGenerator.ImageGCPoliciesFile)]
    public void Committed_crd_matches_the_types(string fileName)
    {
        var path = Path.Combine(RepoPaths.Crds, fileName);
        Assert.True(File.Exists(path), $"{path} is missing; {Hint}");
        var (_, crd) = CrdGenerator.All().Single(c => c.FileName == fileName);
        var expected = CrdGenerator.ToYaml(crd);
        var actual = File.ReadAllText(path);
        if (expected != actual)
        {
            Assert.Fail($"{fileName} differs from the generated CRD; {Hint}");
        }
    }

    [Theory]
    [InlineData(Skiff.Api.AppDeployment.KindName)]
    [InlineData(Skiff.Api.ImageGCPolicy.KindName)]
    public void The_schema_documents_are_checked_against_is_the_generated_one(string kind)
    {
        // The loader reads the schema from the CRD embedded at build time; it must be exactly the types' schema.
        var embedded = CommittedSchemas.OpenApiSchema(kind)!;
        var generated = CrdGenerator.GeneratedOpenApiSchema(kind)!;
        Assert.True(System.Text.Json.Nodes.JsonNode.DeepEquals(generated, embedded), $"the embedded {kind} schema differs from the generated one; {Hint}");
        Assert.NotNull(embedded["properties"]?["spec"]);
    }

    [Fact]
    public void Output_is_byte_stable()
    {
        Assert.Equal(CrdGenerator.AllToYaml(), CrdGenerator.AllToYaml());
    }

    [Fact]
    public void Descriptions_come_from_the_doc_comments()
    {
        var yaml = CrdGenerator.AllToYaml();
        Assert.Contains("description: One application stack", yaml);
        Assert.Contains("The image, by tag (registry/repo:tag) or digest", yaml);
    }

    [Fact]
    public async Task Crds_command_writes_one_file_per_crd()
    {
        var dir = Directory.CreateTempSubdirectory("skiff-crds-");
        try
        {
            using var output = new StringWriter();
            var exit = await Skiff.Cli.SkiffCommandLine.Build().Parse(["crds", "--output", dir.FullName])
                .InvokeAsync(new System.CommandLine.InvocationConfiguration { Output = output, Error = output });
            Assert.Equal(0, exit);
            Assert.Equal(
                [CrdGenerator.AppDeploymentsFile, CrdGenerator.ImageGCPoliciesFile],
                dir.GetFiles().Select(f => f.Name).Order(StringComparer.Ordinal));
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task Crds_command_prints_both_crds_on_stdout()
    {
        using var output = new StringWriter();
        var exit = await Skiff.Cli.SkiffCommandLine.Build().Parse(["crds"])
            .InvokeAsync(new System.CommandLine.InvocationConfiguration { Output = output, Error = output });
        Assert.Equal(0, exit);
        Assert.Equal(CrdGenerator.AllToYaml(), output.ToString());
        Assert.Equal(2, output.ToString().Split("kind: CustomResourceDefinition").Length - 1);
    }
}
