namespace Skiff.Tests.Packaging;

/// <summary>The Helm-subset renderer on small charts: Go template semantics where the chart relies on them, and strictness elsewhere.</summary>
public sealed class ChartRendererTests : IDisposable
{
    private readonly string dir = Path.Combine(Path.GetTempPath(), "skiff-chart-" + Guid.NewGuid().ToString("N")[..8]);

    public ChartRendererTests()
    {
        Directory.CreateDirectory(Path.Combine(dir, "templates"));
        File.WriteAllText(Path.Combine(dir, "Chart.yaml"), "apiVersion: v2\nname: demo\nversion: 1.2.3\nappVersion: \"4.5\"\n");
        File.WriteAllText(Path.Combine(dir, "values.yaml"), """
            on: true
            off: false
            empty: ""
            zero: 0
            port: 8080
            tag: ""
            labels: { a: b, "needs quote": "1" }
            list: [x, "--flag", 50m]
            """);
    }

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private string Render(string template, string? values = null)
    {
        File.WriteAllText(Path.Combine(dir, "templates", "t.txt"), template);
        return ChartRenderer.Render(dir, "rel", "ns", values).Files["templates/t.txt"];
    }

    [Fact]
    public void Trim_markers_remove_whitespace_on_their_side_only()
    {
        Assert.Equal("a:b", Render("a:  \n  {{- \"b\" }}"));
        Assert.Equal("a\nbc", Render("a\n{{ \"b\" -}}  \n c"));
        Assert.Equal("x-1", Render("x{{ -1 }}"));
    }

    [Fact]
    public void If_uses_Go_truthiness_and_missing_values_are_false()
    {
        Assert.Equal("T", Render("{{ if .Values.on }}T{{ else }}F{{ end }}"));
        foreach (var key in new[] { "off", "empty", "zero", "missing", "labels.nope" })
        {
            Assert.Equal("F", Render($"{{{{ if .Values.{key} }}}}T{{{{ else }}}}F{{{{ end }}}}"));
        }

        Assert.Equal("T", Render("{{ if .Values.labels }}T{{ end }}"));
    }

    [Fact]
    public void Values_release_chart_and_pipelines_render_like_helm()
    {
        Assert.Equal("rel/ns 4.5 1.2.3 demo 8080", Render("{{ .Release.Name }}/{{ .Release.Namespace }} {{ .Chart.AppVersion }} {{ .Chart.Version }} {{ .Chart.Name }} {{ .Values.port }}"));
        Assert.Equal("4.5", Render("{{ .Values.tag | default .Chart.AppVersion }}"));
        Assert.Equal("v9", Render("{{ .Values.tag | default .Chart.AppVersion }}", "tag: v9"));
        Assert.Equal("\"4.5\"", Render("{{ .Chart.AppVersion | quote }}"));
        Assert.Equal("k:\n  a: b\n  \"needs quote\": \"1\"", Render("k:{{ toYaml .Values.labels | nindent 2 }}"));
        Assert.Equal("- x\n- \"--flag\"\n- \"50m\"", Render("{{ toYaml .Values.list }}"));
        Assert.Equal("{{ $labels.x }}", Render("{{`{{ $labels.x }}`}}"));
    }

    [Fact]
    public void Define_and_include_render_with_the_root_context()
    {
        File.WriteAllText(Path.Combine(dir, "templates", "_h.tpl"), "{{- define \"demo.name\" -}}\nname: {{ .Release.Name }}\n{{- end }}");
        Assert.Equal("m:\n    name: rel", Render("m:{{ include \"demo.name\" . | nindent 4 }}"));
    }

    [Theory]
    [InlineData("{{ .Values.missing }}", "not set")]
    [InlineData("{{ .Values.labels }}", "toYaml")]
    [InlineData("{{ range .Values.list }}x{{ end }}", "subset")]
    [InlineData("{{ .Values.port | upper }}", "unknown function")]
    [InlineData("{{ if .Values.on }}x", "no {{ end }}")]
    [InlineData("{{ .Files.Get \"nope.json\" }}", "no file")]
    [InlineData("{{ include \"nope\" . }}", "no template")]
    public void Anything_outside_the_subset_or_unset_fails_loudly(string template, string message)
    {
        var e = Assert.Throws<ChartRenderException>(() => Render(template));
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Values_overrides_merge_maps_and_replace_the_rest()
    {
        Assert.Equal("b c\n- z", Render("{{ .Values.labels.a }} {{ .Values.labels.new }}\n{{ toYaml .Values.list }}", "labels: { new: c }\nlist: [z]"));
    }
}
