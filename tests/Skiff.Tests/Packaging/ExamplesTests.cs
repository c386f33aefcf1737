using Skiff.Api;
using Skiff.Tests.Resources;
using Skiff.Yaml;

namespace Skiff.Tests.Packaging;

/// <summary>examples/ as <c>skiff validate examples/</c> reads it.</summary>
public sealed class ExamplesTests
{
    private static string Examples => Path.Combine(RepoPaths.Root, "examples");

    [Fact]
    public void Every_example_passes_validation_and_other_kinds_are_skipped()
    {
        var result = ResourceLoader.LoadPaths([Examples]);

        Assert.Empty(result.Unreadable);
        var problems = result.Documents.SelectMany(d => d.Errors.Select(e => $"{d}: {e}")).ToList();
        Assert.True(problems.Count == 0, string.Join("\n", problems));
        // The Flux, Argo CD and namespace documents are read and skipped, not rejected.
        Assert.Equal(
            ["Application", "ConfigMap", "GitRepository", "Kustomization", "Namespace"],
            result.Skipped.Select(d => d.Kind!).Distinct().Order(StringComparer.Ordinal));
        // The CI workflow is not a Kubernetes document: it lives where GitHub reads it, a hidden folder validate does not enter.
        Assert.True(File.Exists(Path.Combine(Examples, "ci", ".github", "workflows", "deploy-api.yaml")));
        Assert.DoesNotContain(result.Documents, d => d.File.Contains(".github", StringComparison.Ordinal));
    }

    [Fact]
    public void The_production_stacks_are_the_original_setup()
    {
        var result = ResourceLoader.LoadPaths([Path.Combine(Examples, "stacks")]);
        var stacks = result.AppDeployments.ToDictionary(a => $"{a.Metadata.NamespaceProperty}/{a.Metadata.Name}");
        Assert.Equal(["bots/bot", "prod/api"], stacks.Keys.Order(StringComparer.Ordinal));

        var api = Defaults.Apply(stacks["prod/api"].Spec);
        Assert.Equal("registry.example.com/acme/api:1.4.2", api.App.Image);
        Assert.Equal("registry-creds", api.App.ImagePullSecret);
        Assert.Equal(["npx", "prisma", "migrate", "deploy"], api.App.Migrate!.Command);
        Assert.NotNull(api.App.HealthCheck);
        var port = Assert.Single(api.App.Ports!);
        Assert.NotNull(port.HostPort);
        Assert.Equal("127.0.0.1", port.HostIP);
        Assert.Equal("postgres:16", api.Database!.Image);
        Assert.Null(api.Cache);

        var bot = Defaults.Apply(stacks["bots/bot"].Spec);
        Assert.Equal("redis:7", bot.Cache!.Image);
        Assert.Null(bot.Database);
        Assert.Contains(bot.App.Env!, e => e.ValueFrom?.SecretKeyRef is { Name: "bot-secrets", Key: "token" });
        Assert.NotEqual(api.Node, bot.Node);
    }
}
