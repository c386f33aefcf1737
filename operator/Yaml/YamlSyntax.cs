using System.Text.RegularExpressions;

namespace Skiff.Yaml;

/// <summary>A <c>[</c> or <c>{</c> the reader met and has not seen closed, with where it opened (from 1).</summary>
internal sealed record FlowOpening(char Bracket, long Line, long Column)
{
    public char Closer => Bracket == '[' ? ']' : '}';
}

/// <summary>
/// YAML syntax errors in words a user can act on. YamlDotNet's exception texts ("While parsing a block
/// mapping, did not find expected key.") describe its parser's state, not the mistake; this maps the ones
/// users meet to what is usually wrong and how to fix it, and words any other one plainly. The line and
/// column are given beside it by the caller.
/// </summary>
internal static partial class YamlSyntax
{
    private static readonly (string Contains, string Words)[] Known =
    [
        ("block mapping, did not find expected key",
            "this line does not fit the mapping above it: indent it like the keys beside it (spaces only), or check that the line before ends its value"),
        ("did not find expected '-' indicator",
            "a list item (\"- ...\") was expected here: indent every item of a list alike, and a key under an item further than its \"-\""),
        ("invalid tab as indentation", "a tab is used for indentation: YAML allows only spaces"),
        ("tab character that violate indentation", "a tab is used for indentation: YAML allows only spaces"),
        ("found invalid mapping",
            "a value contains \": \" (a colon and a space), which starts a mapping: quote the value, or put the nested mapping on its own indented lines"),
        ("quoted scalar, found unexpected end of stream", "a quoted value is never closed: add the closing quote"),
        ("quoted scalar, found unexpected document indicator", "a quoted value is never closed before the next ---: add the closing quote"),
        ("unknown escape character", "a double-quoted value holds an unknown backslash escape: write \\\\ for a backslash, or use single quotes"),
        ("multi-line double-quoted scalar, found wrong indentation", "a quoted value continues on a line indented less than its key: indent the continuation"),
        ("character that cannot start any token",
            "a value starts with a character YAML reserves (@ or `): quote the value"),
        ("could not find expected ':'", "a key has no colon after it: write \"key: value\""),
        ("did not find expected node content", "a value is missing here, or a line starts with a character that cannot begin one"),
        ("flow sequence, did not find expected ',' or ']'", "a [ list ] is not closed, or two of its items lack a comma between them"),
        ("flow mapping, did not find expected ',' or '}'", "a { mapping } is not closed, or two of its entries lack a comma between them"),
        ("flow mapping,  did not find expected ',' or '}'", "a { mapping } is not closed, or two of its entries lack a comma between them"),
        ("found more than one anchor", "a value has two &anchors: keep one"),
        ("anchor or alias, found value containing disallowed", "an &anchor or *alias name contains one of []{}, : rename it"),
        ("found undefined tag handle", "an unknown !tag: remove it, or quote the value that starts with !"),
        ("did not find expected <document start>", "more content after the end of a document: start the next one with a --- line"),
        ("version directive, did not find preceding <document end>", "a %YAML line in the middle of a document: end the document with ... or ---, or remove the line"),
        ("found duplicate %YAML directive", "%YAML is given twice: keep one"),
        ("comment between adjacent scalars", "a # comment sits inside a value that goes on after it: move the comment, or quote the value"),
    ];

    /// <summary>The words for a YamlDotNet message; <paramref name="open"/> names an unclosed [ or { when one is open.</summary>
    public static string Describe(string message, FlowOpening? open)
    {
        message = MarkPrefix().Replace(message, "").Trim();
        var unclosed = open is null ? "" : $"the {open.Bracket} opened at line {open.Line}, column {open.Column} is not closed with {open.Closer}";
        foreach (var (contains, words) in Known)
        {
            if (message.Contains(contains, StringComparison.OrdinalIgnoreCase))
            {
                // Inside an unclosed [ or {, that is nearly always the real mistake, whatever the parser met next.
                return unclosed.Length > 0 && contains.StartsWith("flow", StringComparison.Ordinal) ? unclosed : words;
            }
        }

        if (unclosed.Length > 0)
        {
            return unclosed;
        }

        // Any other: YamlDotNet's words without the "While scanning X," preamble and the trailing period.
        var plain = Preamble().Replace(message, "").TrimEnd('.');
        return plain.Length == 0 ? "the YAML cannot be read from here on" : $"not valid YAML here: {char.ToLowerInvariant(plain[0])}{plain[1..]}";
    }

    [GeneratedRegex(@"^\(Line: \d+, Col: \d+, Idx: \d+\) - \(Line: \d+, Col: \d+, Idx: \d+\):\s*")]
    private static partial Regex MarkPrefix();

    [GeneratedRegex(@"^While (scanning|parsing)[^,]*,\s*", RegexOptions.IgnoreCase)]
    private static partial Regex Preamble();
}
