using System.CommandLine;
using System.Text;
using k8s.Models;
using Skiff.Api;
using Skiff.Cli;
using Skiff.Yaml;
using Skiff.Hosting;

namespace Skiff.Tests.Resources;

public class ResourceLoaderTests
{
    private static string Valid => Path.Combine(RepoPaths.Fixtures, "valid");

    private static string Invalid => Path.Combine(RepoPaths.Fixtures, "invalid");

    private static async Task<(int Exit, string Stdout, string Stderr)> Validate(params string[] paths)
    {
        using var stdout = new StringWriter { NewLine = "\n" };
        using var stderr = new StringWriter { NewLine = "\n" };
        var exit = await SkiffCommandLine.Build().Parse(["validate", .. paths])
            .InvokeAsync(new InvocationConfiguration { Output = stdout, Error = stderr });
        return (exit, stdout.ToString(), stderr.ToString());
    }

    [Fact]
    public async Task Valid_examples_load_with_zero_errors()
    {
        var result = ResourceLoader.LoadPaths([Valid]);
        Assert.False(result.HasErrors, string.Join("\n", result.Documents.SelectMany(d => d.Errors.Select(e => $"{d}: {e}"))));
        Assert.Equal(["chat-bot", "onboarding-api"], result.AppDeployments.Select(a => a.Metadata.Name).Order(StringComparer.Ordinal));
        Assert.Single(result.ImageGCPolicies);
        // api-secrets, bot-secrets, and registry-creds (the imagePullSecret, which validate wants defined in the folder).
        Assert.Equal(3, result.Secrets.Count());
        Assert.Equal("ConfigMap", Assert.Single(result.Skipped).Kind);

        var api = result.AppDeployments.Single(a => a.Metadata.Name == "onboarding-api");
        Assert.Equal("prod", api.Metadata.NamespaceProperty);
        Assert.Equal("http", api.Spec.App.HealthCheck!.Http.Port.StringValue);
        Assert.Equal(["npx", "prisma", "migrate", "deploy"], api.Spec.App.Migrate!.Command);
        Assert.Equal("app", api.Spec.Database!.Name);
        var bot = result.AppDeployments.Single(a => a.Metadata.Name == "chat-bot");
        Assert.Equal("default", bot.Metadata.NamespaceProperty);
        Assert.Equal(PersistenceModes.Aof, bot.Spec.Cache!.Persistence);

        var (exit, stdout, _) = await Validate(Valid);
        Assert.Equal(0, exit);
        Assert.Equal("", stdout);
    }

    [Theory]
    // Found by the CsCheck mutation property: a field set twice, with a value of the wrong type, was kept in the
    // tree because its second problem had the same path as the first, and reading the document then threw.
    [InlineData("apiVersion: v1\nkind: Secret\nmetadata:\n  name: true\n  name: true\ndata:\n  token: dG9r\n")]
    [InlineData("apiVersion: skiff.dev/v1alpha1\nkind: AppDeployment\nmetadata:\n  name: api\nspec:\n  node: a\n  app:\n    image: [1]\n    image: [1]\n")]
    public void A_duplicate_field_with_a_value_of_the_wrong_type_is_reported_not_an_internal_error(string text)
    {
        var document = Assert.Single(ResourceLoader.LoadText("dup.yaml", text));
        Assert.Null(document.Resource);
        var error = Assert.Single(document.Errors);
        Assert.EndsWith("duplicate field: it is set more than once in this mapping", error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Secrets_merge_stringData_into_data()
    {
        var result = ResourceLoader.LoadPaths([Valid]);
        var api = result.Secrets.Single(s => s.Metadata.Name == "api-secrets");
        Assert.Equal("not-a-real-key", Encoding.UTF8.GetString(api.Data["session-key"]));
        Assert.Null(api.StringData);
        var bot = result.Secrets.Single(s => s.Metadata.Name == "bot-secrets");
        Assert.Equal("secret-token", Encoding.UTF8.GetString(bot.Data["token"]));
        Assert.Equal("default", bot.Metadata.NamespaceProperty);
        Assert.IsType<V1Secret>(result.Documents.First(d => d.Kind == "Secret").Resource);
    }

    [Fact]
    public async Task Invalid_fixtures_give_exactly_the_expected_lines()
    {
        var (exit, stdout, _) = await Validate(Invalid);
        Assert.Equal(ExitCodes.NotOk, exit);
        var actual = stdout.Replace(Invalid + Path.DirectorySeparatorChar, "", StringComparison.Ordinal).TrimEnd('\n').Split('\n');
        var expected = File.ReadAllLines(Path.Combine(Invalid, "expected.txt"))
            .Where(l => l.Length > 0 && !l.StartsWith('#')).ToArray();
        Assert.Equal(expected, actual);
    }

    [Fact]
    public async Task A_missing_path_exits_2_without_a_stack_trace()
    {
        var (exit, stdout, stderr) = await Validate(Path.Combine(Invalid, "no-such-file.yaml"));
        Assert.Equal(ExitCodes.UsageOrIo, exit);
        Assert.Equal("", stdout);
        Assert.Contains("no such file or folder", stderr);
        Assert.DoesNotContain("   at ", stderr);
    }

    [Fact]
    public void Folder_walk_skips_hidden_and_temporary_files()
    {
        var dir = Directory.CreateTempSubdirectory("skiff-load-");
        try
        {
            const string Doc = "apiVersion: v1\nkind: ConfigMap\nmetadata: { name: x }\n";
            foreach (var name in new[] { "a.yaml", ".hidden.yaml", "b.yaml~", ".#c.yaml", "d.yaml.swp", "#e.yaml#", "notes.txt", "sub/f.yml", ".git/g.yaml" })
            {
                var path = Path.Combine(dir.FullName, name);
                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                File.WriteAllText(path, Doc);
            }

            var files = ResourceLoader.LoadPaths([dir.FullName]).Documents.Select(d => Path.GetRelativePath(dir.FullName, d.File));
            Assert.Equal(["a.yaml", Path.Combine("sub", "f.yml")], files);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void A_ten_megabyte_file_is_rejected_before_it_is_parsed()
    {
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllText(file, "apiVersion: skiff.dev/v1alpha1\nkind: AppDeployment\nmetadata: { name: big }\nspec:\n  app:\n    image: \"" + new string('a', 10 * 1024 * 1024) + "\"\n");
            var error = Assert.Single(Assert.Single(ResourceLoader.LoadPaths([file]).Documents).Errors);
            Assert.Equal("(file)", error.Path);
            Assert.StartsWith("the file is 1048", error.Message);
            Assert.Contains("the limit is 4 MiB", error.Message);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void A_ten_megabyte_string_is_rejected()
    {
        var text = "kind: AppDeployment\nspec:\n  app:\n    image: \"" + new string('a', 10 * 1024 * 1024) + "\"\n";
        var error = Assert.Single(Assert.Single(ResourceLoader.LoadText("big.yaml", text)).Errors);
        Assert.Contains("the limit is 4 MiB", error.Message);
    }

    [Fact]
    public void A_value_over_one_mebibyte_is_rejected_with_its_path()
    {
        var text = "apiVersion: skiff.dev/v1alpha1\nkind: AppDeployment\nmetadata: { name: big }\nspec:\n  node: n\n  app:\n    image: \"" + new string('a', 2 * 1024 * 1024) + "\"\n";
        var errors = Assert.Single(ResourceLoader.LoadText("big.yaml", text)).Errors;
        Assert.Contains(errors, e => e.ToString() == "spec.app.image: the value is 2097152 characters long; the limit is 1 MiB");
    }

    [Fact]
    public void An_alias_bomb_is_rejected()
    {
        var text = new StringBuilder("apiVersion: skiff.dev/v1alpha1\nkind: AppDeployment\nmetadata: { name: bomb }\n");
        text.Append("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for (var i = 1; i < 12; i++)
        {
            text.Append($"a{i}: &a{i} [{string.Join(", ", Enumerable.Repeat($"*a{i - 1}", 9))}]\n");
        }

        var document = Assert.Single(ResourceLoader.LoadText("bomb.yaml", text.ToString()));
        Assert.Contains(document.Errors, e => e.Message.Contains("once its aliases are expanded", StringComparison.Ordinal));
        Assert.Null(document.Resource);
    }

    [Fact]
    public void Aliases_within_the_budget_are_expanded()
    {
        const string Text = """
            apiVersion: skiff.dev/v1alpha1
            kind: AppDeployment
            metadata: { name: api }
            spec:
              node: vps-1
              app:
                image: nginx:1.27
                resources: &limits { memory: 256Mi }
              cache:
                resources: *limits
            """;
        var document = Assert.Single(ResourceLoader.LoadText("alias.yaml", Text));
        Assert.Empty(document.Errors);
        Assert.Equal("256Mi", ((AppDeployment)document.Resource!).Spec.Cache!.Resources!.Memory);
    }

    [Fact]
    public void Deep_nesting_is_rejected_with_its_path()
    {
        var text = "kind: AppDeployment\nspec: " + new string('[', 10_000) + new string(']', 10_000) + "\n";
        var errors = Assert.Single(ResourceLoader.LoadText("deep.yaml", text)).Errors;
        Assert.Contains(errors, e => e.Message == "nested deeper than 64 levels");
    }

    [Fact]
    public void Syntax_errors_name_the_line_and_column()
    {
        var documents = ResourceLoader.LoadText("bad.yaml", "kind: AppDeployment\nmetadata:\n  name: [x\n");
        var error = Assert.Single(Assert.Single(documents).Errors);
        Assert.Matches(@"^line \d+, column \d+$", error.Path);
    }

    [Fact]
    public void Duplicate_fields_are_errors()
    {
        var documents = ResourceLoader.LoadText("dup.yaml", "apiVersion: skiff.dev/v1alpha1\nkind: AppDeployment\nmetadata: { name: a }\nspec:\n  node: a\n  node: b\n  app: { image: nginx }\n");
        Assert.Equal("spec.node: duplicate field: it is set more than once in this mapping", Assert.Single(Assert.Single(documents).Errors).ToString());
    }

    [Fact]
    public void The_same_resource_twice_is_an_error_on_the_later_document()
    {
        const string Doc = "apiVersion: skiff.dev/v1alpha1\nkind: AppDeployment\nmetadata: { name: a }\nspec: { node: n, app: { image: nginx } }\n";
        var documents = ResourceLoader.LoadText("twice.yaml", Doc + "---\n" + Doc);
        Assert.Empty(documents[0].Errors);
        Assert.Equal("metadata.name: duplicate AppDeployment default/a: first defined in twice.yaml:1", Assert.Single(documents[1].Errors).ToString());
    }
}
