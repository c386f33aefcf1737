using Skiff.Api;
using Skiff.Docker;
using Skiff.Observability;
using Skiff.Reconcile;

namespace Skiff.Tests.Reconcile;

public class StackPlannerTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 26, 12, 0, 0, TimeSpan.Zero);
    private static readonly StackContext Context = new("vps-1", "src", "test");

    private static DesiredStack Stack(Action<AppDeploymentSpec>? change = null)
    {
        var resource = new AppDeployment
        {
            Metadata = new() { Name = "api", NamespaceProperty = "prod", Generation = 1 },
            Spec = new AppDeploymentSpec
            {
                Node = "vps-1",
                App = new AppSpec
                {
                    Image = "acme/api:1",
                    Ports = [new PortSpec { Name = "http", ContainerPort = 3000 }],
                    Migrate = new MigrateSpec { Command = ["migrate"] },
                },
                Database = new DatabaseSpec(),
            },
        };
        change?.Invoke(resource.Spec);
        var inputs = new ResolvedInputs(new DatabaseCredentials("app", "s3cret-pass", "app"), new Dictionary<string, string>(), new Dictionary<string, RegistryAuth>());
        return DesiredStack.Build(resource, inputs, Context);
    }

    private static ObservedContainer Container(DesiredStack d, string component, string name, string state = "running", string? health = null,
        long? revision = null, string? hash = null, long exit = 0, string? source = null, int? attempt = null)
    {
        var labels = d.Labels(component);
        if (attempt is { } a)
        {
            labels[SkiffLabels.Attempt] = a.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        labels[SkiffLabels.Source] = source ?? Context.SourceId;
        if (revision is { } r)
        {
            labels[SkiffLabels.Revision] = r.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        if (hash is not null)
        {
            labels[SkiffLabels.SpecHash] = hash;
        }

        return new ObservedContainer("id-" + name, name, "img", "sha256:" + name, labels, state, health, exit, 0, Now.AddMinutes(-1), Now.AddMinutes(-1),
            new Dictionary<string, string> { ["net"] = "10.0.0.2" });
    }

    private static ObservedStack Observed(DesiredStack d, bool network, params ObservedContainer[] containers) =>
        new(network, new Dictionary<string, IReadOnlyDictionary<string, string>?> { [d.Names.DatabaseVolume] = network ? new Dictionary<string, string>() : null }, containers);

    private static ObservedContainer HealthyDatabase(DesiredStack d) =>
        Container(d, StackNames.DatabaseComponent, d.Names.DatabaseContainer, health: "healthy", hash: d.Database!.ConfigHash);

    private static string[] Kinds(StackPlan plan) => plan.Actions.Select(a => a.GetType().Name).ToArray();

    [Fact]
    public void From_nothing_the_plan_builds_everything_in_order()
    {
        var d = Stack();
        var plan = StackPlanner.Plan(d, Observed(d, network: false), [], Now);
        Assert.Equal(
            ["CreateNetwork", "CreateVolume", "BeginRollout", "EnsureImage", "EnsureImage", "StartDataContainer", "WaitHealthy", "RunMigration", "StartApp", "WaitAppReady", "CompleteRollout"],
            Kinds(plan));
        Assert.Equal(1, plan.Actions.OfType<BeginRollout>().Single().Revision);
        // On a fresh host nothing is there: the database image is pulled like the app's, side by side with it.
        Assert.Equal(
            [(StackNames.DatabaseComponent, d.Database!.Container.Image, PullPolicies.IfNotPresent, (long?)null), (StackNames.AppComponent, "acme/api:1", PullPolicies.IfNotPresent, 1L)],
            plan.Actions.OfType<EnsureImage>().Select(e => (e.Component, e.Image, e.Policy, e.Revision)));
    }

    [Fact]
    public void Converged_stack_plans_nothing()
    {
        var d = Stack();
        var history = new List<RevisionRecord> { new() { Revision = 1, SpecHash = d.Hash, Outcome = Outcomes.Succeeded, Image = "acme/api:1" } };
        var plan = StackPlanner.Plan(d, Observed(d, true, HealthyDatabase(d), Container(d, "app", d.Names.AppContainer(1), revision: 1, hash: d.Hash)), history, Now);
        Assert.True(plan.IsEmpty, string.Join("; ", plan.Actions.Select(a => a.Describe())));
    }

    [Fact]
    public void Crash_after_migration_resumes_without_running_it_again()
    {
        var d = Stack(s => s.App.Image = "acme/api:2");
        var history = new List<RevisionRecord>
        {
            new() { Revision = 1, SpecHash = "old", Outcome = Outcomes.Succeeded, Image = "acme/api:1" },
            new() { Revision = 2, SpecHash = d.Hash, Outcome = Outcomes.Progressing, Image = "acme/api:2", DeployedAt = Now.AddSeconds(-10) },
        };
        var old = Container(d, "app", d.Names.AppContainer(1), revision: 1, hash: "old");
        var migrated = Container(d, "migrate", d.Names.MigrateContainer(2), state: "exited", revision: 2, hash: d.Hash, exit: 0);
        var plan = StackPlanner.Plan(d, Observed(d, true, HealthyDatabase(d), old, migrated), history, Now);
        Assert.Equal(["BeginRollout", "EnsureImage", "StartApp", "WaitAppReady", "CompleteRollout"], Kinds(plan));
        Assert.Equal(2, plan.Actions.OfType<StartApp>().Single().Revision);
        // The progress deadline counts from the app container's start, not from the rollout's (a long migration does not eat it).
        Assert.Equal(d.ProgressDeadline, plan.Actions.OfType<WaitAppReady>().Single().ProgressDeadline);
        Assert.Equal([old.Name, migrated.Name], plan.Actions.OfType<CompleteRollout>().Single().Leftovers.Select(c => c.Name));
    }

    [Fact]
    public void Crash_after_the_new_container_started_waits_for_it_and_removes_the_old_one()
    {
        var d = Stack(s => s.App.Image = "acme/api:2");
        // The status write was lost too: only the engine's labels know revision 2.
        var history = new List<RevisionRecord> { new() { Revision = 1, SpecHash = "old", Outcome = Outcomes.Succeeded, Image = "acme/api:1" } };
        var old = Container(d, "app", d.Names.AppContainer(1), revision: 1, hash: "old");
        // Started a moment ago: not running minReadySeconds yet.
        var fresh = Container(d, "app", d.Names.AppContainer(2), revision: 2, hash: d.Hash) with { StartedAt = Now.AddSeconds(-1) };
        var plan = StackPlanner.Plan(d, Observed(d, true, HealthyDatabase(d), old, fresh), history, Now);
        Assert.Equal(["BeginRollout", "WaitAppReady", "CompleteRollout"], Kinds(plan));
        Assert.Equal(2, plan.Actions.OfType<BeginRollout>().Single().Revision);
        Assert.Equal([old.Name], plan.Actions.OfType<CompleteRollout>().Single().Leftovers.Select(c => c.Name));
    }

    [Fact]
    public void Crash_between_create_and_start_starts_the_created_container_instead_of_a_duplicate()
    {
        var d = Stack(s => s.App.Image = "acme/api:2");
        var history = new List<RevisionRecord> { new() { Revision = 1, SpecHash = "old", Outcome = Outcomes.Succeeded, Image = "acme/api:1" } };
        var created = Container(d, "app", d.Names.AppContainer(2), state: "created", revision: 2, hash: d.Hash);
        var plan = StackPlanner.Plan(d, Observed(d, true, HealthyDatabase(d), Container(d, "app", d.Names.AppContainer(1), revision: 1, hash: "old"), created), history, Now);
        Assert.DoesNotContain(plan.Actions, a => a is StartApp);
        Assert.Contains(plan.Actions, a => a is StartExisting s && s.Container.Name == created.Name);
    }

    [Fact]
    public void Migration_seen_failed_after_a_restart_fails_the_rollout_instead_of_rerunning_it()
    {
        var d = Stack(s => s.App.Image = "acme/api:2");
        var history = new List<RevisionRecord>
        {
            new() { Revision = 1, SpecHash = "old", Outcome = Outcomes.Succeeded, Image = "acme/api:1" },
            new() { Revision = 2, SpecHash = d.Hash, Outcome = Outcomes.Progressing },
        };
        var failed = Container(d, "migrate", d.Names.MigrateContainer(2), state: "exited", revision: 2, hash: d.Hash, exit: 3);
        var plan = StackPlanner.Plan(d, Observed(d, true, HealthyDatabase(d), Container(d, "app", d.Names.AppContainer(1), revision: 1, hash: "old"), failed), history, Now);
        Assert.Equal("MigrationFailed", plan.Actions.OfType<FailRollout>().Single().Reason);
        Assert.DoesNotContain(plan.Actions, a => a is RunMigration or StartApp);
    }

    private static (DesiredStack D, List<RevisionRecord> History, ObservedContainer OldApp) MigratingToImage2()
    {
        var d = Stack(s => s.App.Image = "acme/api:2");
        var history = new List<RevisionRecord>
        {
            new() { Revision = 1, SpecHash = "old", Outcome = Outcomes.Succeeded, Image = "acme/api:1" },
            new() { Revision = 2, SpecHash = d.Hash, Outcome = Outcomes.Progressing },
        };
        return (d, history, Container(d, "app", d.Names.AppContainer(1), revision: 1, hash: "old"));
    }

    [Theory]
    [InlineData(143, null, 2)]
    [InlineData(137, 2, 3)]
    public void Migration_stopped_from_outside_is_run_again_with_the_next_attempt(long exit, int? attempt, int next)
    {
        var (d, history, oldApp) = MigratingToImage2();
        var stopped = Container(d, "migrate", d.Names.MigrateContainer(2), state: "exited", revision: 2, hash: d.Hash, exit: exit, attempt: attempt);
        var plan = StackPlanner.Plan(d, Observed(d, true, HealthyDatabase(d), oldApp, stopped), history, Now);

        Assert.DoesNotContain(plan.Actions, a => a is FailRollout);
        var kinds = Kinds(plan);
        Assert.True(Array.IndexOf(kinds, "RemoveContainer") < Array.IndexOf(kinds, "RunMigration"), string.Join(", ", kinds));
        Assert.Equal(stopped.Name, plan.Actions.OfType<RemoveContainer>().Single().Container.Name);
        var rerun = plan.Actions.OfType<RunMigration>().Single();
        Assert.Null(rerun.Existing);
        Assert.Equal(next.ToString(System.Globalization.CultureInfo.InvariantCulture), rerun.Spec.Labels[SkiffLabels.Attempt]);
        Assert.Contains("StartApp", kinds);
    }

    [Fact]
    public void Migration_stopped_from_outside_on_its_last_attempt_fails_the_rollout()
    {
        var (d, history, oldApp) = MigratingToImage2();
        var stopped = Container(d, "migrate", d.Names.MigrateContainer(2), state: "exited", revision: 2, hash: d.Hash, exit: 143,
            attempt: StackPlanner.MaxMigrationAttempts);
        var plan = StackPlanner.Plan(d, Observed(d, true, HealthyDatabase(d), oldApp, stopped), history, Now);

        var fail = plan.Actions.OfType<FailRollout>().Single();
        Assert.Equal("MigrationFailed", fail.Reason);
        Assert.Contains($"stopped from outside {StackPlanner.MaxMigrationAttempts} times", fail.Message);
        Assert.DoesNotContain(plan.Actions, a => a is RunMigration or StartApp);
    }

    [Fact]
    public void Migration_killed_by_its_memory_limit_fails_and_names_the_field()
    {
        var (d, history, oldApp) = MigratingToImage2();
        d.Spec.App.Resources = new ResourceLimits { Memory = "64Mi" };
        var killed = Container(d, "migrate", d.Names.MigrateContainer(2), state: "exited", revision: 2, hash: d.Hash, exit: 137) with { OomKilled = true };
        var plan = StackPlanner.Plan(d, Observed(d, true, HealthyDatabase(d), oldApp, killed), history, Now);

        var fail = plan.Actions.OfType<FailRollout>().Single();
        Assert.Contains("spec.app.resources.memory (64Mi)", fail.Message);
        Assert.DoesNotContain(plan.Actions, a => a is RunMigration);
    }

    [Fact]
    public void A_failed_spec_is_not_retried_and_the_last_good_revision_keeps_serving()
    {
        var d = Stack(s => s.App.Image = "acme/api:2");
        var history = new List<RevisionRecord>
        {
            new() { Revision = 1, SpecHash = "old", Outcome = Outcomes.Succeeded, Image = "acme/api:1" },
            new() { Revision = 2, SpecHash = d.Hash, Outcome = Outcomes.RolledBack, Reason = "HealthCheckFailed" },
        };
        var plan = StackPlanner.Plan(d, Observed(d, true, HealthyDatabase(d), Container(d, "app", d.Names.AppContainer(1), revision: 1, hash: "old")), history, Now);
        Assert.True(plan.IsEmpty, string.Join("; ", plan.Actions.Select(a => a.Describe())));
    }

    [Fact]
    public void Rollback_recreates_the_last_good_image_when_its_container_is_gone()
    {
        var d = Stack(s => s.App.Image = "acme/api:2");
        var history = new List<RevisionRecord>
        {
            new() { Revision = 1, SpecHash = "old", Outcome = Outcomes.Succeeded, Image = "acme/api@sha256:" + new string('a', 64) },
            new() { Revision = 2, SpecHash = d.Hash, Outcome = Outcomes.RolledBack, Reason = "ContainerExited" },
        };
        var broken = Container(d, "app", d.Names.AppContainer(2), state: "exited", revision: 2, hash: d.Hash);
        var plan = StackPlanner.Plan(d, Observed(d, true, HealthyDatabase(d), broken), history, Now);
        Assert.Contains(plan.Actions, a => a is RemoveContainer r && r.Container.Name == broken.Name);
        var start = plan.Actions.OfType<StartApp>().Single();
        Assert.True(start.Rollback);
        Assert.Equal(1, start.Revision);
        Assert.Equal(history[0].Image, start.Spec.Image);
    }

    [Fact]
    public void Rollback_pulls_the_last_good_image_first_when_the_node_may_not_have_it()
    {
        var d = Stack(s => s.App.Image = "acme/api:2");
        var history = new List<RevisionRecord>
        {
            new() { Revision = 1, SpecHash = "old", Outcome = Outcomes.Succeeded, Image = "acme/api:1" },
            new() { Revision = 2, SpecHash = d.Hash, Outcome = Outcomes.RolledBack, Reason = "ImageNotFound" },
        };
        var plan = StackPlanner.Plan(d, Observed(d, true, HealthyDatabase(d)), history, Now);
        Assert.Equal(["EnsureImage", "StartApp"], Kinds(plan));
        var pull = plan.Actions.OfType<EnsureImage>().Single();
        Assert.Equal(("acme/api:1", PullPolicies.IfNotPresent, StackNames.AppComponent, (long?)null), (pull.Image, pull.Policy, pull.Component, pull.Revision));
    }

    [Fact]
    public void The_database_and_cache_images_are_pulled_side_by_side_and_only_when_their_containers_are_created()
    {
        var d = Stack(s => { s.Cache = new CacheSpec { Image = "registry.example.com/redis:7" }; s.Database!.Image = "registry.example.com/postgres:16"; });
        var fresh = StackPlanner.Plan(d, Observed(d, true), [], Now);
        Assert.Equal(
            ["registry.example.com/postgres:16", "registry.example.com/redis:7", "acme/api:1"],
            fresh.Actions.OfType<EnsureImage>().Select(e => e.Image));
        // One run of pulls (the executor runs consecutive pulls side by side), before any data container starts.
        var kinds = Kinds(fresh);
        Assert.Equal(["BeginRollout", "EnsureImage", "EnsureImage", "EnsureImage", "StartDataContainer", "StartDataContainer", "WaitHealthy"], kinds[..7]);

        // Data that runs already is not pulled again; only the new revision's app image is.
        var cache = Container(d, StackNames.CacheComponent, d.Names.CacheContainer, health: "healthy", hash: d.Cache!.ConfigHash);
        var running = StackPlanner.Plan(d, Observed(d, true, HealthyDatabase(d), cache), [], Now);
        Assert.Equal(["BeginRollout", "EnsureImage", "RunMigration", "StartApp", "WaitAppReady", "CompleteRollout"], Kinds(running));
        Assert.Equal(StackNames.AppComponent, running.Actions.OfType<EnsureImage>().Single().Component);
    }

    [Fact]
    public void Published_host_port_means_stop_first()
    {
        var d = Stack(s => { s.App.Image = "acme/api:2"; s.App.Ports![0].HostPort = 3000; s.App.Migrate = null; });
        var history = new List<RevisionRecord> { new() { Revision = 1, SpecHash = "old", Outcome = Outcomes.Succeeded } };
        var old = Container(d, "app", d.Names.AppContainer(1), revision: 1, hash: "old");
        var plan = StackPlanner.Plan(d, Observed(d, true, HealthyDatabase(d), old), history, Now);
        Assert.Equal(["BeginRollout", "EnsureImage", "StopContainer", "StartApp", "WaitAppReady", "CompleteRollout"], Kinds(plan));
        Assert.Equal("http://vps-1:3000", d.Endpoint);
    }

    [Fact]
    public void Without_host_ports_the_new_container_starts_before_the_old_one_stops()
    {
        var d = Stack(s => { s.App.Image = "acme/api:2"; s.App.Migrate = null; });
        var history = new List<RevisionRecord> { new() { Revision = 1, SpecHash = "old", Outcome = Outcomes.Succeeded } };
        var plan = StackPlanner.Plan(d, Observed(d, true, HealthyDatabase(d), Container(d, "app", d.Names.AppContainer(1), revision: 1, hash: "old")), history, Now);
        Assert.DoesNotContain(plan.Actions, a => a is StopContainer);
    }

    [Fact]
    public void A_changed_database_setting_recreates_the_container_but_never_the_volume()
    {
        var d = Stack(s => s.Database!.Resources = new ResourceLimits { Memory = "1Gi" });
        var stale = Container(d, StackNames.DatabaseComponent, d.Names.DatabaseContainer, health: "healthy", hash: "previous");
        var plan = StackPlanner.Plan(d, Observed(d, true, stale), [], Now);
        Assert.Contains(plan.Actions, a => a is RemoveContainer r && r.Container == stale);
        Assert.Contains(plan.Actions, a => a is StartDataContainer);
        Assert.DoesNotContain(plan.Actions, a => a is CreateVolume);
        Assert.Equal(1024L * 1024 * 1024, plan.Actions.OfType<StartDataContainer>().Single().Component.Container.MemoryBytes);
    }

    [Fact]
    public void Objects_of_another_source_block_the_plan()
    {
        var d = Stack();
        var plan = StackPlanner.Plan(d, Observed(d, true, Container(d, "app", d.Names.AppContainer(1), revision: 1, hash: d.Hash, source: "other")), [], Now);
        Assert.Equal("OwnedByAnotherSource", Assert.IsType<Blocked>(Assert.Single(plan.Actions)).Reason);
    }

    [Fact]
    public void Adopted_volume_that_does_not_exist_blocks_with_a_field_named_message()
    {
        var d = Stack(s => s.Database!.Volume = "legacy_pgdata");
        var observed = new ObservedStack(true, new Dictionary<string, IReadOnlyDictionary<string, string>?> { ["legacy_pgdata"] = null }, []);
        var blocked = Assert.IsType<Blocked>(StackPlanner.Plan(d, observed, [], Now).Actions.Last());
        Assert.Equal("VolumeNotFound", blocked.Reason);
        Assert.StartsWith("spec.database.volume:", blocked.Message);
    }

    [Fact]
    public void App_environment_gets_the_database_and_cache_urls_and_secret_values()
    {
        var resource = new AppDeployment
        {
            Metadata = new() { Name = "bot", NamespaceProperty = "prod" },
            Spec = new AppDeploymentSpec
            {
                Node = "vps-2",
                App = new AppSpec
                {
                    Image = "acme/bot:1",
                    Env = [new EnvVar { Name = "TOKEN", ValueFrom = new EnvVarSource { SecretKeyRef = new SecretKeySelector { Name = "bot", Key = "token" } } }, new EnvVar { Name = "MODE", Value = "prod" }],
                },
                Database = new DatabaseSpec(),
                Cache = new CacheSpec(),
            },
        };
        var d = DesiredStack.Build(resource, new ResolvedInputs(new DatabaseCredentials("app", "p@ss word", "app"), new Dictionary<string, string> { ["TOKEN"] = "tok-123" }, new Dictionary<string, RegistryAuth>()), Context);
        var env = d.AppContainer(1, "acme/bot:1", rollback: false).Env;
        Assert.Contains("DATABASE_URL=postgres://app:p%40ss%20word@database:5432/app", env);
        Assert.Contains("REDIS_URL=redis://cache:6379/0", env);
        Assert.Contains("TOKEN=tok-123", env);
        Assert.Contains("MODE=prod", env);
        Assert.Contains("tok-123", d.SecretValues);
        Assert.Contains("p@ss word", d.SecretValues);
        Assert.Equal("postgres:16", d.Database!.Container.Image);
        Assert.Equal("redis:7", d.Cache!.Container.Image);
    }

    [Fact]
    public void Secret_masking_hides_every_known_value_longest_first()
    {
        var text = "connect postgres://app:hunter22@database:5432/app failed; password hunter22";
        var masked = SecretMasker.Apply(text, ["hunter22", "postgres://app:hunter22@database:5432/app"]);
        Assert.DoesNotContain("hunter22", masked);
        Assert.Equal("connect ****** failed; password ******", masked);
    }
}
