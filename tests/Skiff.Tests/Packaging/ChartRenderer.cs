using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Skiff.Yaml;

namespace Skiff.Tests.Packaging;

/// <summary>
/// Renders charts/skiff the way <c>helm template</c> would, for exactly the subset of Go templates
/// and Sprig the chart uses, because no helm binary is available on these machines. Linked into
/// both test projects (the RBAC test of the integration tests renders the chart too).
/// </summary>
/// <remarks>
/// # Supported
/// - <c>{{ .Values.a.b }}</c>, <c>{{ .Release.Name }}</c>, <c>{{ .Release.Namespace }}</c>,
///   <c>{{ .Chart.Name }}</c>, <c>{{ .Chart.Version }}</c>, <c>{{ .Chart.AppVersion }}</c>,
///   <c>{{ .Files.Get "path" }}</c>;
/// - <c>{{- if PIPELINE }} … {{- else }} … {{- end }}</c> with Go's truthiness;
///   <c>{{- define "name" -}} … {{- end }}</c> and <c>{{ include "name" . }}</c>;
/// - pipelines of <c>toYaml</c>, <c>nindent N</c>, <c>indent N</c>, <c>quote</c>, <c>default X</c>;
/// - string literals ("…" and `…`), integer literals, comments, <c>{{-</c> and <c>-}}</c> trimming.
///
/// # Caveats
/// Stricter than Helm where Helm is lenient: printing a value that is not there, or a map, throws
/// (Helm prints "&lt;no value&gt;" or "map[…]"), and anything outside the subset throws, so the chart
/// cannot quietly drift beyond what these tests can check. <c>toYaml</c> keeps key order (Helm
/// sorts keys) and quotes every string that is not obviously plain; the YAML means the same.
/// </remarks>
public sealed partial class ChartRenderer
{
    private readonly string chartDir;
    private readonly JsonObject values;
    private readonly JsonObject chart;
    private readonly string releaseName;
    private readonly string releaseNamespace;
    private readonly Dictionary<string, List<Node>> defines = new(StringComparer.Ordinal);

    private ChartRenderer(string chartDir, JsonObject values, JsonObject chart, string releaseName, string releaseNamespace)
    {
        this.chartDir = chartDir;
        this.values = values;
        this.chart = chart;
        this.releaseName = releaseName;
        this.releaseNamespace = releaseNamespace;
    }

    /// <summary>Renders every template of the chart.</summary>
    /// <param name="chartDir">The chart's folder (holding Chart.yaml).</param>
    /// <param name="releaseName">helm install NAME.</param>
    /// <param name="releaseNamespace">helm install -n NAMESPACE.</param>
    /// <param name="valuesYaml">Values merged over values.yaml, as with <c>helm install -f</c>.</param>
    public static RenderedChart Render(string chartDir, string releaseName = "skiff", string releaseNamespace = "skiff-system", string? valuesYaml = null)
    {
        var chartYaml = ReadYamlObject(Path.Combine(chartDir, "Chart.yaml"), File.ReadAllText(Path.Combine(chartDir, "Chart.yaml")));
        var values = ReadYamlObject(Path.Combine(chartDir, "values.yaml"), File.ReadAllText(Path.Combine(chartDir, "values.yaml")));
        if (valuesYaml is not null)
        {
            Merge(values, ReadYamlObject("(values override)", valuesYaml));
        }

        var renderer = new ChartRenderer(chartDir, values, chartYaml, releaseName, releaseNamespace);
        var templatesDir = Path.Combine(chartDir, "templates");
        var files = Directory.EnumerateFiles(templatesDir, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(chartDir, f).Replace('\\', '/'))
            .Order(StringComparer.Ordinal)
            .ToList();
        var parsed = files.ToDictionary(f => f, f => renderer.Parse(f, File.ReadAllText(Path.Combine(chartDir, f))));

        var rendered = new Dictionary<string, string>(StringComparer.Ordinal);
        var manifests = new List<RenderedManifest>();
        var notes = "";
        foreach (var file in files)
        {
            var name = Path.GetFileName(file);
            if (name.StartsWith('_'))
            {
                continue; // defines only, as in Helm
            }

            var text = renderer.Evaluate(parsed[file], new Scope(file));
            rendered[file] = text;
            if (name == "NOTES.txt")
            {
                notes = text;
                continue;
            }

            if (!name.EndsWith(".yaml", StringComparison.Ordinal) && !name.EndsWith(".yml", StringComparison.Ordinal))
            {
                continue;
            }

            foreach (var document in YamlReader.Read(text))
            {
                if (document.Errors.Count > 0)
                {
                    throw new ChartRenderException($"{file} document {document.Index} does not parse: {string.Join("; ", document.Errors)}\n{text}");
                }

                if (document.Empty)
                {
                    continue;
                }

                if (document.Root is not JsonObject obj)
                {
                    throw new ChartRenderException($"{file} document {document.Index} is not a mapping\n{text}");
                }

                manifests.Add(new RenderedManifest(file, obj));
            }
        }

        return new RenderedChart(rendered, manifests, notes);
    }

    /// <summary>toYaml as the chart uses it: block style, two-space indent, no trailing newline.</summary>
    public static string ToYaml(JsonNode? node) => string.Join('\n', YamlLines(node));

    private static JsonObject ReadYamlObject(string file, string text)
    {
        var documents = YamlReader.Read(text).Where(d => !d.Empty).ToList();
        if (documents.Count == 0)
        {
            return [];
        }

        if (documents.Count > 1 || documents[0].Errors.Count > 0 || documents[0].Root is not JsonObject obj)
        {
            throw new ChartRenderException($"{file}: must be one YAML mapping: {string.Join("; ", documents.SelectMany(d => d.Errors))}");
        }

        return obj;
    }

    /// <summary>Helm's coalescing of values: mappings merge key by key, anything else replaces.</summary>
    private static void Merge(JsonObject target, JsonObject source)
    {
        foreach (var (key, value) in source.ToList())
        {
            if (value is JsonObject s && target[key] is JsonObject t)
            {
                Merge(t, s);
            }
            else
            {
                target[key] = value?.DeepClone();
            }
        }
    }

    // ---- Parsing ----------------------------------------------------------------------------

    private abstract record Node(string File, int Line);

    private sealed record TextNode(string File, int Line, string Text) : Node(File, Line);

    private sealed record OutputNode(string File, int Line, string Pipeline) : Node(File, Line);

    private sealed record IfNode(string File, int Line, string Condition, List<Node> Then, List<Node> Else) : Node(File, Line);

    private sealed record Token(bool IsAction, string Text, int Line);

    private List<Node> Parse(string file, string source)
    {
        var tokens = Lex(file, source);
        var i = 0;
        var nodes = ParseList(file, tokens, ref i, out var stop);
        if (stop is not null)
        {
            throw new ChartRenderException($"{file}:{tokens[i - 1].Line}: unexpected {{{{ {stop} }}}}");
        }

        return nodes;
    }

    private List<Node> ParseList(string file, List<Token> tokens, ref int i, out string? stoppedAt)
    {
        var nodes = new List<Node>();
        while (i < tokens.Count)
        {
            var token = tokens[i++];
            if (!token.IsAction)
            {
                nodes.Add(new TextNode(file, token.Line, token.Text));
                continue;
            }

            var action = token.Text;
            if (action.StartsWith("/*", StringComparison.Ordinal))
            {
                continue;
            }

            if (action is "end" or "else")
            {
                stoppedAt = action;
                return nodes;
            }

            if (action.StartsWith("if ", StringComparison.Ordinal))
            {
                var then = ParseList(file, tokens, ref i, out var stop);
                var otherwise = new List<Node>();
                if (stop == "else")
                {
                    otherwise = ParseList(file, tokens, ref i, out stop);
                }

                if (stop != "end")
                {
                    throw new ChartRenderException($"{file}:{token.Line}: {{{{ {action} }}}} has no {{{{ end }}}}");
                }

                nodes.Add(new IfNode(file, token.Line, action[3..].Trim(), then, otherwise));
                continue;
            }

            if (action.StartsWith("define ", StringComparison.Ordinal))
            {
                var name = Literal(action[7..].Trim(), file, token.Line);
                var body = ParseList(file, tokens, ref i, out var stop);
                if (stop != "end")
                {
                    throw new ChartRenderException($"{file}:{token.Line}: define {name} has no {{{{ end }}}}");
                }

                defines[name] = body;
                continue;
            }

            if (RangeOrWith().IsMatch(action))
            {
                throw new ChartRenderException($"{file}:{token.Line}: {{{{ {action} }}}} is outside the subset ChartRenderer supports");
            }

            nodes.Add(new OutputNode(file, token.Line, action));
        }

        stoppedAt = null;
        return nodes;
    }

    /// <summary>Splits the source into text and actions, applying <c>{{-</c> and <c>-}}</c> as Go templates do.</summary>
    private static List<Token> Lex(string file, string source)
    {
        var tokens = new List<Token>();
        var pos = 0;
        while (pos < source.Length)
        {
            var open = source.IndexOf("{{", pos, StringComparison.Ordinal);
            var text = open < 0 ? source[pos..] : source[pos..open];
            if (open < 0)
            {
                tokens.Add(new Token(false, text, LineOf(source, pos)));
                break;
            }

            var start = open + 2;
            if (start + 1 < source.Length && source[start] == '-' && char.IsWhiteSpace(source[start + 1]))
            {
                text = text.TrimEnd(' ', '\t', '\r', '\n');
                start++;
            }

            tokens.Add(new Token(false, text, LineOf(source, pos)));
            var close = FindClose(source, start, file);
            var inner = source[start..close];
            var trimRight = inner.Length >= 2 && inner[^1] == '-' && char.IsWhiteSpace(inner[^2]);
            if (trimRight)
            {
                inner = inner[..^1];
            }

            tokens.Add(new Token(true, inner.Trim(), LineOf(source, open)));
            pos = close + 2;
            if (trimRight)
            {
                while (pos < source.Length && source[pos] is ' ' or '\t' or '\r' or '\n')
                {
                    pos++;
                }
            }
        }

        return tokens;
    }

    private static int FindClose(string source, int start, string file)
    {
        var i = start;
        while (i < source.Length - 1)
        {
            switch (source[i])
            {
                case '"':
                    i++;
                    while (i < source.Length && source[i] != '"')
                    {
                        i += source[i] == '\\' ? 2 : 1;
                    }

                    i++;
                    continue;
                case '`':
                    i = source.IndexOf('`', i + 1) + 1;
                    if (i == 0)
                    {
                        throw new ChartRenderException($"{file}:{LineOf(source, start)}: unterminated raw string");
                    }

                    continue;
                case '/' when source[i + 1] == '*':
                    i = source.IndexOf("*/", i + 2, StringComparison.Ordinal) + 2;
                    if (i == 1)
                    {
                        throw new ChartRenderException($"{file}:{LineOf(source, start)}: unterminated comment");
                    }

                    continue;
                case '}' when source[i + 1] == '}':
                    return i;
                default:
                    i++;
                    continue;
            }
        }

        throw new ChartRenderException($"{file}:{LineOf(source, start)}: {{{{ without }}}}");
    }

    private static int LineOf(string source, int pos) => source.AsSpan(0, Math.Min(pos, source.Length)).Count('\n') + 1;

    [GeneratedRegex(@"^(range|with|template|block)\b")]
    private static partial Regex RangeOrWith();

    // ---- Evaluation -------------------------------------------------------------------------

    /// <summary>The "." of a template: the root context (include only ever passes ".").</summary>
    private sealed record Scope(string File);

    /// <summary>A value that is not there (Go's missing map key).</summary>
    private sealed class Missing
    {
        public static readonly Missing Value = new();
    }

    private string Evaluate(List<Node> nodes, Scope scope)
    {
        var sb = new StringBuilder();
        foreach (var node in nodes)
        {
            switch (node)
            {
                case TextNode t:
                    sb.Append(t.Text);
                    break;
                case OutputNode o:
                    sb.Append(Print(EvaluatePipeline(o.Pipeline, scope, o), o));
                    break;
                case IfNode i:
                    sb.Append(Evaluate(Truthy(EvaluatePipeline(i.Condition, scope, i)) ? i.Then : i.Else, scope));
                    break;
            }
        }

        return sb.ToString();
    }

    private object? EvaluatePipeline(string pipeline, Scope scope, Node at)
    {
        object? value = null;
        var first = true;
        foreach (var command in Split(pipeline, '|', at))
        {
            var words = Split(command, ' ', at).Where(w => w.Length > 0).ToList();
            if (words.Count == 0)
            {
                throw Error(at, $"empty command in \"{pipeline}\"");
            }

            var args = words.Skip(1).Select(w => Term(w, scope, at)).ToList();
            if (!first)
            {
                args.Add(value); // Go pipelines pass the previous value as the last argument
            }

            value = Call(words[0], args, scope, at, first);
            first = false;
        }

        return value;
    }

    private object? Call(string head, List<object?> args, Scope scope, Node at, bool first)
    {
        object? Arg(int i) => i < args.Count ? args[i] : throw Error(at, $"{head}: missing argument {i + 1}");
        void Arity(int n)
        {
            if (args.Count != n)
            {
                throw Error(at, $"{head}: wants {n} argument(s), got {args.Count}");
            }
        }

        switch (head)
        {
            case "toYaml":
                Arity(1);
                return ToYaml(Arg(0) switch
                {
                    Missing or null => null,
                    JsonNode n => n,
                    var v => JsonValue.Create(Print(v, at)),
                });
            case "nindent":
                Arity(2);
                return "\n" + Indent(ToInt(Arg(0), at), Print(Arg(1), at));
            case "indent":
                Arity(2);
                return Indent(ToInt(Arg(0), at), Print(Arg(1), at));
            case "quote":
                Arity(1);
                return JsonSerializer.Serialize(Print(Arg(0), at), QuoteOptions);
            case "default":
                Arity(2);
                return Truthy(Arg(1)) ? Arg(1) : Arg(0);
            case "include":
                Arity(2);
                if (Arg(0) is not string name || !defines.TryGetValue(name, out var body))
                {
                    throw Error(at, $"include: no template named {Arg(0)}");
                }

                if (Arg(1) is not Scope inner)
                {
                    throw Error(at, "include: only \".\" can be passed");
                }

                return Evaluate(body, inner);
            case ".Files.Get":
                Arity(1);
                var path = Path.GetFullPath(Path.Combine(chartDir, Print(Arg(0), at)));
                if (!path.StartsWith(Path.GetFullPath(chartDir), StringComparison.Ordinal) || !File.Exists(path))
                {
                    throw Error(at, $".Files.Get: no file {Arg(0)} in the chart");
                }

                return File.ReadAllText(path);
            default:
                if (!first || args.Count > 0)
                {
                    throw Error(at, $"unknown function {head}");
                }

                return Term(head, scope, at);
        }
    }

    private object? Term(string word, Scope scope, Node at)
    {
        if (word.StartsWith('"') || word.StartsWith('`'))
        {
            return Literal(word, at.File, at.Line);
        }

        if (long.TryParse(word, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var number))
        {
            return number;
        }

        if (word == ".")
        {
            return scope;
        }

        var parts = word.Split('.');
        if (parts.Length < 3 || parts[0] != "")
        {
            throw Error(at, $"\"{word}\" is outside the subset ChartRenderer supports");
        }

        switch (parts[1])
        {
            case "Values":
                JsonNode? node = values;
                foreach (var key in parts[2..])
                {
                    if (node is not JsonObject obj || !obj.TryGetPropertyValue(key, out node))
                    {
                        return Missing.Value;
                    }
                }

                return node;
            case "Release" when parts.Length == 3:
                return parts[2] switch
                {
                    "Name" => releaseName,
                    "Namespace" => releaseNamespace,
                    "Service" => "Helm",
                    _ => throw Error(at, $"unknown {word}"),
                };
            case "Chart" when parts.Length == 3:
                var field = char.ToLowerInvariant(parts[2][0]) + parts[2][1..];
                return chart[field]?.DeepClone() ?? throw Error(at, $"Chart.yaml has no {field}");
            default:
                throw Error(at, $"\"{word}\" is outside the subset ChartRenderer supports");
        }
    }

    private static string Literal(string word, string file, int line)
    {
        if (word.Length >= 2 && word[0] == '`' && word[^1] == '`')
        {
            return word[1..^1];
        }

        if (word.Length >= 2 && word[0] == '"' && word[^1] == '"')
        {
            return JsonSerializer.Deserialize<string>(word)!;
        }

        throw new ChartRenderException($"{file}:{line}: expected a string literal, got {word}");
    }

    /// <summary>Splits on a separator outside string literals.</summary>
    private static List<string> Split(string text, char separator, Node at)
    {
        var parts = new List<string>();
        var current = new StringBuilder();
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (c is '"' or '`')
            {
                var end = i + 1;
                while (end < text.Length && text[end] != c)
                {
                    end += c == '"' && text[end] == '\\' ? 2 : 1;
                }

                if (end >= text.Length)
                {
                    throw Error(at, $"unterminated string in \"{text}\"");
                }

                current.Append(text, i, end - i + 1);
                i = end;
            }
            else if (c == separator || (separator == ' ' && char.IsWhiteSpace(c)))
            {
                parts.Add(current.ToString().Trim());
                current.Clear();
            }
            else
            {
                current.Append(c);
            }
        }

        parts.Add(current.ToString().Trim());
        return parts;
    }

    private static string Print(object? value, Node at) => value switch
    {
        string s => s,
        long l => l.ToString(CultureInfo.InvariantCulture),
        bool b => b ? "true" : "false",
        JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
        JsonValue v => v.ToJsonString(),
        JsonObject or JsonArray => throw Error(at, "printing a map or list; use toYaml"),
        Missing or null => throw Error(at, "printing a value that is not set"),
        _ => throw Error(at, $"cannot print {value.GetType().Name}"),
    };

    /// <summary>Go's truthiness: false, 0, "", nil and empty collections are false.</summary>
    private static bool Truthy(object? value) => value switch
    {
        null or Missing => false,
        bool b => b,
        long l => l != 0,
        string s => s.Length > 0,
        JsonObject o => o.Count > 0,
        JsonArray a => a.Count > 0,
        JsonValue v => v.GetValueKind() switch
        {
            JsonValueKind.False or JsonValueKind.Null => false,
            JsonValueKind.String => v.GetValue<string>().Length > 0,
            JsonValueKind.Number => Number(v) != 0,
            _ => true,
        },
        _ => true,
    };

    private static int ToInt(object? value, Node at) => value switch
    {
        long l => (int)l,
        JsonValue v when v.GetValueKind() == JsonValueKind.Number => (int)Number(v),
        _ => throw Error(at, "expected a number"),
    };

    private static double Number(JsonValue v) => double.Parse(v.ToJsonString(), CultureInfo.InvariantCulture);

    private static string Indent(int spaces, string text)
    {
        var pad = new string(' ', spaces);
        return pad + text.Replace("\n", "\n" + pad, StringComparison.Ordinal);
    }

    private static ChartRenderException Error(Node at, string message) => new($"{at.File}:{at.Line}: {message}");

    // ---- toYaml -----------------------------------------------------------------------------

    private static readonly JsonSerializerOptions QuoteOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static readonly HashSet<string> YamlWords = new(StringComparer.OrdinalIgnoreCase)
    {
        "true", "false", "yes", "no", "on", "off", "y", "n", "null", "~",
    };

    [GeneratedRegex(@"^[A-Za-z_/][A-Za-z0-9_./-]*$")]
    private static partial Regex PlainString();

    private static bool IsBlock(JsonNode? node) => node is JsonObject { Count: > 0 } or JsonArray { Count: > 0 };

    private static List<string> YamlLines(JsonNode? node)
    {
        switch (node)
        {
            case JsonObject { Count: 0 }:
                return ["{}"];
            case JsonArray { Count: 0 }:
                return ["[]"];
            case JsonObject obj:
                var lines = new List<string>();
                foreach (var (key, value) in obj)
                {
                    var child = YamlLines(value);
                    if (IsBlock(value))
                    {
                        lines.Add(Scalar(key) + ":");
                        lines.AddRange(child.Select(l => "  " + l));
                    }
                    else
                    {
                        lines.Add(Scalar(key) + ": " + child[0]);
                    }
                }

                return lines;
            case JsonArray array:
                var items = new List<string>();
                foreach (var item in array)
                {
                    var child = YamlLines(item);
                    items.Add("- " + child[0]);
                    items.AddRange(child.Skip(1).Select(l => "  " + l));
                }

                return items;
            case JsonValue v when v.GetValueKind() == JsonValueKind.String:
                return [Scalar(v.GetValue<string>())];
            case JsonValue v:
                return [v.ToJsonString()];
            default:
                return ["null"];
        }
    }

    private static string Scalar(string text) =>
        PlainString().IsMatch(text) && !YamlWords.Contains(text) ? text : JsonSerializer.Serialize(text, QuoteOptions);
}

/// <summary>A template the chart cannot render, or a manifest that does not parse.</summary>
public sealed class ChartRenderException(string message) : Exception(message);

/// <summary>One object of the rendered chart.</summary>
/// <param name="Template">The template file it came from (templates/…).</param>
/// <param name="Object">The object, as JSON.</param>
public sealed record RenderedManifest(string Template, JsonObject Object)
{
    public string Kind => Object["kind"]?.GetValue<string>() ?? "";

    public string Name => Object["metadata"]?["name"]?.GetValue<string>() ?? "";

    public string? Namespace => Object["metadata"]?["namespace"]?.GetValue<string>();

    public override string ToString() => $"{Kind}/{Name} ({Template})";
}

/// <summary>What <see cref="ChartRenderer.Render"/> produced.</summary>
/// <param name="Files">Each rendered template's text, by path (templates/…).</param>
/// <param name="Manifests">Every object, in template order.</param>
/// <param name="Notes">The rendered NOTES.txt.</param>
public sealed record RenderedChart(IReadOnlyDictionary<string, string> Files, IReadOnlyList<RenderedManifest> Manifests, string Notes)
{
    public IEnumerable<RenderedManifest> OfKind(string kind) => Manifests.Where(m => m.Kind == kind);

    public RenderedManifest Single(string kind) => Manifests.Single(m => m.Kind == kind);

    /// <summary>The RBAC rules of the chart's ClusterRoles and Roles.</summary>
    public IReadOnlyList<RbacRule> RbacRules =>
        Manifests.Where(m => m.Kind is "ClusterRole" or "Role")
            .SelectMany(m => (m.Object["rules"] as JsonArray ?? []).Select((rule, i) => new RbacRule(
                $"{m.Kind}/{m.Name} rule {i + 1}",
                m.Kind == "Role" ? m.Namespace : null,
                Strings(rule?["apiGroups"]),
                Strings(rule?["resources"]),
                Strings(rule?["verbs"]),
                Strings(rule?["resourceNames"]),
                Strings(rule?["nonResourceURLs"]))))
            .ToList();

    private static IReadOnlyList<string> Strings(JsonNode? node) =>
        node is JsonArray a ? a.Select(x => x!.GetValue<string>()).ToList() : [];
}

/// <summary>One rule of a ClusterRole (<see cref="Namespace"/> null) or a Role.</summary>
public sealed record RbacRule(
    string Source,
    string? Namespace,
    IReadOnlyList<string> ApiGroups,
    IReadOnlyList<string> Resources,
    IReadOnlyList<string> Verbs,
    IReadOnlyList<string> ResourceNames,
    IReadOnlyList<string> NonResourceUrls)
{
    /// <summary>
    /// Whether the rule allows a request, as the RBAC authorizer decides: group, resource (with
    /// "/subresource") and verb must be listed; a Role's rule applies only in its namespace, and a
    /// request across all namespaces (<paramref name="ns"/> null) needs a ClusterRole.
    /// </summary>
    public bool Allows(string apiGroup, string resource, string verb, string? ns) =>
        ApiGroups.Contains(apiGroup) && Resources.Contains(resource) && Verbs.Contains(verb)
        && ResourceNames.Count == 0
        && (Namespace is null || Namespace == ns);

    public override string ToString() =>
        $"{Source}: groups [{string.Join(", ", ApiGroups)}] resources [{string.Join(", ", Resources)}] verbs [{string.Join(", ", Verbs)}]"
        + (Namespace is null ? "" : $" in {Namespace}");
}
