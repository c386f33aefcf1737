using System.Text.Json.Nodes;

namespace Skiff.TestApiServer;

/// <summary>A parsed label selector (=, ==, !=, in, notin, exists, !exists), as labels.Parse accepts it.</summary>
internal sealed class LabelSelector
{
    private readonly List<Func<IReadOnlyDictionary<string, string>, bool>> _requirements = [];

    public static LabelSelector Parse(string? text)
    {
        var selector = new LabelSelector();
        if (string.IsNullOrWhiteSpace(text))
        {
            return selector;
        }

        foreach (var raw in SplitTopLevel(text))
        {
            var req = raw.Trim();
            if (req.Length == 0)
            {
                continue;
            }

            selector._requirements.Add(ParseRequirement(req));
        }

        return selector;
    }

    public bool Matches(JsonObject obj)
    {
        var labels = new Dictionary<string, string>();
        if (obj["metadata"]?["labels"] is JsonObject l)
        {
            foreach (var (k, v) in l)
            {
                labels[k] = Json.Str(v) ?? "";
            }
        }

        return _requirements.All(r => r(labels));
    }

    private static Func<IReadOnlyDictionary<string, string>, bool> ParseRequirement(string req)
    {
        if (req.StartsWith('!'))
        {
            var key = req[1..].Trim();
            return l => !l.ContainsKey(key);
        }

        var words = req.Split(' ', 2, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (words.Length == 2 && (words[1].StartsWith("in ", StringComparison.Ordinal) || words[1].StartsWith("in(", StringComparison.Ordinal)
            || words[1].StartsWith("notin", StringComparison.Ordinal)))
        {
            var notIn = words[1].StartsWith("notin", StringComparison.Ordinal);
            var open = words[1].IndexOf('(');
            var close = words[1].LastIndexOf(')');
            if (open < 0 || close < open)
            {
                throw ApiError.BadRequest($"unable to parse requirement: {req}");
            }

            var values = words[1][(open + 1)..close].Split(',', StringSplitOptions.TrimEntries).ToHashSet();
            var key = words[0];
            return notIn
                ? l => !l.TryGetValue(key, out var v) || !values.Contains(v)
                : l => l.TryGetValue(key, out var v) && values.Contains(v);
        }

        foreach (var op in new[] { "!=", "==", "=" })
        {
            var i = req.IndexOf(op, StringComparison.Ordinal);
            if (i > 0)
            {
                var key = req[..i].Trim();
                var value = req[(i + op.Length)..].Trim();
                return op == "!="
                    ? l => !l.TryGetValue(key, out var v) || v != value
                    : l => l.TryGetValue(key, out var v) && v == value;
            }
        }

        var exists = req.Trim();
        return l => l.ContainsKey(exists);
    }

    private static IEnumerable<string> SplitTopLevel(string text)
    {
        var depth = 0;
        var start = 0;
        for (var i = 0; i < text.Length; i++)
        {
            switch (text[i])
            {
                case '(':
                    depth++;
                    break;
                case ')':
                    depth--;
                    break;
                case ',' when depth == 0:
                    yield return text[start..i];
                    start = i + 1;
                    break;
            }
        }

        yield return text[start..];
    }
}

/// <summary>A parsed field selector (=, ==, !=) over the fields a resource lets clients select on.</summary>
internal sealed class FieldSelector
{
    private readonly List<(string Field, bool Equal, string Value)> _terms = [];

    public static FieldSelector Parse(string? text, ResourceType type)
    {
        var selector = new FieldSelector();
        if (string.IsNullOrWhiteSpace(text))
        {
            return selector;
        }

        foreach (var raw in text.Split(','))
        {
            var term = raw.Trim();
            if (term.Length == 0)
            {
                continue;
            }

            string field, value;
            bool equal;
            var ne = term.IndexOf("!=", StringComparison.Ordinal);
            if (ne > 0)
            {
                (field, value, equal) = (term[..ne], term[(ne + 2)..], false);
            }
            else
            {
                var eq = term.IndexOf('=');
                if (eq <= 0)
                {
                    throw ApiError.BadRequest($"invalid field selector: {term}");
                }

                var skip = term.Length > eq + 1 && term[eq + 1] == '=' ? 2 : 1;
                (field, value, equal) = (term[..eq], term[(eq + skip)..], true);
            }

            field = field.Trim();
            if (field is not ("metadata.name" or "metadata.namespace") && !type.SelectableFields.Contains(field))
            {
                throw ApiError.BadRequest($"field label not supported: {field}");
            }

            selector._terms.Add((field, equal, value.Trim()));
        }

        return selector;
    }

    /// <summary>The name a metadata.name=x term pins, so a watch or list can skip everything else cheaply.</summary>
    public string? Name => _terms.FirstOrDefault(t => t.Field == "metadata.name" && t.Equal).Value;

    public bool Matches(JsonObject obj) => _terms.All(t =>
    {
        var actual = t.Field == "source" ? Json.Dotted(obj, "source.component") : Json.Dotted(obj, t.Field);
        return t.Equal ? (actual ?? "") == t.Value : (actual ?? "") != t.Value;
    });
}
