using CsCheck;
using Skiff.Yaml;

namespace Skiff.Tests.Resources;

/// <summary>The loader's promise: any input gives documents, never an exception, and every rejection says where.</summary>
public class LoaderPropertyTests
{
    private static readonly string[] ValidTexts =
        [.. Directory.GetFiles(Path.Combine(RepoPaths.Fixtures, "valid"), "*.yaml").Order(StringComparer.Ordinal).Select(File.ReadAllText)];

    private static void AssertWellFormed(string text)
    {
        var documents = ResourceLoader.LoadText("fuzz.yaml", text);
        foreach (var d in documents)
        {
            Assert.True(d.IsValid || d.Skipped || d.Errors.Count > 0, $"document {d.Index} is neither valid, skipped nor rejected");
            foreach (var e in d.Errors)
            {
                Assert.False(string.IsNullOrWhiteSpace(e.Path), $"error without a path: {e}");
                Assert.False(string.IsNullOrWhiteSpace(e.Message), $"error without a message: {e}");
                Assert.DoesNotContain("internal error", e.Message, StringComparison.Ordinal);
            }
        }
    }

    private static readonly Gen<string> YamlToken = Gen.OneOf<string>(
        "a", "b: ", "- ", "\n", "  ", ":", "[", "]", "{", "}", ",", "&x ", "*x", "!!str ", "'q'", "\"d\"", "#c", "---\n", "...\n",
        "kind: AppDeployment\n", "apiVersion: skiff.dev/v1alpha1\n", "spec:\n", "  app:\n", "    image: nginx\n", "metadata: {name: a}\n",
        "1", "-2", "3.5", "true", "null", "~", "|\n  x\n", ">\n  y\n", "\t", "%YAML 1.2\n", "<<: *x\n", "? k\n: v\n", "\u00e9", "\0");

    [Fact]
    public void Random_yaml_never_throws()
    {
        YamlToken.Array[0, 60].Select(tokens => string.Concat(tokens)).Sample(AssertWellFormed, iter: 2000);
        Gen.String[0, 300].Sample(AssertWellFormed, iter: 500);
    }

    private static readonly Gen<string> Replacement = Gen.OneOf<string>(
        "", "[1, 2]", "{a: 1}", "true", "70000", "-1", "\"str\"", "x: y", "&a [1]", "*a", "*nope", "[[[[[[[[", "]]]", "@", "'", "\"",
        string.Concat(Enumerable.Repeat("- ", 80)) + "x", new string('{', 100), "1e400", "0x7fffffffffffffff", "99999999999999999999999");

    private static string Mutate(string text, int kind, int position, int length, string replacement)
    {
        position = Math.Min(position, text.Length);
        length = Math.Min(length, text.Length - position);
        var lines = text.Split('\n');
        var line = position % Math.Max(1, lines.Length);
        switch (kind)
        {
            case 0: // delete a range
                return text.Remove(position, length);
            case 1: // insert something at a random place
                return text.Insert(position, replacement);
            case 2: // delete a line
                return string.Join('\n', lines.Where((_, i) => i != line));
            case 3: // swap a value for one of another type
                var colon = lines[line].IndexOf(": ", StringComparison.Ordinal);
                if (colon >= 0)
                {
                    lines[line] = lines[line][..(colon + 2)] + replacement;
                }

                return string.Join('\n', lines);
            case 4: // random bytes
                var chars = text.ToCharArray();
                for (var i = position; i < position + length && i < chars.Length; i++)
                {
                    chars[i] = (char)((chars[i] * 31 + i) % 128);
                }

                return new string(chars);
            default: // duplicate a line (duplicate keys, shifted indentation)
                return string.Join('\n', lines.Take(line + 1).Concat(lines.Skip(line)));
        }
    }

    [Fact]
    public void Mutated_valid_documents_never_throw_and_rejections_name_a_path()
    {
        Gen.Select(Gen.Int[0, ValidTexts.Length - 1], Gen.Int[0, 5], Gen.Int[0, 2000], Gen.Int[0, 40], Replacement)
            .Sample((file, kind, position, length, replacement) =>
                AssertWellFormed(Mutate(ValidTexts[file], kind, position, length, replacement)), iter: 3000);
    }

    [Fact]
    public void Several_mutations_at_once_never_throw()
    {
        Gen.Select(Gen.Int[0, ValidTexts.Length - 1], Gen.Select(Gen.Int[0, 5], Gen.Int[0, 2000], Gen.Int[0, 40], Replacement).Array[1, 6])
            .Sample((file, mutations) =>
            {
                var text = ValidTexts[file];
                foreach (var (kind, position, length, replacement) in mutations)
                {
                    text = Mutate(text, kind, position, length, replacement);
                }

                AssertWellFormed(text);
            }, iter: 1500);
    }
}
