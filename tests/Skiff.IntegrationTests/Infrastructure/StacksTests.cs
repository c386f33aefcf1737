using System.Text.Json;
using System.Text.Json.Serialization;
using k8s.Models;
using Skiff.Api;
using Skiff.Yaml;

namespace Skiff.IntegrationTests.Infrastructure;

/// <summary>The seed stacks' one YAML form reads back, through Skiff's own loader, as the objects the Docker target drives.</summary>
public sealed class StacksTests
{
    private static readonly JsonSerializerOptions Json = new() { DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };

    public static TheoryData<string> Seeds => new("api", "bot", "stateless");

    private static AppDeployment Seed(string which, string ns) => which switch
    {
        "api" => Stacks.Api(ns: ns),
        "bot" => Stacks.Bot(ns: ns),
        _ => Stacks.Stateless("web", ns),
    };

    [Theory]
    [MemberData(nameof(Seeds))]
    public void The_YAML_of_a_seed_stack_loads_valid_and_equal_to_its_object(string which)
    {
        var seed = Seed(which, "seeds");
        var documents = ResourceLoader.LoadText($"{which}.yaml", Stacks.Yaml(seed, Stacks.BotSecret("seeds")));

        Assert.All(documents, d => Assert.True(d.IsValid, $"{d}: {string.Join("; ", d.Errors)}"));
        var loaded = Assert.IsType<AppDeployment>(documents[0].Resource);
        Assert.Equal(JsonSerializer.Serialize(seed, Json), JsonSerializer.Serialize(loaded, Json));
        var secret = Assert.IsType<V1Secret>(documents[1].Resource);
        Assert.Equal((Stacks.BotSecretName, "seeds"), (secret.Metadata.Name, secret.Metadata.NamespaceProperty));
    }

    [Fact]
    public void Documents_are_separated_by_marker_lines_with_none_before_the_first()
    {
        var yaml = Stacks.Yaml(Stacks.Bot(), Stacks.BotSecret());

        Assert.StartsWith("apiVersion: skiff.dev/v1alpha1\nkind: AppDeployment\n", yaml, StringComparison.Ordinal);
        Assert.Single(yaml.Split('\n'), line => line == "---");
        Assert.Contains("\n---\napiVersion: v1\n", yaml, StringComparison.Ordinal);
    }
}
