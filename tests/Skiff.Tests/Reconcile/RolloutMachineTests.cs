using System.Collections.Concurrent;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Skiff.Api;
using Skiff.Reconcile;

namespace Skiff.Tests.Reconcile;

/// <summary>
/// The rollout as a state machine, on the in-memory engine: each reconcile does what can be done now and ends at the
/// first wait; the world moves between reconciles (a pull ends, a health check passes, a migration exits, time passes).
/// Every step, every failure and every crash point, as tables.
/// </summary>
public sealed class RolloutMachineTests
{
    private static readonly DateTimeOffset Start = new(2026, 12, 3, 12, 0, 0, TimeSpan.Zero);

    /// <summary>One stack on one in-memory node, reconciled as a source's work queue would.</summary>
    public sealed class Rig : IDisposable
    {
        private StackReconciler reconciler;

        public Rig(Action<AppDeploymentSpec>? change = null, InMemoryEngine? engine = null, FakeTimeProvider? clock = null, bool proxy = false)
        {
            Clock = clock ?? new FakeTimeProvider(Start);
            Routes = proxy ? new InMemoryRoutes(Clock) : null;
            Engine = engine ?? new InMemoryEngine(Clock);
            foreach (var image in new[] { "acme/api:1", "acme/api:2", "postgres:16", "redis:7" })
            {
                Engine.Registry[image] = null;
            }

            Resource = new AppDeployment
            {
                Metadata = new() { Name = "api", NamespaceProperty = "prod", Generation = 1 },
                Spec = new AppDeploymentSpec
                {
                    Node = "vps-1",
                    App = new AppSpec
                    {
                        Image = "acme/api:1",
                        Ports = [new PortSpec { Name = "http", ContainerPort = 3000, HostPort = 3000, HostIP = "127.0.0.1" }],
                        HealthCheck = new HealthCheckSpec { Http = new HttpCheck { Path = "/healthz", Port = "http" }, PeriodSeconds = 5 },
                        Migrate = new MigrateSpec { Command = ["migrate"], TimeoutSeconds = 60 },
                    },
                    Database = new DatabaseSpec { Image = "postgres:16" },
                    Rollout = new RolloutSpec { ProgressDeadlineSeconds = 30 },
                },
            };
            change?.Invoke(Resource.Spec);
            reconciler = New();
        }

        public FakeTimeProvider Clock { get; }

        public InMemoryEngine Engine { get; }

        public InMemoryProbe Probe { get; } = new();

        /// <summary>The node proxy's table, when the rig runs with the proxy.</summary>
        public InMemoryRoutes? Routes { get; }

        public Secrets Secrets { get; } = new();

        public AppDeployment Resource { get; }

        /// <summary>The status as the source last stored it (published mid-reconcile, or returned).</summary>
        public AppDeploymentStatus? Stored { get; set; }

        public StackResult? Last { get; private set; }

        public string App(long revision) => $"skiff_prod_api_app_r{revision}";

        public string Migration(long revision) => $"skiff_prod_api_migrate_r{revision}";

        public const string Database = "skiff_prod_api_database";

        /// <summary>The operator was killed and started again: a new reconciler (no memory), the same engine and stored status.</summary>
        public void Restart()
        {
            reconciler.Dispose();
            reconciler = New();
        }

        /// <summary>One reconcile, as the work queue runs it; pulls started by it are let finish (they run beside it).</summary>
        public async Task<StackResult> StepAsync()
        {
            Resource.Status = Stored is null ? null : StackReconciler.CloneStatus(Stored);
            Last = await reconciler.ReconcileAsync(Resource, (s, _) => { Stored = StackReconciler.CloneStatus(s); return Task.CompletedTask; }, CancellationToken.None);
            Stored = StackReconciler.CloneStatus(Last.Status);
            if (Waiting.StartsWith("pulling ", StringComparison.Ordinal))
            {
                // The pulls run beside the reconcile; in memory they end at once: let them be recorded.
                var images = Waiting["pulling ".Length..].Split(", ");
                for (var i = 0; i < 400 && !images.All(image => Engine.Calls.Contains("image_pull " + image)); i++)
                {
                    await Task.Delay(5);
                }

                await Task.Delay(20);
            }

            return Last;
        }

        /// <summary>What the status says the stack waits for ("" when it waits for nothing).</summary>
        public string Waiting => Conditions.RolloutInProgress(Stored) ? Conditions.Get(Stored, ConditionTypes.Reconciling)!.Message ?? "" : "";

        public Condition? Condition(string type) => Conditions.Get(Stored, type);

        public RevisionRecord? History(long revision) => Stored?.History?.SingleOrDefault(h => h.Revision == revision);

        /// <summary>Steps until the stack waits for nothing (Ready, failed, stalled) or <paramref name="steps"/> run out.</summary>
        public async Task SettleAsync(int steps = 20)
        {
            for (var i = 0; i < steps; i++)
            {
                await StepAsync();
                if (!Conditions.RolloutInProgress(Stored))
                {
                    return;
                }
            }

            Assert.Fail($"still in progress after {steps} reconciles: {Waiting}");
        }

        /// <summary>Moves the world on so the rollout can go all the way: data healthy, migrations exit 0, apps pass.</summary>
        public async Task RollThroughAsync(int steps = 20)
        {
            for (var i = 0; i < steps; i++)
            {
                await StepAsync();
                if (!Conditions.RolloutInProgress(Stored))
                {
                    return;
                }

                foreach (var c in Engine.All)
                {
                    if (c.Component is "database" or "cache" && c.Health == "starting")
                    {
                        Engine.SetHealth(c.Name, "healthy");
                    }

                    if (c.Component == "migrate" && c.State == "running")
                    {
                        Engine.Exit(c.Name, 0);
                    }

                    if (c.Component == "app" && c.State == "running")
                    {
                        Probe.Passing.Add(c.Name);
                    }
                }
            }

            Assert.Fail($"still in progress after {steps} reconciles: {Waiting}");
        }

        public void Dispose() => reconciler.Dispose();

        /// <summary>Revision 1 rolled out; revision 2 (acme/api:2) pulled, migrated and started (beside revision 1 when nothing stops it first), not healthy yet.</summary>
        public async Task StartRevision2Async()
        {
            await RollThroughAsync();
            Resource.Spec.App.Image = "acme/api:2";
            await StepAsync(); // the pull
            await StepAsync(); // the migration starts
            Engine.Exit(Migration(2), 0);
            await StepAsync(); // revision 2 starts
        }

        /// <summary>The resource was deleted: the stack is torn down (its data kept, per the default reclaim policy).</summary>
        public Task DeleteAsync() => reconciler.DeleteAsync(new StackNames("prod", "api"), Resource.Spec, CancellationToken.None);

        /// <summary>Turns the node proxy on (as an operator restarted with --proxy-image).</summary>
        public InMemoryRoutes UseProxy()
        {
            Proxy = new InMemoryRoutes(Clock);
            Restart();
            return Proxy;
        }

        private InMemoryRoutes? Proxy { get => Routes ?? proxyLater; set => proxyLater = value; }

        private InMemoryRoutes? proxyLater;

        private StackReconciler New() => new(
            Engine, Secrets, new StackContext("vps-1", "src", "test") { Proxy = Proxy is not null }, new NullEventSink(), NullLogger<StackReconciler>.Instance,
            new StackServices { Pulls = new PullListeners(), Probe = Probe, Routes = Proxy }, Clock);
    }

    [Fact]
    public async Task A_first_rollout_goes_one_step_per_reconcile_and_no_reconcile_waits_for_the_world()
    {
        using var rig = new Rig();

        // 1. Network and volume; the revision begins; both images are pulled side by side, in the background.
        var r = await rig.StepAsync();
        Assert.Equal("pulling postgres:16, acme/api:1", rig.Waiting);
        Assert.Equal(TimeSpan.FromMilliseconds(500), r.RequeueAfter);
        Assert.Equal(Outcomes.Progressing, rig.History(1)!.Outcome);
        Assert.Equal(Phases.Progressing, rig.Stored!.Phase);
        Assert.Equal(("False", "RolloutInProgress"), (rig.Condition(ConditionTypes.Ready)!.Status, rig.Condition(ConditionTypes.Ready)!.Reason));
        Assert.Contains("network_create skiff_prod_api", rig.Engine.Calls);
        Assert.Contains("volume_create skiff_prod_api_database", rig.Engine.Calls);

        // 2. The images are here: the database starts; its health check has not passed yet.
        await rig.StepAsync();
        Assert.Equal("waiting for the database to become healthy", rig.Waiting);
        Assert.Equal("running", rig.Engine.Find(Rig.Database)!.State);
        Assert.Equal("False", rig.Condition(ConditionTypes.DatabaseReady)!.Status);
        await rig.StepAsync();
        Assert.Equal("waiting for the database to become healthy", rig.Waiting);

        // 3. Healthy: the migration starts in a one-off container of the new image, and runs.
        rig.Engine.SetHealth(Rig.Database, "healthy");
        r = await rig.StepAsync();
        Assert.StartsWith("migrating: revision 1's migration is running", rig.Waiting, StringComparison.Ordinal);
        Assert.Equal("running", rig.Engine.Find(rig.Migration(1))!.State);
        Assert.Equal(("False", "Migrating"), (rig.Condition(ConditionTypes.Migrated)!.Status, rig.Condition(ConditionTypes.Migrated)!.Reason));
        Assert.Equal(TimeSpan.FromMilliseconds(250), r.RequeueAfter);
        await rig.StepAsync();
        Assert.StartsWith("migrating", rig.Waiting, StringComparison.Ordinal);

        // 4. The migration exited 0: the new revision starts, and is probed.
        rig.Engine.Exit(rig.Migration(1), 0);
        r = await rig.StepAsync();
        Assert.StartsWith("waiting for revision 1 to be ready (skiff_prod_api_app_r1", rig.Waiting, StringComparison.Ordinal);
        Assert.Equal(StackAction.PollInterval, r.RequeueAfter);
        Assert.Equal("True", rig.Condition(ConditionTypes.Migrated)!.Status);
        Assert.Equal("running", rig.Engine.Find(rig.App(1))!.State);

        // 5. It passes its health check: live; the migration container goes; Ready.
        rig.Probe.Passing.Add(rig.App(1));
        await rig.StepAsync();
        Assert.Equal("", rig.Waiting);
        Assert.Equal(Outcomes.Succeeded, rig.History(1)!.Outcome);
        Assert.Equal(("True", "Ready"), (rig.Condition(ConditionTypes.Ready)!.Status, rig.Condition(ConditionTypes.Ready)!.Reason));
        Assert.Equal(Phases.Ready, rig.Stored!.Phase);
        Assert.Null(rig.Engine.Find(rig.Migration(1)));
        Assert.Equal([rig.App(1), Rig.Database], rig.Engine.All.Select(c => c.Name));
    }

    [Fact]
    public async Task A_new_image_rolls_out_stop_first_says_Replacing_and_removes_the_old_revision_when_the_new_one_is_ready()
    {
        using var rig = new Rig();

        await rig.StartRevision2Async();

        // The old revision is stopped (it holds the host port), the new one starts: nothing serves meanwhile, and it says so.
        Assert.Equal("exited", rig.Engine.Find(rig.App(1))!.State);
        Assert.Equal("running", rig.Engine.Find(rig.App(2))!.State);
        Assert.Equal(("False", "Replacing"), (rig.Condition(ConditionTypes.Ready)!.Status, rig.Condition(ConditionTypes.Ready)!.Reason));
        rig.Probe.Passing.Add(rig.App(2));
        await rig.StepAsync();
        Assert.Null(rig.Engine.Find(rig.App(1)));
        Assert.Equal(("True", 2L), (rig.Condition(ConditionTypes.Ready)!.Status, rig.Stored!.Revision));
    }

    public static TheoryData<string, Func<Rig, Task>, string, string, string?> Failures => new()
    {
        {
            "the app image exists nowhere: the revision fails",
            rig => { rig.Engine.Registry.Remove("acme/api:1"); return Task.CompletedTask; },
            "ImageNotFound", "pulling acme/api:1 failed: manifest unknown", Outcomes.Failed
        },
        {
            "the database image is refused: the stack stalls and retries, no revision fails",
            rig => { rig.Engine.Registry["postgres:16"] = "unauthorized: authentication required"; return Task.CompletedTask; },
            "ImagePullFailed", "spec.database.image: pulling postgres:16 failed: unauthorized", Outcomes.Progressing
        },
        {
            "the node's network pool has no subnet left: the stack stalls and retries, nothing else is created",
            rig => { rig.Engine.NetworkCapacity = 0; return Task.CompletedTask; },
            "NetworkPoolExhausted", "network skiff_prod_api: no free subnet in the network pool: 0 of its 0 subnets are in use (--network-pool, --network-prefix)", null
        },
        {
            "the database's health check fails",
            async rig => { await rig.StepAsync(); await rig.StepAsync(); rig.Engine.SetHealth(Rig.Database, "unhealthy"); },
            "DatabaseNotReady", "the database did not become healthy: its health check failed", Outcomes.Progressing
        },
        {
            "the database never becomes healthy within its 2-minute backstop",
            async rig => { await rig.StepAsync(); await rig.StepAsync(); rig.Clock.Advance(TimeSpan.FromMinutes(2.1)); },
            "DatabaseNotReady", "it was not healthy within 120s", Outcomes.Progressing
        },
        {
            "the migration exits 1",
            async rig => { await DataHealthyAsync(rig); await rig.StepAsync(); rig.Engine.Exit(rig.Migration(1), 1); },
            "MigrationFailed", "migration exited with code 1", Outcomes.Failed
        },
        {
            "PostgreSQL refuses the migration's password: the volume holds older credentials, and the message says where they go",
            async rig =>
            {
                await DataHealthyAsync(rig);
                await rig.StepAsync();
                rig.Engine.Logs = name => name == rig.Migration(1)
                    ? "Npgsql.PostgresException (0x80004005): 28P01: password authentication failed for user \"app\""
                    : $"log of {name}";
                rig.Engine.Exit(rig.Migration(1), 1);
            },
            "MigrationFailed", "the database volume skiff_prod_api_database was initialised with other credentials than Secret api-db holds",
            Outcomes.Failed
        },
        {
            "the migration is killed by its memory limit",
            async rig => { await DataHealthyAsync(rig); await rig.StepAsync(); rig.Engine.Exit(rig.Migration(1), 137, oomKilled: true); },
            "MigrationFailed", "killed for running out of memory", Outcomes.Failed
        },
        {
            "the migration runs longer than migrate.timeoutSeconds",
            async rig => { await DataHealthyAsync(rig); await rig.StepAsync(); rig.Clock.Advance(TimeSpan.FromSeconds(61)); },
            "MigrationFailed", "migration did not finish within 60s", Outcomes.Failed
        },
        {
            "the new app container exits",
            async rig => { await MigratedAsync(rig); await rig.StepAsync(); rig.Engine.Exit(rig.App(1), 3); },
            "ContainerExited", "exited with code 3", Outcomes.Failed
        },
        {
            "the new app container restarts in a loop",
            async rig => { await MigratedAsync(rig); await rig.StepAsync(); rig.Engine.Crash(rig.App(1)); rig.Engine.Crash(rig.App(1)); },
            "ContainerExited", "restarted 2 times", Outcomes.Failed
        },
        {
            "the new app never passes its health check within the progress deadline (from its start)",
            async rig => { await MigratedAsync(rig); await rig.StepAsync(); rig.Clock.Advance(TimeSpan.FromSeconds(31)); },
            "HealthCheckFailed", "GET /healthz on port 3000 did not succeed within the progress deadline (30s)", Outcomes.Failed
        },
    };

    [Theory]
    [MemberData(nameof(Failures))]
    public async Task Each_failure_ends_the_rollout_with_its_reason_and_no_reconcile_waits_for_it(
        string what, Func<Rig, Task> world, string reason, string says, string? outcome)
    {
        using var rig = new Rig();
        await world(rig);

        await rig.SettleAsync();

        var stalled = rig.Condition(ConditionTypes.Stalled)!;
        Assert.True(stalled is { Status: "True" } && stalled.Reason == reason, $"{what}: Stalled={stalled.Status} {stalled.Reason}: {stalled.Message}");
        Assert.Contains(says, stalled.Message, StringComparison.Ordinal);
        Assert.Equal(("False", reason), (rig.Condition(ConditionTypes.Ready)!.Status, rig.Condition(ConditionTypes.Ready)!.Reason));
        Assert.Equal(Phases.Failed, rig.Stored!.Phase);
        Assert.Equal(outcome, rig.History(1)?.Outcome);
        Assert.True(rig.Last!.RequeueAfter > TimeSpan.Zero);
    }

    [Fact]
    public async Task A_stack_stalled_for_want_of_a_subnet_rolls_out_once_one_is_free()
    {
        using var rig = new Rig();
        rig.Engine.NetworkCapacity = 0;
        await rig.SettleAsync();
        Assert.Equal("NetworkPoolExhausted", rig.Condition(ConditionTypes.Stalled)!.Reason);
        Assert.DoesNotContain(rig.Engine.Calls, c => c.StartsWith("container_create", StringComparison.Ordinal) || c.StartsWith("volume_create", StringComparison.Ordinal));
        Assert.Equal(TimeSpan.FromSeconds(30), rig.Last!.RequeueAfter);

        rig.Engine.NetworkCapacity = 1; // another stack was deleted
        await rig.RollThroughAsync();

        Assert.Equal(("True", "False"), (rig.Condition(ConditionTypes.Ready)!.Status, rig.Condition(ConditionTypes.Stalled)!.Status));
        Assert.Equal(Outcomes.Succeeded, rig.History(1)!.Outcome);
    }

    [Fact]
    public async Task A_revision_that_fails_is_rolled_back_and_its_spec_is_not_tried_again()
    {
        using var rig = new Rig();
        await rig.StartRevision2Async();
        rig.Clock.Advance(TimeSpan.FromSeconds(31));

        await rig.SettleAsync();

        Assert.Equal((Outcomes.RolledBack, "HealthCheckFailed"), (rig.History(2)!.Outcome, rig.History(2)!.Reason));
        Assert.Equal(Phases.Degraded, rig.Stored!.Phase);
        Assert.Equal("running", rig.Engine.Find(rig.App(1))!.State); // stop-first: started again
        Assert.Null(rig.Engine.Find(rig.App(2)));
        var calls = rig.Engine.Calls.Count;
        await rig.StepAsync();
        Assert.DoesNotContain(rig.Engine.Calls.Skip(calls), c => c.StartsWith("container_create", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_migration_stopped_from_outside_runs_again_with_the_next_attempt()
    {
        using var rig = new Rig();
        await DataHealthyAsync(rig);
        await rig.StepAsync();
        rig.Engine.Exit(rig.Migration(1), 143);

        await rig.StepAsync();

        var again = rig.Engine.Find(rig.Migration(1))!;
        Assert.Equal(("running", "2"), (again.State, again.Label(SkiffLabels.Attempt)));
        await rig.RollThroughAsync();
        Assert.Equal(Outcomes.Succeeded, rig.History(1)!.Outcome);
    }

    [Fact]
    public async Task A_database_whose_old_task_the_engine_still_holds_is_replaced_on_its_volume_within_the_same_reconcile()
    {
        using var rig = new Rig();
        await rig.RollThroughAsync();
        var before = rig.Engine.Find(Rig.Database)!;
        var volumes = rig.Engine.SpecOf(before.Id).Mounts;
        Assert.NotEmpty(volumes);

        // The engine restarted: the database is stopped, and its old task is stuck in the runtime.
        rig.Engine.Exit(Rig.Database, 0);
        rig.Engine.StuckTasks.Add(before.Id);
        await rig.StepAsync();

        var after = rig.Engine.Find(Rig.Database)!;
        Assert.NotEqual(before.Id, after.Id);
        Assert.Equal("running", after.State);
        Assert.Equal(volumes, rig.Engine.SpecOf(after.Id).Mounts);
        Assert.Contains($"container_remove {Rig.Database}", rig.Engine.Calls);
        Assert.DoesNotContain(rig.Engine.All, c => c.Id == before.Id);
    }

    /// <summary>How many reconciles it takes to get past each step of a first rollout, with the world moving on.</summary>
    public static TheoryData<int, bool> CrashPoints()
    {
        var data = new TheoryData<int, bool>();
        for (var after = 1; after <= 6; after++)
        {
            data.Add(after, false);
            data.Add(after, true);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(CrashPoints))]
    public async Task A_crash_after_any_step_converges_with_one_revision_one_migration_run_and_one_app_container(int after, bool statusLost)
    {
        using var rig = new Rig();
        AppDeploymentStatus? before = null;
        for (var i = 0; i < after; i++)
        {
            before = rig.Stored is null ? null : StackReconciler.CloneStatus(rig.Stored);
            await rig.StepAsync();
            foreach (var c in rig.Engine.All)
            {
                if (c.Component == "database" && c.Health == "starting")
                {
                    rig.Engine.SetHealth(c.Name, "healthy");
                }
            }
        }

        rig.Restart();
        if (statusLost)
        {
            // The last status write never landed: the engine's labels must be enough.
            rig.Stored = before;
        }

        await rig.RollThroughAsync();

        Assert.Equal(Phases.Ready, rig.Stored!.Phase);
        Assert.Equal([1L], rig.Stored.History!.Select(h => h.Revision));
        Assert.Equal([rig.App(1), Rig.Database], rig.Engine.All.Select(c => c.Name));
        Assert.Single(rig.Engine.Calls, c => c.StartsWith("container_create skiff_prod_api_migrate", StringComparison.Ordinal));
        Assert.Single(rig.Engine.Calls, c => c.StartsWith("container_create skiff_prod_api_app", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_revert_after_a_crash_is_a_new_revision_and_no_container_starts_while_another_holds_its_port()
    {
        // r2 served, r4 took over; the operator was killed right after "mark revision 4 succeeded and remove …_r2":
        // r4 serves, r2 is stopped but not removed. Then the spec goes back to revision 2's.
        using var rig = new Rig(s => s.App.Migrate = null);
        await rig.RollThroughAsync();
        rig.Resource.Spec.App.Image = "acme/api:2";
        await rig.RollThroughAsync();
        rig.Resource.Spec.App.Image = "acme/api:1";
        rig.Resource.Spec.App.Env = [new EnvVar { Name = "V", Value = "3" }];
        await rig.RollThroughAsync();
        Assert.Equal(3L, rig.Stored!.Revision);
        // The crash: r2's container exists again, stopped (recreated here as the engine would still have it).
        var stale = rig.App(2);
        await rig.Engine.CreateContainerAsync(new ContainerSpec
        {
            Name = stale, Image = "acme/api:2", Network = "skiff_prod_api", Ports = [new PortBinding(3000, 3000, "127.0.0.1")],
            Labels = new Dictionary<string, string>
            {
                [SkiffLabels.ManagedBy] = SkiffLabels.ManagedByValue, [SkiffLabels.App] = "prod/api", [SkiffLabels.Component] = "app",
                [SkiffLabels.Source] = "src", [SkiffLabels.Revision] = "2", [SkiffLabels.SpecHash] = rig.History(2)!.SpecHash,
            },
        }, CancellationToken.None);
        rig.Restart();

        rig.Resource.Spec.App.Image = "acme/api:2";
        rig.Resource.Spec.App.Env = null;
        await rig.RollThroughAsync();

        // A new revision, started after the port holder stopped: the in-memory engine refuses a start whose port is held.
        Assert.Equal(4L, rig.Stored!.Revision);
        Assert.Equal(Outcomes.Succeeded, rig.History(4)!.Outcome);
        Assert.Equal(rig.History(2)!.SpecHash, rig.History(4)!.SpecHash);
        Assert.Equal([rig.App(4), Rig.Database], rig.Engine.All.Select(c => c.Name));
    }

    [Fact]
    public async Task A_new_database_image_that_cannot_be_pulled_leaves_the_running_database_alone()
    {
        using var rig = new Rig();
        await rig.RollThroughAsync();
        var database = rig.Engine.Find(Rig.Database)!.Id;
        rig.Resource.Spec.Database!.Image = "postgres:17";

        await rig.SettleAsync();

        Assert.Equal("ImageNotFound", rig.Condition(ConditionTypes.Stalled)!.Reason);
        Assert.Equal(database, rig.Engine.Find(Rig.Database)!.Id);
        Assert.Equal("running", rig.Engine.Find(Rig.Database)!.State);
    }

    private static async Task DataHealthyAsync(Rig rig)
    {
        await rig.StepAsync();
        await rig.StepAsync();
        rig.Engine.SetHealth(Rig.Database, "healthy");
    }

    private static async Task MigratedAsync(Rig rig)
    {
        await DataHealthyAsync(rig);
        await rig.StepAsync();
        rig.Engine.Exit(rig.Migration(1), 0);
    }

    /// <summary>Secrets and generated credentials in memory.</summary>
    [Fact]
    public async Task A_database_that_answers_its_own_check_is_used_before_Dockers_first_check_says_healthy()
    {
        using var rig = new Rig();
        await rig.StepAsync();
        await rig.StepAsync();
        Assert.Equal("waiting for the database to become healthy", rig.Waiting);
        await rig.StepAsync();
        Assert.Equal("waiting for the database to become healthy", rig.Waiting);
        var execs = rig.Engine.Calls.Count(c => c == "container_exec");
        Assert.Equal(1, execs); // the starting database was asked with its own command, once within a second

        rig.Clock.Advance(StackReconciler.StartingProbeInterval);
        await rig.StepAsync();
        Assert.Equal(2, rig.Engine.Calls.Count(c => c == "container_exec"));

        // pg_isready passes now; Docker's check (every 10 s) still says starting: the migration does not wait for it,
        // nor do the looks within the next second, which go by that answer.
        rig.Engine.HealthCommandPasses.Add(Rig.Database);
        rig.Clock.Advance(StackReconciler.StartingProbeInterval);
        await rig.StepAsync();
        Assert.StartsWith("migrating: revision 1's migration is running", rig.Waiting, StringComparison.Ordinal);
        Assert.Equal(3, rig.Engine.Calls.Count(c => c == "container_exec"));
        await rig.StepAsync();
        Assert.StartsWith("migrating: revision 1's migration is running", rig.Waiting, StringComparison.Ordinal);
        Assert.Equal("starting", rig.Engine.Find(Rig.Database)!.Health);

        // Once Docker says healthy, nothing is run by hand any more.
        rig.Engine.SetHealth(Rig.Database, "healthy");
        await rig.StepAsync();
        execs = rig.Engine.Calls.Count(c => c == "container_exec");
        await rig.StepAsync();
        Assert.Equal(execs, rig.Engine.Calls.Count(c => c == "container_exec"));
    }

    [Fact]
    public async Task A_starting_database_and_cache_are_each_probed_at_most_once_a_second()
    {
        using var rig = new Rig(spec => spec.Cache = new CacheSpec { Image = "redis:7" });
        await rig.StepAsync();
        await rig.StepAsync();
        await rig.StepAsync();
        Assert.Equal("starting", rig.Engine.Find(Rig.Database)!.Health);
        Assert.Equal("starting", rig.Engine.Find("skiff_prod_api_cache")!.Health);
        var execs = rig.Engine.Calls.Count(c => c == "container_exec");
        Assert.Equal(2, execs);

        // More looks within the second: neither is asked again (the cache's answer is not forgotten while the database's loop runs).
        await rig.StepAsync();
        await rig.StepAsync();
        Assert.Equal(execs, rig.Engine.Calls.Count(c => c == "container_exec"));

        rig.Clock.Advance(StackReconciler.StartingProbeInterval);
        await rig.StepAsync();
        Assert.Equal(execs + 2, rig.Engine.Calls.Count(c => c == "container_exec"));
    }

    public sealed class Secrets : ISecretSource
    {
        private readonly ConcurrentDictionary<string, Dictionary<string, byte[]>> secrets = new();

        public Task<IReadOnlyDictionary<string, byte[]>?> GetSecretAsync(string @namespace, string name, CancellationToken ct) =>
            Task.FromResult<IReadOnlyDictionary<string, byte[]>?>(secrets.TryGetValue($"{@namespace}/{name}", out var s) ? s : null);

        public Task<DatabaseCredentials> EnsureDatabaseCredentialsAsync(StackNames names, string database, string user, CancellationToken ct)
        {
            var s = secrets.GetOrAdd($"{names.Namespace}/{names.DatabaseSecret}", _ => new()
            {
                ["username"] = Encoding.UTF8.GetBytes(user), ["password"] = "pw"u8.ToArray(), ["database"] = Encoding.UTF8.GetBytes(database),
            });
            return Task.FromResult(new DatabaseCredentials(Encoding.UTF8.GetString(s["username"]), Encoding.UTF8.GetString(s["password"]), Encoding.UTF8.GetString(s["database"])));
        }

        public Task DeleteDatabaseCredentialsAsync(StackNames names, CancellationToken ct) => Task.CompletedTask;
    }

    private sealed class NullEventSink : IEventSink
    {
        public void Record(AppDeployment resource, EventKind kind, string reason, string message)
        {
        }
    }
}
