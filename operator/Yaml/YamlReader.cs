using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Skiff.Validation;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace Skiff.Yaml;

/// <summary>One YAML document read into a JSON tree, with the problems met while reading it.</summary>
internal sealed record YamlDocument(int Index, JsonNode? Root, IReadOnlyList<ValidationError> Errors, bool Empty);

/// <summary>
/// Reads a YAML stream into JSON trees, one per document, through YamlDotNet's event parser, with
/// bounds that make hostile input cheap to reject: nesting depth, scalar size, and the number of
/// values a document may hold once its aliases are expanded (an "alias bomb" stops at the limit
/// instead of growing exponentially). Scalars resolve by the YAML 1.2 core schema, as JSON would
/// read them: unquoted 3000 is a number, "3000" a string.
/// </summary>
internal static partial class YamlReader
{
    public const int MaxDepth = 64;
    public const int MaxScalarLength = 1024 * 1024;
    public const int MaxValues = 100_000;

    public static List<YamlDocument> Read(string text)
    {
        var documents = new List<YamlDocument>();
        var scanner = new Scanner(new StringReader(text), skipComments: true);
        var parser = new Parser(scanner);
        var index = 0;
        var reader = new DocumentState();
        try
        {
            parser.Consume<StreamStart>();
            while (!parser.Accept<StreamEnd>(out _))
            {
                parser.Consume<DocumentStart>();
                index++;
                reader = new DocumentState();
                var root = ReadNode(parser, reader, "", 0);
                parser.Consume<DocumentEnd>();
                documents.Add(new YamlDocument(index, root, reader.Errors.List, root is null && reader.Errors.List.Count == 0));
            }
        }
        catch (YamlException e)
        {
            // The parser cannot go on after a syntax error: earlier documents stand, this one fails.
            reader.Errors.Add($"line {e.Start.Line}, column {e.Start.Column}", YamlSyntax.Describe(e.Message, reader.OpenFlow));
            documents.Add(new YamlDocument(Math.Max(index, 1), null, reader.Errors.List, Empty: false));
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException or FormatException)
        {
            // YamlDotNet's scanner fails without a position on some broken input (an unclosed [ followed by a
            // key on the next line throws "Operation is not valid due to the current state of the object"):
            // say where the scanner stood and, when a flow collection is open, which one is not closed.
            var at = scanner.CurrentPosition;
            reader.Errors.Add($"line {at.Line}, column {at.Column}", YamlSyntax.Describe("", reader.OpenFlow));
            documents.Add(new YamlDocument(Math.Max(index, 1), null, reader.Errors.List, Empty: false));
        }

        return documents;
    }

    private sealed class DocumentState
    {
        public ResourceValidator.Errors Errors { get; } = new();
        public Dictionary<string, (JsonNode? Node, int Size)> Anchors { get; } = new(StringComparer.Ordinal);
        public int Values { get; set; }
        public bool OverBudget { get; set; }

        /// <summary>The innermost [ or { not closed yet: the likely culprit of a syntax error.</summary>
        public FlowOpening? OpenFlow => Flows.Count > 0 ? Flows.Peek() : null;

        public Stack<FlowOpening> Flows { get; } = new();
    }

    private static JsonNode? ReadNode(IParser parser, DocumentState state, string path, int depth)
    {
        var start = state.Values;
        JsonNode? node;
        string? anchor = null;
        if (parser.TryConsume<AnchorAlias>(out var alias))
        {
            return ExpandAlias(state, path, alias);
        }

        if (depth >= MaxDepth && (parser.Accept<MappingStart>(out _) || parser.Accept<SequenceStart>(out _)))
        {
            state.Errors.Add(Display(path), $"nested deeper than {MaxDepth} levels");
            parser.SkipThisAndNestedEvents();
            return null;
        }

        if (parser.TryConsume<Scalar>(out var scalar))
        {
            anchor = scalar.Anchor.IsEmpty ? null : scalar.Anchor.Value;
            node = ScalarValue(state, path, scalar);
        }
        else if (parser.Accept<SequenceStart>(out var sequenceStart))
        {
            // Noted as open before the parser moves past it: moving on can already meet the error inside it.
            anchor = sequenceStart.Anchor.IsEmpty ? null : sequenceStart.Anchor.Value;
            var flow = Opened(state, sequenceStart.Style == SequenceStyle.Flow, '[', sequenceStart.Start);
            parser.MoveNext();
            var array = new JsonArray();
            while (!parser.TryConsume<SequenceEnd>(out _))
            {
                array.Add(ReadNode(parser, state, $"{path}[{array.Count}]", depth + 1));
            }

            Closed(state, flow);
            node = array;
        }
        else if (parser.Accept<MappingStart>(out var mappingStart))
        {
            anchor = mappingStart.Anchor.IsEmpty ? null : mappingStart.Anchor.Value;
            var flow = Opened(state, mappingStart.Style == MappingStyle.Flow, '{', mappingStart.Start);
            parser.MoveNext();
            node = ReadMapping(parser, state, path, depth);
            Closed(state, flow);
        }
        else
        {
            var unexpected = parser.Consume<ParsingEvent>();
            throw new YamlException(unexpected.Start, unexpected.End, $"unexpected {unexpected.GetType().Name}");
        }

        Count(state, path, 1);
        if (anchor is not null)
        {
            state.Anchors[anchor] = (node, state.Values - start);
        }

        return node;
    }

    private static JsonObject ReadMapping(IParser parser, DocumentState state, string path, int depth)
    {
        var obj = new JsonObject();
        while (!parser.TryConsume<MappingEnd>(out _))
        {
            if (!parser.TryConsume<Scalar>(out var keyEvent))
            {
                state.Errors.Add(Display(path), "keys must be plain strings");
                parser.SkipThisAndNestedEvents();
                parser.SkipThisAndNestedEvents();
                continue;
            }

            var key = keyEvent.Value;
            // An empty key is written as "" so that its errors still name a path.
            var shownKey = key.Length == 0 ? "\"\"" : key;
            var childPath = path.Length == 0 ? shownKey : $"{path}.{shownKey}";
            var value = ReadNode(parser, state, childPath, depth + 1);
            if (key == "<<")
            {
                state.Errors.Add(Display(childPath), "merge keys (<<) are not supported: write the fields out");
            }
            else if (obj.ContainsKey(key))
            {
                state.Errors.Add(childPath, "duplicate field: it is set more than once in this mapping");
            }
            else
            {
                obj[key] = value;
            }
        }

        return obj;
    }

    private static JsonNode? ExpandAlias(DocumentState state, string path, AnchorAlias alias)
    {
        if (!state.Anchors.TryGetValue(alias.Value.Value, out var anchored))
        {
            state.Errors.Add(Display(path), $"unknown alias *{alias.Value.Value}");
            return null;
        }

        // Count before copying: the copy is only made while the document stays within budget.
        Count(state, path, anchored.Size);
        return state.OverBudget ? null : anchored.Node?.DeepClone();
    }

    private static void Count(DocumentState state, string path, int values)
    {
        state.Values += values;
        if (state.Values > MaxValues && !state.OverBudget)
        {
            state.OverBudget = true;
            state.Errors.Add(Display(path), $"the document holds more than {MaxValues} values once its aliases are expanded: write it out without aliases, or split it");
        }
    }

    private static JsonNode? ScalarValue(DocumentState state, string path, Scalar scalar)
    {
        var value = scalar.Value;
        if (value.Length > MaxScalarLength)
        {
            state.Errors.Add(Display(path), $"the value is {value.Length} characters long; the limit is 1 MiB");
            return null;
        }

        if (scalar.Style != ScalarStyle.Plain || scalar.Tag is { IsEmpty: false, IsNonSpecific: false, Value: "tag:yaml.org,2002:str" })
        {
            return JsonValue.Create(value);
        }

        switch (value)
        {
            case "" or "~" or "null" or "Null" or "NULL":
                return null;
            case "true" or "True" or "TRUE":
                return JsonValue.Create(true);
            case "false" or "False" or "FALSE":
                return JsonValue.Create(false);
        }

        if (Integer().IsMatch(value))
        {
            return long.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l)
                ? JsonValue.Create(l)
                : JsonValue.Create(double.Parse(value, CultureInfo.InvariantCulture));
        }

        if (value.StartsWith("0x", StringComparison.Ordinal) && value.Length <= 18
            && long.TryParse(value.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var hex))
        {
            return JsonValue.Create(hex);
        }

        if (Float().IsMatch(value) && double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && double.IsFinite(d))
        {
            return JsonValue.Create(d);
        }

        return JsonValue.Create(value);
    }

    private static bool Opened(DocumentState state, bool isFlow, char bracket, Mark start)
    {
        if (isFlow)
        {
            state.Flows.Push(new FlowOpening(bracket, start.Line, start.Column));
        }

        return isFlow;
    }

    private static void Closed(DocumentState state, bool wasFlow)
    {
        if (wasFlow)
        {
            state.Flows.Pop();
        }
    }

    /// <summary>Paths in messages: the root is shown as "(document)".</summary>
    private static string Display(string path) => path.Length == 0 ? "(document)" : path;

    [GeneratedRegex(@"^[-+]?[0-9]+$")]
    private static partial Regex Integer();

    [GeneratedRegex(@"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")]
    private static partial Regex Float();
}
