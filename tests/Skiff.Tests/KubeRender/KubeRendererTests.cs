using k8s;
using k8s.Models;
using Skiff.Api;
using Skiff.KubeRender;
using Skiff.Reconcile;
using Skiff.Tests.Resources;
using Skiff.Yaml;

namespace Skiff.Tests.KubeRender;

/// <summary>
/// The <c>runtime: kubernetes</c> renderers (DESIGN §8) on the seed stacks (examples/stacks): golden files, the
/// KubernetesClient models' round trip, and the properties the design names.
/// </summary>
public class KubeRendererTests
{
    private const string Uid = "8d3f0c4e-0000-4000-8000-000000000001";
    private const string Hint = "run the KubeRender tests with SKIFF_UPDATE_GOLDEN=1, review the diff and commit it";

    private static string Golden => Path.Combine(RepoPaths.Root, "tests", "Skiff.Tests", "KubeRender", "golden");

    [Theory]
    [InlineData("prod/api", "api-postgres.yaml")]
    [InlineData("bots/bot", "bot-redis.yaml")]
    public void The_seed_stacks_render_as_the_golden_files(string key, string file)
    {
        var yaml = ToYaml(Render(key));
        var path = Path.Combine(Golden, file);
        if (Environment.GetEnvironmentVariable("SKIFF_UPDATE_GOLDEN") == "1")
        {
            File.WriteAllText(path, yaml);
        }

        Assert.True(File.Exists(path), $"{path} is missing; {Hint}");
        var expected = File.ReadAllText(path);
        if (expected != yaml)
        {
            Assert.Fail($"{file} differs from what the renderer produces; {Hint}\n--- rendered:\n{yaml}");
        }

        // The file is a valid multi-document stream that KubernetesClient reads back as the same kinds.
        var loaded = KubernetesYaml.LoadAllFromString(expected, strict: true);
        Assert.Equal(Render(key).All().Select(o => o.GetType()), loaded.Select(o => o.GetType()));
    }

    [Theory]
    [InlineData("prod/api")]
    [InlineData("bots/bot")]
    public void Every_rendered_object_round_trips_through_the_models(string key)
    {
        var objects = Render(key).All().ToList();
        Assert.NotEmpty(objects);
        foreach (var obj in objects)
        {
            var yaml = KubernetesYaml.Serialize(obj);
            object back = obj switch
            {
                V1Deployment => KubernetesYaml.Deserialize<V1Deployment>(yaml),
                V1Job => KubernetesYaml.Deserialize<V1Job>(yaml),
                V1StatefulSet => KubernetesYaml.Deserialize<V1StatefulSet>(yaml),
                V1Service => KubernetesYaml.Deserialize<V1Service>(yaml),
                V1NetworkPolicy => KubernetesYaml.Deserialize<V1NetworkPolicy>(yaml),
                V1Secret => KubernetesYaml.Deserialize<V1Secret>(yaml),
                _ => throw new InvalidOperationException($"no round trip for {obj.GetType().Name}"),
            };
            Assert.Equal(yaml, KubernetesYaml.Serialize(back));
            Assert.False(string.IsNullOrEmpty(obj.ApiVersion), $"{obj.Kind} {obj.Metadata.Name}: apiVersion");
            Assert.False(string.IsNullOrEmpty(obj.Kind), $"{obj.Metadata.Name}: kind");
        }
    }

    /// <summary>
    /// The real kubectl sends each golden object to the test API server with <c>--dry-run=server --validate=strict</c>: it is
    /// decoded as kube-apiserver decodes the kind (by the typed fields of the KubernetesClient model, generated from the
    /// upstream OpenAPI), so an unknown or mistyped field fails here as it would on a cluster.
    /// </summary>
    [Theory]
    [InlineData("api-postgres.yaml")]
    [InlineData("bot-redis.yaml")]
    public async Task The_golden_files_pass_kubectls_strict_validation_against_the_api_server(string file)
    {
        await using var server = await TestApiServer.TestApiServer.StartAsync(new TestApiServer.TestApiServerOptions { Namespaces = ["prod", "bots"] });
        using var kubectl = new TestApiServer.Kubectl(server);
        var golden = File.ReadAllText(Path.Combine(Golden, file));

        var ok = await kubectl.RunAsync("apply", "--dry-run=server", "--validate=strict", "-f", kubectl.WriteFile(file, golden));
        Assert.True(ok.ExitCode == 0, ok.ToString());
        var kinds = Render(file.StartsWith("api", StringComparison.Ordinal) ? "prod/api" : "bots/bot").All().Count();
        Assert.Equal(kinds, ok.Stdout.Split('\n').Count(l => l.EndsWith("(server dry run)", StringComparison.Ordinal)));
        using var client = server.CreateClient();
        Assert.Empty((await client.AppsV1.ListDeploymentForAllNamespacesAsync()).Items);
    }

    [Fact]
    public async Task Kubectls_strict_validation_refuses_a_golden_object_with_an_unknown_or_mistyped_field()
    {
        await using var server = await TestApiServer.TestApiServer.StartAsync(new TestApiServer.TestApiServerOptions { Namespaces = ["prod"] });
        using var kubectl = new TestApiServer.Kubectl(server);
        var golden = File.ReadAllText(Path.Combine(Golden, "api-postgres.yaml"));

        var unknown = golden.Replace("spec:\n  minReadySeconds: 5\n", "spec:\n  minReadySeconds: 5\n  replicass: 1\n", StringComparison.Ordinal);
        Assert.NotEqual(golden, unknown);
        var refused = await kubectl.RunAsync("apply", "--dry-run=server", "--validate=strict", "-f", kubectl.WriteFile("unknown.yaml", unknown));
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("strict decoding error: unknown field \"spec.replicass\"", refused.Stderr, StringComparison.Ordinal);

        var mistyped = golden.Replace("- containerPort: 3000", "- containerPort: \"3000\"", StringComparison.Ordinal);
        Assert.NotEqual(golden, mistyped);
        var wrongType = await kubectl.RunAsync("apply", "--dry-run=server", "--validate=strict", "-f", kubectl.WriteFile("mistyped.yaml", mistyped));
        Assert.NotEqual(0, wrongType.ExitCode);
        Assert.Contains("cannot unmarshal string into Go struct field ContainerPort.spec.template.spec.containers.ports.containerPort of type int32", wrongType.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void The_api_stack_has_every_object_of_the_design()
    {
        var objects = Render("prod/api");
        Assert.Equal(
            ["Deployment/api", "Job/api-migrate-r7", "NetworkPolicy/api-database", "Secret/api-db", "Service/api", "Service/api-database", "StatefulSet/api-database"],
            objects.All().Select(o => $"{o.Kind}/{o.Metadata.Name}").Order(StringComparer.Ordinal));
        Assert.All(objects.All(), o => Assert.Equal("prod", o.Metadata.NamespaceProperty));
        Assert.All(objects.All(), o => Assert.Equal("skiff", o.Metadata.Labels["app.kubernetes.io/managed-by"]));
        Assert.All(objects.All(), o => Assert.Equal("api", o.Metadata.Labels["app.kubernetes.io/instance"]));
        Assert.Null(objects.Cache);
    }

    [Fact]
    public void Owner_references_point_at_the_app_deployment_except_on_the_retained_secret()
    {
        var objects = Render("prod/api");
        Assert.Null(objects.DatabaseSecret!.Metadata.OwnerReferences);
        foreach (var obj in objects.All().Where(o => o is not V1Secret))
        {
            var owner = Assert.Single(obj.Metadata.OwnerReferences);
            Assert.Equal(("skiff.dev/v1alpha1", "AppDeployment", "api", Uid, true), (owner.ApiVersion, owner.Kind, owner.Name, owner.Uid, owner.Controller == true));
        }

        // The volume claim templates carry none, and the claims stay with Retain.
        var database = objects.Database!;
        Assert.Null(Assert.Single(database.Spec.VolumeClaimTemplates).Metadata.OwnerReferences);
        Assert.Equal("Retain", database.Spec.PersistentVolumeClaimRetentionPolicy.WhenDeleted);
    }

    [Fact]
    public void With_reclaim_policy_delete_the_secret_and_the_claims_go_with_the_stack()
    {
        var resource = Seed("prod/api");
        resource.Spec.Database!.Storage!.ReclaimPolicy = ReclaimPolicies.Delete;
        var objects = KubeRenderer.Render(resource, Inputs());
        Assert.Equal("api", Assert.Single(objects.DatabaseSecret!.Metadata.OwnerReferences).Name);
        Assert.Equal("Delete", objects.Database!.Spec.PersistentVolumeClaimRetentionPolicy.WhenDeleted);
    }

    [Fact]
    public void The_network_policies_let_only_the_app_reach_the_database_and_the_cache()
    {
        var resource = Seed("prod/api");
        resource.Spec.Cache = new CacheSpec();
        var objects = KubeRenderer.Render(resource, Inputs());
        var byName = objects.NetworkPolicies.ToDictionary(p => p.Metadata.Name);
        Assert.Equal(["api-cache", "api-database"], byName.Keys.Order(StringComparer.Ordinal));
        foreach (var (component, port) in new[] { ("database", 5432), ("cache", 6379) })
        {
            var policy = byName["api-" + component];
            Assert.Equal(["Ingress"], policy.Spec.PolicyTypes);

            // It selects exactly the component's pods, as its workload does.
            var workload = component == "database" ? objects.Database! : objects.Cache!;
            Assert.Equal(workload.Spec.Selector.MatchLabels, policy.Spec.PodSelector.MatchLabels);
            Assert.True(Selects(policy.Spec.PodSelector, workload.Spec.Template.Metadata.Labels));

            var rule = Assert.Single(policy.Spec.Ingress);
            Assert.Equal(port.ToString(System.Globalization.CultureInfo.InvariantCulture), Assert.Single(rule.Ports).Port.Value);
            var from = Assert.Single(rule.FromProperty).PodSelector;
            Assert.True(Selects(from, objects.Deployment.Spec.Template.Metadata.Labels), "the app's pods are allowed");
            Assert.True(Selects(from, objects.MigrationJob!.Spec.Template.Metadata.Labels), "the migration's pods are allowed");
            Assert.False(Selects(from, objects.Database!.Spec.Template.Metadata.Labels), "the database is not");
            Assert.False(Selects(from, objects.Cache!.Spec.Template.Metadata.Labels), "the cache is not");
            var otherApp = new Dictionary<string, string>(objects.Deployment.Spec.Template.Metadata.Labels) { ["app.kubernetes.io/instance"] = "other" };
            Assert.False(Selects(from, otherApp), "another stack's app is not");
        }
    }

    [Fact]
    public void Spec_node_becomes_a_node_selector_and_no_node_none()
    {
        var objects = Render("prod/api");
        Assert.Equal("vps-1", objects.Deployment.Spec.Template.Spec.NodeSelector["kubernetes.io/hostname"]);
        Assert.Equal("vps-1", objects.Database!.Spec.Template.Spec.NodeSelector["kubernetes.io/hostname"]);

        var resource = Seed("prod/api");
        resource.Spec.Node = null;
        var unpinned = KubeRenderer.Render(resource, Inputs());
        Assert.All(new[] { unpinned.Deployment.Spec.Template.Spec, unpinned.Database!.Spec.Template.Spec, unpinned.MigrationJob!.Spec.Template.Spec },
            pod => Assert.Null(pod.NodeSelector));
    }

    [Fact]
    public void The_readiness_probe_comes_from_the_health_check()
    {
        var resource = Seed("prod/api");
        resource.Spec.App.HealthCheck!.PeriodSeconds = 7;
        resource.Spec.App.HealthCheck.FailureThreshold = 4;
        var deployment = KubeRenderer.Render(resource, Inputs()).Deployment;
        var container = Assert.Single(deployment.Spec.Template.Spec.Containers);
        var probe = container.ReadinessProbe;
        Assert.Equal("/healthz", probe.HttpGet.Path);
        Assert.Equal("http", probe.HttpGet.Port.Value);
        Assert.Equal(7, probe.PeriodSeconds);
        Assert.Equal(4, probe.FailureThreshold);
        Assert.Equal(3000, Assert.Single(container.Ports, p => p.Name == "http").ContainerPort);

        resource.Spec.App.HealthCheck.Http.Port = new Skiff.Api.IntOrString(3000);
        Assert.Equal("3000", KubeRenderer.Render(resource, Inputs()).Deployment.Spec.Template.Spec.Containers[0].ReadinessProbe.HttpGet.Port.Value);

        // The bot has none: no probe, Ready after minReadySeconds.
        var bot = Render("bots/bot").Deployment;
        Assert.Null(bot.Spec.Template.Spec.Containers[0].ReadinessProbe);
        Assert.Equal(15, bot.Spec.MinReadySeconds);
    }

    [Fact]
    public void The_deployment_rolls_with_no_unavailable_pod_and_the_design_env()
    {
        var deployment = Render("prod/api").Deployment;
        Assert.Equal("RollingUpdate", deployment.Spec.Strategy.Type);
        Assert.Equal("0", deployment.Spec.Strategy.RollingUpdate.MaxUnavailable.Value);
        Assert.Equal(180, deployment.Spec.ProgressDeadlineSeconds);
        var container = deployment.Spec.Template.Spec.Containers[0];
        Assert.Equal("registry.example.com/acme/api:1.4.2", container.Image);
        Assert.Equal(["node"], container.Command);
        Assert.Equal(["dist/main.js"], container.Args);
        Assert.False(container.SecurityContext.AllowPrivilegeEscalation);
        Assert.Equal("512Mi", container.Resources.Limits["memory"].ToString());
        Assert.Equal("500m", container.Resources.Limits["cpu"].ToString());
        var url = Assert.Single(container.Env, e => e.Name == "DATABASE_URL");
        Assert.Null(url.Value);
        Assert.Equal(("api-db", "url"), (url.ValueFrom.SecretKeyRef.Name, url.ValueFrom.SecretKeyRef.Key));
        Assert.Equal("registry-creds", Assert.Single(deployment.Spec.Template.Spec.ImagePullSecrets).Name);
        Assert.DoesNotContain(KubernetesYaml.Serialize(deployment), "golden-password", StringComparison.Ordinal);

        var bot = Render("bots/bot").Deployment.Spec.Template.Spec.Containers[0];
        Assert.Equal("redis://bot-cache:6379/0", Assert.Single(bot.Env, e => e.Name == "REDIS_URL").Value);
        var token = Assert.Single(bot.Env, e => e.Name == "BOT_TOKEN");
        Assert.Equal(("bot-secrets", "token"), (token.ValueFrom.SecretKeyRef.Name, token.ValueFrom.SecretKeyRef.Key));
    }

    [Fact]
    public void The_secret_holds_the_given_credentials_and_a_url_to_the_database_service()
    {
        var secret = Render("prod/api").DatabaseSecret!;
        string Get(string key) => System.Text.Encoding.UTF8.GetString(secret.Data[key]);
        Assert.Equal(("api", "golden-password", "api"), (Get("username"), Get("password"), Get("database")));
        Assert.Equal("postgres://api:golden-password@api-database:5432/api", Get("url"));
        Assert.Equal("api-database", Render("prod/api").DatabaseService!.Metadata.Name);
        Assert.Equal("None", Render("prod/api").DatabaseService!.Spec.ClusterIP);

        var resource = Seed("prod/api");
        var error = Assert.Throws<ArgumentException>(() => KubeRenderer.Render(resource, new RenderInputs(1)));
        Assert.Contains("database credentials", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_migration_job_runs_once_for_its_revision_and_image()
    {
        var job = KubeRenderer.Render(Seed("prod/api"), Inputs() with { Revision = 8, Image = "registry.example.com/acme/api:1.5.0" }).MigrationJob!;
        Assert.Equal("api-migrate-r8", job.Metadata.Name);
        Assert.Equal(0, job.Spec.BackoffLimit);
        Assert.Equal(300, job.Spec.ActiveDeadlineSeconds);
        Assert.NotNull(job.Spec.TtlSecondsAfterFinished);
        Assert.Equal("Never", job.Spec.Template.Spec.RestartPolicy);
        var container = Assert.Single(job.Spec.Template.Spec.Containers);
        Assert.Equal("registry.example.com/acme/api:1.5.0", container.Image);
        Assert.Equal(["npx", "prisma", "migrate", "deploy"], container.Command);
        Assert.Contains(container.Env, e => e.Name == "DATABASE_URL" && e.ValueFrom.SecretKeyRef.Key == "url");
        Assert.Equal("8", job.Metadata.Labels[SkiffLabels.Revision]);
        Assert.Null(Render("bots/bot").MigrationJob);
    }

    [Fact]
    public void The_data_stateful_sets_run_as_non_root_with_claims_and_headless_services()
    {
        var db = Render("prod/api").Database!;
        Assert.Equal("api-database", db.Spec.ServiceName);
        Assert.True(db.Spec.Template.Spec.SecurityContext.RunAsNonRoot);
        Assert.Equal("10Gi", Assert.Single(db.Spec.VolumeClaimTemplates).Spec.Resources.Requests["storage"].ToString());
        var postgres = db.Spec.Template.Spec.Containers[0];
        Assert.Equal("postgres:16", postgres.Image);
        Assert.Equal("api-db", Assert.Single(postgres.Env, e => e.Name == "POSTGRES_PASSWORD").ValueFrom.SecretKeyRef.Name);

        var bot = Render("bots/bot");
        var cache = bot.Cache!;
        Assert.Equal("bot-cache", bot.CacheService!.Metadata.Name);
        Assert.Equal("None", bot.CacheService.Spec.ClusterIP);
        Assert.Contains("--appendonly", cache.Spec.Template.Spec.Containers[0].Args);
        Assert.Equal("1Gi", Assert.Single(cache.Spec.VolumeClaimTemplates).Spec.Resources.Requests["storage"].ToString());
        Assert.Null(bot.AppService);

        var memoryOnly = Seed("bots/bot");
        memoryOnly.Spec.Cache!.Persistence = PersistenceModes.None;
        Assert.Null(KubeRenderer.Render(memoryOnly, Inputs()).Cache!.Spec.VolumeClaimTemplates);
    }

    [Fact]
    public void Rendering_is_pure()
    {
        var resource = Seed("prod/api");
        var before = KubernetesYaml.Serialize(resource);
        var first = ToYaml(KubeRenderer.Render(resource, Inputs()));
        Assert.Equal(first, ToYaml(KubeRenderer.Render(resource, Inputs())));
        Assert.Equal(before, KubernetesYaml.Serialize(resource));
    }

    private static bool Selects(V1LabelSelector selector, IDictionary<string, string> labels) =>
        (selector.MatchLabels ?? new Dictionary<string, string>()).All(l => labels.TryGetValue(l.Key, out var v) && v == l.Value)
        && (selector.MatchExpressions ?? []).All(e => e.OperatorProperty switch
        {
            "In" => labels.TryGetValue(e.Key, out var v) && e.Values.Contains(v),
            _ => throw new InvalidOperationException("operator " + e.OperatorProperty),
        });

    private static RenderInputs Inputs() => new(7, null, new DatabaseCredentials("api", "golden-password", "api"));

    private static KubeObjects Render(string key) => KubeRenderer.Render(Seed(key), Inputs());

    private static AppDeployment Seed(string key)
    {
        var result = ResourceLoader.LoadPaths([Path.Combine(RepoPaths.Root, "examples", "stacks")]);
        var resource = result.AppDeployments.Single(a => $"{a.Metadata.NamespaceProperty}/{a.Metadata.Name}" == key);
        resource.Metadata.Uid = Uid;
        return resource;
    }

    private static string ToYaml(KubeObjects objects) =>
        string.Join("---\n", objects.All().Select(o => KubernetesYaml.Serialize(o).TrimEnd('\n') + "\n"));
}
