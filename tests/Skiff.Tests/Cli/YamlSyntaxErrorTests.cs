using Skiff.Yaml;

namespace Skiff.Tests.Cli;

/// <summary>YAML syntax errors as users read them (validate, run's folder problems, plan, gc --policy all print these).</summary>
public sealed class YamlSyntaxErrorTests
{
    [Theory]
    [InlineData("apiVersion: skiff.dev/v1alpha1\nkind: AppDeployment\nmetadata:\n  name: x\n spec: 1\n",
        "line 5, column 2: this line does not fit the mapping above it: indent it like the keys beside it (spaces only), or check that the line before ends its value")]
    // YamlDotNet throws "Operation is not valid due to the current state of the object" here, with no position.
    [InlineData("a: [1, 2\nb: 3\n", "line 2, column 1: the [ opened at line 1, column 4 is not closed with ]")]
    [InlineData("a: \"unterminated\n", "line 1, column 4: a quoted value is never closed: add the closing quote")]
    [InlineData("a:\n\t- tab\n", "line 1, column 1: a tab is used for indentation: YAML allows only spaces")]
    [InlineData("image: registry/app: 1\n", "line 1, column 20: a value contains \": \" (a colon and a space), which starts a mapping: quote the value, or put the nested mapping on its own indented lines")]
    [InlineData("- a\nb: c\n", "line 2, column 1: a list item (\"- ...\") was expected here: indent every item of a list alike, and a key under an item further than its \"-\"")]
    [InlineData("a: {b: 1\n", "line 2, column 1: the { opened at line 1, column 4 is not closed with }")]
    [InlineData("key: @foo\n", "line 1, column 6: a value starts with a character YAML reserves (@ or `): quote the value")]
    [InlineData("%YAML 1.1\n%YAML 1.1\na: 1\n", "line 2, column 1: a %YAML line in the middle of a document: end the document with ... or ---, or remove the line")]
    public void A_syntax_error_says_line_column_and_what_is_wrong_in_words(string text, string expected)
    {
        var document = Assert.Single(ResourceLoader.LoadText("x.yaml", text), d => d.Errors.Count > 0);
        var error = Assert.Single(document.Errors);

        Assert.Equal(expected, error.ToString());
    }

    [Theory]
    [InlineData("a: [1, 2\nb: 3\n")]
    [InlineData("x: |\n  a\n b\n")]
    [InlineData("a: !!binary 1\n&a\n")]
    [InlineData("? [a]\n: 1\n")]
    [InlineData("a: 1\n---\n{a: 1\n")]
    [InlineData("a: 'x\n--- \n")]
    [InlineData("&a [*a]\n")]
    [InlineData("a: \"\\q\"\n")]
    public void No_parser_exception_text_reaches_a_user(string text)
    {
        foreach (var error in ResourceLoader.LoadText("x.yaml", text).SelectMany(d => d.Errors))
        {
            var shown = error.ToString();
            Assert.DoesNotContain("Operation is not valid", shown, StringComparison.Ordinal);
            Assert.DoesNotContain("Idx:", shown, StringComparison.Ordinal);
            Assert.DoesNotContain("While ", shown, StringComparison.Ordinal);
            Assert.DoesNotContain("Exception", shown, StringComparison.Ordinal);
        }
    }
}
