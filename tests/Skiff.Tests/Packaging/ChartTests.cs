using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Skiff.Cli;
using Skiff.Tests.Resources;
using YamlDotNet.RepresentationModel;

namespace Skiff.Tests.Packaging;

/// <summary>
/// charts/skiff through the real helm (v3.17, <see cref="Helm"/>): <c>helm lint</c> and
/// <c>helm template</c> over the value combinations values.yaml and the chart's README document,
/// and the rendered objects checked one by one.
/// </summary>
public sealed partial class ChartTests
{
    private const string Namespace = "skiff-system";

    public static string ChartDir => Path.Combine(RepoPaths.Root, "charts", "skiff");

    /// <summary>Each value the chart documents (values.yaml, charts/skiff/README.md), set away from its default.</summary>
    public static TheoryData<string, string?> DocumentedValues => new()
    {
        { "defaults", null },
        { "ServiceMonitor", "serviceMonitor: { enabled: true, interval: 15s, scrapeTimeout: 5s, labels: { release: kube-prometheus-stack } }\n" },
        { "PrometheusRule", "prometheusRule: { enabled: true, labels: { release: kube-prometheus-stack }, diskUsageRatio: 0.9 }\n" },
        { "Grafana dashboard", "grafanaDashboard: { enabled: true, labels: { grafana_dashboard: \"1\" }, annotations: { grafana_folder: Skiff } }\n" },
        { "monitoring all on", "serviceMonitor: { enabled: true }\nprometheusRule: { enabled: true }\ngrafanaDashboard: { enabled: true }\n" },
        { "image", ImageValues },
        { "scheduling", SchedulingValues },
        { "operator flags", FlagValues },
        { "host paths", HostPathValues },
        { "non-root in the docker group", NonRootValues },
        { "service, account, resources", ServiceValues },
        { "no tolerations", "tolerations: []\n" },
    };

    private const string ImageValues = """
        image: { repository: ghcr.io/acme/skiff, tag: "1.2.3", pullPolicy: Always }
        imagePullSecrets: [{ name: ghcr-pull }]
        """;

    private const string SchedulingValues = """
        tolerations:
          - key: node-role.kubernetes.io/control-plane
            operator: Exists
            effect: NoSchedule
        nodeSelector: { skiff.dev/docker: "true" }
        affinity:
          nodeAffinity:
            requiredDuringSchedulingIgnoredDuringExecution:
              nodeSelectorTerms:
                - matchExpressions: [{ key: kubernetes.io/arch, operator: In, values: [amd64] }]
        priorityClassName: system-node-critical
        podLabels: { team: platform }
        podAnnotations: { prometheus.io/scrape: "false" }
        updateStrategy: { type: OnDelete }
        """;

    private const string FlagValues = """
        logLevel: debug
        extraArgs: ["--leader-elect"]
        extraEnv:
          - name: SKIFF_Serilog__MinimumLevel__Override__Skiff.ImageGC
            value: Debug
        leaderElection: { leaseDuration: 20, renewDeadline: 15, retryPeriod: 3 }
        metrics: { port: 9180 }
        health: { port: 9181 }
        proxy: { httpPort: 8880, httpsPort: 8443 }
        network: { pool: 172.30.0.0/20, prefix: 28 }
        """;

    private const string HostPathValues = """
        docker: { socket: /run/docker.sock, dataRoot: /srv/docker }
        stateDir: /srv/skiff-state
        """;

    private const string NonRootValues = """
        podSecurityContext:
          runAsUser: 1000
          runAsGroup: 1000
          runAsNonRoot: true
          supplementalGroups: [998]
          seccompProfile: { type: RuntimeDefault }
        """;

    private const string ServiceValues = """
        service: { type: NodePort, annotations: { prometheus.io/scrape: "true" } }
        serviceAccount: { annotations: { team: platform } }
        resources: { requests: { cpu: 100m, memory: 256Mi }, limits: { memory: 512Mi } }
        """;

    private static RenderedChart Render(string? values = null) => Helm.Template(ChartDir, "skiff", Namespace, values);

    [Theory]
    [MemberData(nameof(DocumentedValues))]
    public void Helm_lint_passes_with_every_documented_value_combination(string combination, string? values)
    {
        var lint = Helm.Lint(ChartDir, values);
        Assert.True(lint.ExitCode == 0, $"{combination}: {lint}");
        Assert.Contains("1 chart(s) linted, 0 chart(s) failed", lint.Stdout + lint.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Helm_lint_fails_on_values_that_break_a_template()
    {
        // The check above can fail: an unquoted flow sequence in the args is a YAML error helm reports.
        var lint = Helm.Lint(ChartDir, "logLevel: \"[oops\"\n");
        Assert.NotEqual(0, lint.ExitCode);
        Assert.Contains("templates/daemonset.yaml", lint.Stdout + lint.Stderr, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(DocumentedValues))]
    public void Every_documented_value_combination_renders_labelled_objects_in_the_release_namespace(string combination, string? values)
    {
        var chart = Render(values);
        Assert.True(chart.Manifests.Count >= 7, $"{combination}: {string.Join(", ", chart.Manifests)}");
        foreach (var m in chart.Manifests)
        {
            Assert.True(m.Kind is "ClusterRole" or "ClusterRoleBinding" || m.Namespace == Namespace, $"{combination}: {m} is not in the release namespace");
            Assert.Equal("skiff", m.Object["metadata"]!["labels"]!["app.kubernetes.io/name"]!.GetValue<string>());
            Assert.Equal("skiff", m.Object["metadata"]!["labels"]!["app.kubernetes.io/instance"]!.GetValue<string>());
        }

        // Whatever the values, the flags the chart passes parse: a bad one would crash-loop every pod.
        var args = Container(chart)["args"]!.AsArray().Select(a => a!.GetValue<string>()).ToList();
        var parse = SkiffCommandLine.Build().Parse(args);
        Assert.True(parse.Errors.Count == 0, $"{combination}: " + string.Join("; ", parse.Errors.Select(e => e.Message)));
    }

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

        Assert.Contains("kubectl get appdeployments -A", Helm.Notes(ChartDir, "skiff", Namespace), StringComparison.Ordinal);
    }

    [Fact]
    public void Objects_take_the_release_name_and_namespace()
    {
        var chart = Helm.Template(ChartDir, "ops", "infra");
        Assert.Equal(
            [
                "ClusterRole/ops", "ClusterRoleBinding/ops", "DaemonSet/ops", "Role/ops-leader-election",
                "RoleBinding/ops-leader-election", "Service/ops-metrics", "ServiceAccount/ops",
            ],
            chart.Manifests.Select(m => $"{m.Kind}/{m.Name}").Order(StringComparer.Ordinal).ToArray());
        Assert.All(chart.Manifests.Where(m => m.Kind is not ("ClusterRole" or "ClusterRoleBinding")), m => Assert.Equal("infra", m.Namespace));
        var args = Container(chart)["args"]!.AsArray().Select(a => a!.GetValue<string>()).ToList();
        Assert.Equal("infra", args[args.IndexOf("--leader-election-namespace") + 1]);
        Assert.Equal("ops", chart.Single("DaemonSet").Object["spec"]!["template"]!["spec"]!["serviceAccountName"]!.GetValue<string>());
        Assert.Contains("DaemonSet infra/ops", Helm.Notes(ChartDir, "ops", "infra"), StringComparison.Ordinal);
    }

    [Fact]
    public void Every_rendered_template_is_valid_YAML_for_YamlDotNet_too()
    {
        // Independent of Helm.Parse's reading (the operator's strict reader): YamlDotNet's representation model.
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

        // What helm installs is those files as they are, and only with --include-crds in a template.
        Assert.DoesNotContain(Render().Manifests, m => m.Kind == "CustomResourceDefinition");
        var crds = Helm.Template(ChartDir, "skiff", Namespace, includeCrds: true).OfKind("CustomResourceDefinition").ToList();
        Assert.Equal(generated.Select(f => $"crds/{f}"), crds.Select(c => c.Template).Order(StringComparer.Ordinal));
        foreach (var crd in crds)
        {
            Assert.True(crd.Text == File.ReadAllText(Path.Combine(RepoPaths.Root, crd.Template)), $"helm prints {crd.Template} differently from crds/");
        }

        Assert.Equal(["appdeployments.skiff.dev", "imagegcpolicies.skiff.dev"], crds.Select(c => c.Name).Order(StringComparer.Ordinal));
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
        Assert.Equal("skiff_certificate_expiry_timestamp_seconds - time() < 14 * 86400", alerts["SkiffCertificateExpiringSoon"]["expr"]!.GetValue<string>());
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
    public void Monitoring_values_reach_the_ServiceMonitor_PrometheusRule_and_dashboard()
    {
        var monitor = Render("serviceMonitor: { enabled: true, interval: 15s, scrapeTimeout: 5s }\n").Single("ServiceMonitor").Object;
        var endpoint = monitor["spec"]!["endpoints"]![0]!;
        Assert.Equal("5s", endpoint["scrapeTimeout"]!.GetValue<string>());
        Assert.Equal("instance", endpoint["relabelings"]![0]!["targetLabel"]!.GetValue<string>());
        Assert.Equal([Namespace], monitor["spec"]!["namespaceSelector"]!["matchNames"]!.AsArray().Select(n => n!.GetValue<string>()));

        var rule = Render("prometheusRule: { enabled: true, diskUsageRatio: 0.9 }\n").Single("PrometheusRule").Object;
        var disk = rule["spec"]!["groups"]![0]!["rules"]!.AsArray().Single(r => r!["alert"]!.GetValue<string>() == "SkiffDiskPressure")!;
        Assert.Equal("skiff_disk_usage_ratio > 0.9", disk["expr"]!.GetValue<string>());
        Assert.Equal("critical", disk["labels"]!["severity"]!.GetValue<string>());

        var dashboard = Render("grafanaDashboard: { enabled: true, labels: { dashboards: skiff }, annotations: { grafana_folder: Skiff } }\n").Single("ConfigMap").Object;
        Assert.Equal("skiff-dashboard", dashboard["metadata"]!["name"]!.GetValue<string>());
        Assert.Equal("skiff", dashboard["metadata"]!["labels"]!["dashboards"]!.GetValue<string>());
        Assert.Equal("Skiff", dashboard["metadata"]!["annotations"]!["grafana_folder"]!.GetValue<string>());
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
    public void Image_values_reach_the_container()
    {
        var chart = Render(ImageValues);
        var pod = chart.Single("DaemonSet").Object["spec"]!["template"]!["spec"]!;
        var container = Container(chart);
        Assert.Equal("ghcr.io/acme/skiff:1.2.3", container["image"]!.GetValue<string>());
        Assert.Equal("Always", container["imagePullPolicy"]!.GetValue<string>());
        Assert.Equal("ghcr-pull", pod["imagePullSecrets"]!.AsArray().Single()!["name"]!.GetValue<string>());
        Assert.Null(Render().Single("DaemonSet").Object["spec"]!["template"]!["spec"]!["imagePullSecrets"]);
    }

    [Fact]
    public void Scheduling_values_reach_the_pods()
    {
        var ds = Render(SchedulingValues).Single("DaemonSet").Object["spec"]!;
        var pod = ds["template"]!["spec"]!;
        var toleration = pod["tolerations"]!.AsArray().Single()!;
        Assert.Equal("node-role.kubernetes.io/control-plane", toleration["key"]!.GetValue<string>());
        Assert.Equal("NoSchedule", toleration["effect"]!.GetValue<string>());
        Assert.Equal("true", pod["nodeSelector"]!["skiff.dev/docker"]!.GetValue<string>());
        var term = pod["affinity"]!["nodeAffinity"]!["requiredDuringSchedulingIgnoredDuringExecution"]!["nodeSelectorTerms"]![0]!;
        Assert.Equal("kubernetes.io/arch", term["matchExpressions"]![0]!["key"]!.GetValue<string>());
        Assert.Equal("system-node-critical", pod["priorityClassName"]!.GetValue<string>());
        var metadata = ds["template"]!["metadata"]!;
        Assert.Equal("platform", metadata["labels"]!["team"]!.GetValue<string>());
        Assert.Equal("skiff", metadata["labels"]!["app.kubernetes.io/name"]!.GetValue<string>());
        Assert.Equal("false", metadata["annotations"]!["prometheus.io/scrape"]!.GetValue<string>());
        Assert.Equal("skiff", metadata["annotations"]!["kubectl.kubernetes.io/default-container"]!.GetValue<string>());
        Assert.Equal("OnDelete", ds["updateStrategy"]!["type"]!.GetValue<string>());
        // The selector stays the two immutable labels whatever podLabels adds.
        Assert.Equal(["app.kubernetes.io/instance", "app.kubernetes.io/name"], ds["selector"]!["matchLabels"]!.AsObject().Select(p => p.Key).Order(StringComparer.Ordinal));

        var defaults = Render().Single("DaemonSet").Object["spec"]!["template"]!["spec"]!;
        Assert.Null(defaults["nodeSelector"]);
        Assert.Null(defaults["affinity"]);
        Assert.Null(defaults["priorityClassName"]);
        Assert.Null(Render("tolerations: []\n").Single("DaemonSet").Object["spec"]!["template"]!["spec"]!["tolerations"]);
    }

    [Fact]
    public void Flag_values_become_skiff_run_arguments_after_the_charts_own()
    {
        var chart = Render(FlagValues);
        var container = Container(chart);
        var args = container["args"]!.AsArray().Select(a => a!.GetValue<string>()).ToList();
        Assert.Equal("debug", args[args.IndexOf("--log-level") + 1]);
        Assert.Equal("--leader-elect", args[^1]);
        Assert.Equal("20", args[args.IndexOf("--leader-election-lease-duration") + 1]);
        Assert.Equal("15", args[args.IndexOf("--leader-election-renew-deadline") + 1]);
        Assert.Equal("3", args[args.IndexOf("--leader-election-retry-period") + 1]);
        Assert.Equal(":9180", args[args.IndexOf("--metrics-bind-address") + 1]);
        Assert.Equal(":9181", args[args.IndexOf("--health-probe-bind-address") + 1]);
        Assert.Equal("8880", args[args.IndexOf("--proxy-http-port") + 1]);
        Assert.Equal("8443", args[args.IndexOf("--proxy-https-port") + 1]);
        Assert.Equal("172.30.0.0/20", args[args.IndexOf("--network-pool") + 1]);
        Assert.Equal("28", args[args.IndexOf("--network-prefix") + 1]);
        var parse = SkiffCommandLine.Build().Parse(args);
        Assert.True(parse.Errors.Count == 0, string.Join("; ", parse.Errors.Select(e => e.Message)));

        var env = container["env"]!.AsArray().ToDictionary(e => e!["name"]!.GetValue<string>(), e => e!);
        Assert.Equal("Debug", env["SKIFF_Serilog__MinimumLevel__Override__Skiff.ImageGC"]["value"]!.GetValue<string>());
        Assert.NotNull(env["NODE_NAME"]["valueFrom"]);

        var ports = container["ports"]!.AsArray().ToDictionary(p => p!["name"]!.GetValue<string>(), p => p!["containerPort"]!.GetValue<long>());
        Assert.Equal(9180L, ports["metrics"]);
        Assert.Equal(9181L, ports["health"]);
        Assert.Equal(9180L, chart.Single("Service").Object["spec"]!["ports"]![0]!["port"]!.GetValue<long>());
    }

    [Fact]
    public void Host_path_values_move_the_socket_data_root_and_state_folder()
    {
        var chart = Render(HostPathValues);
        var pod = chart.Single("DaemonSet").Object["spec"]!["template"]!["spec"]!;
        var container = Container(chart);
        var args = container["args"]!.AsArray().Select(a => a!.GetValue<string>()).ToList();
        Assert.Equal("unix:///run/docker.sock", args[args.IndexOf("--docker-host") + 1]);
        Assert.Equal("/srv/skiff-state", args[args.IndexOf("--state-dir") + 1]);

        var volumes = pod["volumes"]!.AsArray().ToDictionary(v => v!["name"]!.GetValue<string>(), v => v!);
        var mounts = container["volumeMounts"]!.AsArray().ToDictionary(m => m!["mountPath"]!.GetValue<string>(), m => m!);
        Assert.Equal("/run/docker.sock", volumes[mounts["/run/docker.sock"]["name"]!.GetValue<string>()]["hostPath"]!["path"]!.GetValue<string>());
        Assert.Equal("/srv/docker", volumes[mounts["/srv/docker"]["name"]!.GetValue<string>()]["hostPath"]!["path"]!.GetValue<string>());
        Assert.True(mounts["/srv/docker"]["readOnly"]!.GetValue<bool>());
        // The state folder is at the same path in the pod as on the host: the node proxy's container bind-mounts its
        // proxy/ folder by the path the operator knows.
        Assert.Equal("/srv/skiff-state", volumes[mounts["/srv/skiff-state"]["name"]!.GetValue<string>()]["hostPath"]!["path"]!.GetValue<string>());
        Assert.DoesNotContain("/var/run/docker.sock", mounts.Keys);
        Assert.DoesNotContain("/var/lib/docker", mounts.Keys);
    }

    [Fact]
    public void Backup_folders_are_host_folders_at_the_same_path_in_the_pod()
    {
        foreach (var (values, dirs) in new[] { ("", new[] { "/var/backups/skiff" }), ("backupDirs: [/srv/dumps, /mnt/nas/pg]\n", ["/srv/dumps", "/mnt/nas/pg"]) })
        {
            var chart = Render(values);
            var volumes = chart.Single("DaemonSet").Object["spec"]!["template"]!["spec"]!["volumes"]!.AsArray()
                .ToDictionary(v => v!["name"]!.GetValue<string>(), v => v!);
            var mounts = Container(chart)["volumeMounts"]!.AsArray().ToDictionary(m => m!["mountPath"]!.GetValue<string>(), m => m!);
            foreach (var dir in dirs)
            {
                // A backup written where no host folder is mounted would stay in the pod and go with it.
                Assert.Equal(dir, volumes[mounts[dir]["name"]!.GetValue<string>()]["hostPath"]!["path"]!.GetValue<string>());
            }
        }
    }

    [Fact]
    public void Security_service_account_and_resource_values_reach_their_objects()
    {
        var pod = Render(NonRootValues).Single("DaemonSet").Object["spec"]!["template"]!["spec"]!;
        Assert.Equal(1000L, pod["securityContext"]!["runAsUser"]!.GetValue<long>());
        Assert.True(pod["securityContext"]!["runAsNonRoot"]!.GetValue<bool>());
        Assert.Equal(998L, pod["securityContext"]!["supplementalGroups"]![0]!.GetValue<long>());

        var chart = Render(ServiceValues);
        var service = chart.Single("Service").Object;
        Assert.Equal("NodePort", service["spec"]!["type"]!.GetValue<string>());
        Assert.Equal("true", service["metadata"]!["annotations"]!["prometheus.io/scrape"]!.GetValue<string>());
        Assert.Equal("metrics", service["spec"]!["ports"]![0]!["targetPort"]!.GetValue<string>());
        Assert.Equal("platform", chart.Single("ServiceAccount").Object["metadata"]!["annotations"]!["team"]!.GetValue<string>());
        var resources = Container(chart)["resources"]!;
        Assert.Equal("100m", resources["requests"]!["cpu"]!.GetValue<string>());
        Assert.Equal("512Mi", resources["limits"]!["memory"]!.GetValue<string>());

        var defaults = Render();
        Assert.Equal("ClusterIP", defaults.Single("Service").Object["spec"]!["type"]!.GetValue<string>());
        Assert.Null(defaults.Single("Service").Object["metadata"]!["annotations"]);
        Assert.Null(defaults.Single("ServiceAccount").Object["metadata"]!["annotations"]);
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
        // Self-contained (the runtime and ASP.NET Core are compiled into the NativeAOT executable, which the linker in
        // the build stage needs clang and zlib for) on the native dependencies alone, started by that executable,
        // which carries the assembly's name. (Until 2026-12-05 the image shipped a composite ReadyToRun publish, which
        // this test pinned; NativeAOT replaced it once the suite passed against the native executable.)
        Assert.Contains("FROM mcr.microsoft.com/dotnet/runtime-deps:10.0", dockerfile, StringComparison.Ordinal);
        Assert.Contains("dotnet publish operator", dockerfile, StringComparison.Ordinal);
        Assert.Contains("-p:PublishAot=true", dockerfile, StringComparison.Ordinal);
        Assert.Matches(@"apt-get install [^\n]*clang zlib1g-dev", dockerfile);
        Assert.Contains($"cp /out/{assembly} /app/", dockerfile, StringComparison.Ordinal);
        Assert.Contains($"ENTRYPOINT [\"/app/{assembly}\"]", dockerfile, StringComparison.Ordinal);
        // Every file the build copies exists (the build cannot run here, so at least the inputs are checked).
        foreach (Match copy in Regex.Matches(dockerfile, @"^COPY (?!--from)(.+) \S+$", RegexOptions.Multiline))
        {
            foreach (var source in copy.Groups[1].Value.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                Assert.True(File.Exists(Path.Combine(RepoPaths.Root, source)) || Directory.Exists(Path.Combine(RepoPaths.Root, source)), $"Dockerfile copies {source}, which does not exist");
            }
        }
    }

    private static JsonNode Container(RenderedChart chart) =>
        chart.Single("DaemonSet").Object["spec"]!["template"]!["spec"]!["containers"]!.AsArray().Single()!;

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

    /// <summary>The names the operator's /metrics (SkiffMetrics, the Git source's, the certificates') and the node proxy's /metrics create, read from their sources.</summary>
    internal static HashSet<string> ExportedMetrics() =>
        new[] { Path.Combine("Observability", "SkiffMetrics.cs"), Path.Combine("Sources", "Git", "GitMetrics.cs"), Path.Combine("Proxy", "ProxyMetrics.cs"), Path.Combine("Acme", "CertificateMetrics.cs") }
            .SelectMany(file => MetricDefinition().Matches(File.ReadAllText(Path.Combine(RepoPaths.Root, "operator", file))))
            .Select(m => m.Groups[1].Value)
            .ToHashSet(StringComparer.Ordinal);

    [GeneratedRegex(@"\.Values\.([A-Za-z0-9_.]+)")]
    private static partial Regex ValuesReference();

    [GeneratedRegex(@"Create(?:Counter|Gauge|Histogram|Summary)\(\s*""([a-zA-Z_:][a-zA-Z0-9_:]*)""")]
    private static partial Regex MetricDefinition();
}
