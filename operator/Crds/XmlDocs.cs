using System.Reflection;
using System.Text.RegularExpressions;
using System.Xml.Linq;

namespace Skiff.Crds;

/// <summary>
/// The operator's XML doc comments, which become schema descriptions. They are embedded in the
/// assembly by an MSBuild target (see Skiff.csproj), so <c>skiff crds</c> works from a published
/// single binary; the doc file beside the assembly is the fallback for builds without it.
/// </summary>
internal sealed partial class XmlDocs
{
    public const string ResourceName = "Skiff.ApiDocs.xml";

    private readonly Dictionary<string, string> _summaries;

    private XmlDocs(Dictionary<string, string> summaries) => _summaries = summaries;

    public static XmlDocs Instance { get; } = Load();

    public int Count => _summaries.Count;

    public string? For(Type type) => Get("T:" + Name(type));

    public string? For(PropertyInfo property) =>
        Get("P:" + Name(property.DeclaringType!) + "." + property.Name);

    private string? Get(string id) => _summaries.GetValueOrDefault(id);

    private static string Name(Type type) => type.FullName!.Replace('+', '.');

    private static XmlDocs Load()
    {
        var assembly = typeof(XmlDocs).Assembly;
        using var embedded = assembly.GetManifestResourceStream(ResourceName);
        if (embedded is not null)
        {
            return Parse(XDocument.Load(embedded));
        }

        var file = Path.Combine(AppContext.BaseDirectory, assembly.GetName().Name + ".xml");
        return File.Exists(file) ? Parse(XDocument.Load(file)) : new XmlDocs([]);
    }

    private static XmlDocs Parse(XDocument doc)
    {
        var summaries = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var member in doc.Descendants("member"))
        {
            var name = member.Attribute("name")?.Value;
            var summary = member.Element("summary");
            if (name is null || summary is null)
            {
                continue;
            }

            // <see cref="T:X.Y"/> reads as Y; <c>code</c> as its text.
            foreach (var see in summary.Descendants("see").ToList())
            {
                var cref = see.Attribute("cref")?.Value ?? see.Attribute("langword")?.Value ?? "";
                see.ReplaceWith(new XText(cref[(cref.LastIndexOf('.') + 1)..]));
            }

            summaries[name] = Whitespace().Replace(summary.Value, " ").Trim();
        }

        return new XmlDocs(summaries);
    }

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();
}
