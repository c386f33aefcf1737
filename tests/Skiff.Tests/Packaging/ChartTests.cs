using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Skiff.Cli;
using Skiff.Tests.Resources;
using YamlDotNet.RepresentationModel;

namespace Skiff.Tests.Packaging;

/// <summary>charts/skiff, rendered with <see cref="ChartRenderer"/> (there is no helm binary here).</summary>
public sealed partial class ChartTests
{
    private const string Namespace = "skiff-system";

    public static string ChartDir => Path.Combine(RepoPaths.Root, "charts", "skiff");

    private static RenderedChart Render(string? values = null) => ChartRenderer.Render(ChartDir, "skiff", Namespace, values);

    [Fact]
    public void Default_values_render_the_expected_objects_in_the_release_namespace()
    {
        var chart = Render();

        Assert.Equal(
            [
                "ClusterRole/skiff", "ClusterRoleBinding/skiff", "DaemonSet/skiff", "Role/skiff-leader-election",
                "RoleBinding/skiff-leader-election", "Service/skiff-metrics", "ServiceAccount/skiff",
            ],
            chart.Manifests.Select(m => $"{m.Kind}/{m.Name}").Order(StringComparer.Ordinal).ToArray());
        foreach (var m in chart.Manifests.Where(m => m.Kind is not ("ClusterRole" or "ClusterRoleBinding")))
        {
            Assert.True(m.Namespace == Namespace, $"{m} is not in the release namespace");
        }

        foreach (var m in chart.Manifests)
        {
            Assert.Equal("skiff", m.Object["metadata"]!["labels"]!["app.kubernetes.io/name"]!.GetValue<string>());
            Assert.Equal("0.1.0", m.Object["metadata"]!["labels"]!["app.kubernetes.io/version"]!.GetValue<string>());
        }

        Assert.Contains("kubectl get appdeployments -A", chart.Notes, StringComparison.Ordinal);
    }

    [Fact]
    public void Every_rendered_template_is_valid_YAML_for_YamlDotNet_too()
    {
        // Independent of the renderer's own parse (the operator's strict reader): YamlDotNet's representation model.
        var chart = Render("serviceMonitor: { enabled: true }\nprometheusRule: { enabled: true }\ngrafanaDashboard: { enabled: true }\n");
        foreach (var (file, text) in chart.Files.Where(f => f.Key.EndsWith(".yaml", StringComparison.Ordinal)))
        {
            var stream = new YamlStream();
            var e = Record.Exception(() => stream.Load(new StringReader(text)));
            Assert.True(e is null, $"{file}: {e?.Message}\n{text}");
            Assert.All(stream.Documents, d => Assert.IsType<YamlMappingNode>(d.RootNode));
        }
    }

    [Fact]
    public void Chart_CRDs_are_byte_identical_to_the_generated_ones()
    {
        var generated = Directory.GetFiles(RepoPaths.Crds, "*.yaml").Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray();
        var shipped = Directory.GetFiles(Path.Combine(ChartDir, "crds"), "*.yaml").Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(generated, shipped);
        foreach (var file in generated)
        {
            Assert.True(
                File.ReadAllBytes(Path.Combine(RepoPaths.Crds, file!)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(ChartDir, "crds", file!))),
                $"charts/skiff/crds/{file} differs from crds/{file}: cp crds/*.yaml charts/skiff/crds/");
        }
    }

    [Fact]
    public void ServiceMonitor_PrometheusRule_and_dashboard_appear_only_when_enabled()
    {
        var off = Render();
        Assert.Empty(off.OfKind("ServiceMonitor"));
        Assert.Empty(off.OfKind("PrometheusRule"));
        Assert.Empty(off.OfKind("ConfigMap"));

        var on = Render("""
            serviceMonitor:
              enabled: true
              interval: 15s
              labels: { release: kube-prometheus-stack }
            prometheusRule:
              enabled: true
              labels: { release: kube-prometheus-stack }
            grafanaDashboard:
              enabled: true
            """);
        var monitor = on.Single("ServiceMonitor").Object;
        Assert.Equal("kube-prometheus-stack", monitor["metadata"]!["labels"]!["release"]!.GetValue<string>());
        var endpoint = monitor["spec"]!["endpoints"]![0]!;
        Assert.Equal("metrics", endpoint["port"]!.GetValue<string>());
        Assert.Equal("/metrics", endpoint["path"]!.GetValue<string>());
        Assert.Equal("15s", endpoint["interval"]!.GetValue<string>());
        Assert.Equal("skiff", monitor["spec"]!["selector"]!["matchLabels"]!["app.kubernetes.io/name"]!.GetValue<string>());

        var rule = on.Single("PrometheusRule").Object;
        Assert.Equal("kube-prometheus-stack", rule["metadata"]!["labels"]!["release"]!.GetValue<string>());
        var alerts = rule["spec"]!["groups"]![0]!["rules"]!.AsArray().ToDictionary(r => r!["alert"]!.GetValue<string>(), r => r!);
        Assert.Equal("skiff_appdeployment_ready == 0", alerts["SkiffAppDeploymentNotReady"]["expr"]!.GetValue<string>());
        Assert.Equal("10m", alerts["SkiffAppDeploymentNotReady"]["for"]!.GetValue<string>());
        Assert.Equal("skiff_disk_usage_ratio > 0.85", alerts["SkiffDiskPressure"]["expr"]!.GetValue<string>());
        Assert.Contains("controller_runtime_reconcile_errors_total", alerts["SkiffReconcileErrors"]["expr"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Contains("skiff_image_gc_runs_total{result=\"error\"}", alerts["SkiffImageGCFailing"]["expr"]!.GetValue<string>(), StringComparison.Ordinal);
        // Prometheus's own templates survive Helm's: {{ $labels.x }} reaches Prometheus as it is.
        Assert.Equal("AppDeployment {{ $labels.namespace }}/{{ $labels.name }} is not Ready",
            alerts["SkiffAppDeploymentNotReady"]["annotations"]!["summary"]!.GetValue<string>());

        var dashboard = on.Single("ConfigMap").Object;
        Assert.Equal("1", dashboard["metadata"]!["labels"]!["grafana_dashboard"]!.GetValue<string>());
        Assert.Equal(File.ReadAllText(Path.Combine(ChartDir, "dashboards", "skiff.json")).TrimEnd('\n'), dashboard["data"]!["skiff.json"]!.GetValue<string>());
    }

    [Fact]
    public void DaemonSet_serves_each_node_through_its_Docker_socket_on_the_host_network()
    {
        var ds = Render().Single("DaemonSet").Object;
        var pod = ds["spec"]!["template"]!["spec"]!;
        Assert.True(pod["hostNetwork"]!.GetValue<bool>());
        Assert.Equal("ClusterFirstWithHostNet", pod["dnsPolicy"]!.GetValue<string>());
        Assert.Equal("skiff", pod["serviceAccountName"]!.GetValue<string>());
        Assert.Equal("Exists", pod["tolerations"]![0]!["operator"]!.GetValue<string>());

        var container = pod["containers"]!.AsArray().Single()!;
        Assert.Equal("registry.example.com/skiff/skiff:0.1.0", container["image"]!.GetValue<string>());
        var nodeName = container["env"]!.AsArray().Single(e => e!["name"]!.GetValue<string>() == "NODE_NAME")!;
        Assert.Equal("spec.nodeName", nodeName["valueFrom"]!["fieldRef"]!["fieldPath"]!.GetValue<string>());

        var args = container["args"]!.AsArray().Select(a => a!.GetValue<string>()).ToList();
        Assert.Equal(["run", "--source", "kubernetes", "--node", "$(NODE_NAME)"], args.Take(5));
        Assert.Equal(Namespace, args[args.IndexOf("--leader-election-namespace") + 1]);
        Assert.Equal("/var/lib/skiff", args[args.IndexOf("--state-dir") + 1]);
        Assert.Equal("unix:///var/run/docker.sock", args[args.IndexOf("--docker-host") + 1]);
        Assert.Equal(":8080", args[args.IndexOf("--metrics-bind-address") + 1]);
        Assert.Equal(":8081", args[args.IndexOf("--health-probe-bind-address") + 1]);
        // Every flag the chart passes exists and parses: a renamed flag would crash-loop every pod.
        var parse = SkiffCommandLine.Build().Parse(args);
        Assert.True(parse.Errors.Count == 0, string.Join("; ", parse.Errors.Select(e => e.Message)));

        var ports = container["ports"]!.AsArray().ToDictionary(p => p!["name"]!.GetValue<string>(), p => p!["containerPort"]!.GetValue<long>());
        Assert.Equal(8080L, ports["metrics"]);
        Assert.Equal(8081L, ports["health"]);
        Assert.Equal("/healthz", container["livenessProbe"]!["httpGet"]!["path"]!.GetValue<string>());
        Assert.Equal("health", container["livenessProbe"]!["httpGet"]!["port"]!.GetValue<string>());
        Assert.Equal("/readyz", container["readinessProbe"]!["httpGet"]!["path"]!.GetValue<string>());
        Assert.Equal("health", container["readinessProbe"]!["httpGet"]!["port"]!.GetValue<string>());
        Assert.True(container["livenessProbe"]!["timeoutSeconds"]!.GetValue<long>() > 3, "probes must outlast a health check's 3 s");
        Assert.NotNull(container["resources"]!["requests"]!["memory"]);
        Assert.NotNull(container["resources"]!["limits"]!["memory"]);

        var security = container["securityContext"]!;
        Assert.True(security["readOnlyRootFilesystem"]!.GetValue<bool>());
        Assert.False(security["allowPrivilegeEscalation"]!.GetValue<bool>());
        Assert.Equal(["ALL"], security["capabilities"]!["drop"]!.AsArray().Select(c => c!.GetValue<string>()));
        Assert.Equal(0L, pod["securityContext"]!["runAsUser"]!.GetValue<long>());

        var volumes = pod["volumes"]!.AsArray().ToDictionary(v => v!["name"]!.GetValue<string>(), v => v!);
        var mounts = container["volumeMounts"]!.AsArray().ToDictionary(m => m!["mountPath"]!.GetValue<string>(), m => m!);
        void HostPath(string mountPath, string hostPath, string type, bool readOnly)
        {
            Assert.True(mounts.TryGetValue(mountPath, out var mount), $"nothing mounted at {mountPath}");
            var volume = volumes[mount!["name"]!.GetValue<string>()];
            Assert.Equal(hostPath, volume["hostPath"]!["path"]!.GetValue<string>());
            Assert.Equal(type, volume["hostPath"]!["type"]!.GetValue<string>());
            Assert.Equal(readOnly, mount["readOnly"]?.GetValue<bool>() ?? false);
        }

        HostPath("/var/run/docker.sock", "/var/run/docker.sock", "Socket", readOnly: false);
        HostPath("/var/lib/skiff", "/var/lib/skiff", "DirectoryOrCreate", readOnly: false);
        HostPath("/var/lib/docker", "/var/lib/docker", "Directory", readOnly: true);
        Assert.NotNull(volumes[mounts["/tmp"]["name"]!.GetValue<string>()]["emptyDir"]);
    }

    [Fact]
    public void Values_and_templates_agree_on_every_key()
    {
        var templates = string.Concat(Directory.GetFiles(Path.Combine(ChartDir, "templates")).Select(File.ReadAllText));
        var referenced = ValuesReference().Matches(templates).Select(m => m.Groups[1].Value).ToHashSet(StringComparer.Ordinal);
        var values = (JsonObject)Skiff.Yaml.YamlReader.Read(File.ReadAllText(Path.Combine(ChartDir, "values.yaml"))).Single().Root!;

        // Every reference resolves (an `if` on a misspelt key would be silently false).
        foreach (var path in referenced)
        {
            JsonNode? node = values;
            foreach (var key in path.Split('.'))
            {
                node = (node as JsonObject)?[key];
            }

            Assert.True(node is not null, $".Values.{path} is used by a template but not set in values.yaml");
        }

        // Every top-level value is used.
        foreach (var (key, _) in values)
        {
            Assert.True(referenced.Any(r => r == key || r.StartsWith(key + ".", StringComparison.Ordinal)), $"values.yaml sets {key}, which no template uses");
        }
    }

    [Fact]
    public void Rbac_has_no_wildcards_and_binds_the_operator_service_account()
    {
        var chart = Render();
        Assert.NotEmpty(chart.RbacRules);
        foreach (var rule in chart.RbacRules)
        {
            Assert.DoesNotContain("*", rule.ApiGroups.Concat(rule.Resources).Concat(rule.Verbs).Concat(rule.NonResourceUrls));
            Assert.Empty(rule.NonResourceUrls);
            Assert.DoesNotContain("escalate", rule.Verbs);
            Assert.DoesNotContain("bind", rule.Verbs);
            Assert.DoesNotContain("impersonate", rule.Verbs);
        }

        Assert.DoesNotContain(chart.RbacRules, r => r.Resources.Contains("secrets") && (r.Verbs.Contains("list") || r.Verbs.Contains("watch")));
        Assert.All(chart.OfKind("Role"), r => Assert.Equal(Namespace, r.Namespace));

        foreach (var binding in chart.Manifests.Where(m => m.Kind is "ClusterRoleBinding" or "RoleBinding"))
        {
            var roleRef = binding.Object["roleRef"]!;
            var kind = roleRef["kind"]!.GetValue<string>();
            Assert.Equal(binding.Kind == "RoleBinding" ? "Role" : "ClusterRole", kind);
            Assert.Contains(chart.OfKind(kind), r => r.Name == roleRef["name"]!.GetValue<string>());
            var subject = binding.Object["subjects"]!.AsArray().Single()!;
            Assert.Equal("ServiceAccount", subject["kind"]!.GetValue<string>());
            Assert.Equal(chart.Single("ServiceAccount").Name, subject["name"]!.GetValue<string>());
            Assert.Equal(Namespace, subject["namespace"]!.GetValue<string>());
        }
    }

    [Fact]
    public void Dashboard_and_alerts_use_only_metrics_the_operator_exports()
    {
        var exported = ExportedMetrics();
        Assert.Contains("workqueue_depth", exported);

        var dashboard = JsonNode.Parse(File.ReadAllText(Path.Combine(ChartDir, "dashboards", "skiff.json")))!;
        var exprs = dashboard["panels"]!.AsArray()
            .SelectMany(p => p!["targets"]?.AsArray() ?? [])
            .Select(t => t!["expr"]!.GetValue<string>())
            .ToList();
        Assert.NotEmpty(exprs);
        var rules = Render("prometheusRule: { enabled: true }").Single("PrometheusRule").Object["spec"]!["groups"]![0]!["rules"]!.AsArray()
            .Select(r => r!["expr"]!.GetValue<string>());

        var used = new HashSet<string>(StringComparer.Ordinal);
        foreach (var expr in exprs.Concat(rules))
        {
            var names = MetricNames(expr);
            Assert.True(names.Count > 0, $"no metric in {expr}");
            foreach (var name in names)
            {
                Assert.True(exported.Contains(name), $"{expr}: {name} is not exported by operator/Observability/SkiffMetrics.cs");
                used.Add(name);
            }
        }

        // What the dashboard is for, per the chart's README.
        foreach (var name in new[]
                 {
                     "controller_runtime_reconcile_total", "controller_runtime_reconcile_errors_total", "controller_runtime_reconcile_time_seconds",
                     "workqueue_depth", "skiff_rollouts_total", "skiff_rollbacks_total", "skiff_image_gc_bytes_reclaimed_total", "skiff_disk_usage_ratio",
                 })
        {
            Assert.Contains(name, used);
        }
    }

    [Fact]
    public void Dockerfile_publishes_the_operator_and_runs_its_assembly()
    {
        var dockerfile = File.ReadAllText(Path.Combine(RepoPaths.Root, "Dockerfile"));
        var assembly = Regex.Match(File.ReadAllText(Path.Combine(RepoPaths.Root, "operator", "Skiff.csproj")), "<AssemblyName>(.+)</AssemblyName>").Groups[1].Value;
        Assert.Contains("FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build", dockerfile, StringComparison.Ordinal);
        Assert.Contains("FROM mcr.microsoft.com/dotnet/aspnet:10.0", dockerfile, StringComparison.Ordinal);
        Assert.Contains("dotnet publish operator", dockerfile, StringComparison.Ordinal);
        Assert.Contains($"ENTRYPOINT [\"dotnet\", \"/app/{assembly}.dll\"]", dockerfile, StringComparison.Ordinal);
        // Every file the build copies exists (the build cannot run here, so at least the inputs are checked).
        foreach (Match copy in Regex.Matches(dockerfile, @"^COPY (?!--from)(.+) \S+$", RegexOptions.Multiline))
        {
            foreach (var source in copy.Groups[1].Value.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                Assert.True(File.Exists(Path.Combine(RepoPaths.Root, source)) || Directory.Exists(Path.Combine(RepoPaths.Root, source)), $"Dockerfile copies {source}, which does not exist");
            }
        }
    }

    /// <summary>Metric names in a PromQL expression: identifiers that are not functions, keywords, labels or durations.</summary>
    internal static HashSet<string> MetricNames(string expr)
    {
        var text = Regex.Replace(expr, "\"(?:[^\"\\\\]|\\\\.)*\"", "\"\""); // string literals
        text = Regex.Replace(text, @"\{[^}]*\}", "");                     // label matchers
        text = Regex.Replace(text, @"\[[^\]]*\]", "");                    // ranges
        text = Regex.Replace(text, @"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", ""); // label lists
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (Match m in Regex.Matches(text, @"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()"))
        {
            var word = m.Groups[1].Value;
            if (word is "and" or "or" or "unless" or "bool" or "offset" or "inf" or "nan")
            {
                continue;
            }

            names.Add(Regex.Replace(word, "_(bucket|sum|count)$", "") is var histogram && word != histogram && IsHistogramBase(histogram) ? histogram : word);
        }

        return names;
    }

    private static bool IsHistogramBase(string name) => ExportedMetrics().Contains(name);

    /// <summary>The names SkiffMetrics creates, read from its source.</summary>
    internal static HashSet<string> ExportedMetrics() =>
        MetricDefinition().Matches(File.ReadAllText(Path.Combine(RepoPaths.Root, "operator", "Observability", "SkiffMetrics.cs")))
            .Select(m => m.Groups[1].Value)
            .ToHashSet(StringComparer.Ordinal);

    [GeneratedRegex(@"\.Values\.([A-Za-z0-9_.]+)")]
    private static partial Regex ValuesReference();

    [GeneratedRegex(@"Create(?:Counter|Gauge|Histogram|Summary)\(\s*""([a-zA-Z_:][a-zA-Z0-9_:]*)""")]
    private static partial Regex MetricDefinition();
}
