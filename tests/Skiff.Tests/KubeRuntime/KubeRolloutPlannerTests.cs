using Skiff.Api;
using Skiff.KubeRuntime;
using Skiff.Reconcile;

namespace Skiff.Tests.KubeRuntime;

/// <summary>The rollout step function of runtime: kubernetes, one observed state per row.</summary>
public sealed class KubeRolloutPlannerTests
{
    private const string Hash = "h2";

    private static readonly KubeDesired WithMigration = new(Hash, "app:2", HasMigration: true, AutoRollback: true, [StackNames.DatabaseComponent]);

    private static readonly Dictionary<string, bool> DataReady = new() { [StackNames.DatabaseComponent] = true };

    private static RevisionRecord Good(long revision, string hash = "h1", string image = "app:1") =>
        new() { Revision = revision, SpecHash = hash, Image = image, Outcome = Outcomes.Succeeded };

    private static RevisionRecord Record(long revision, string outcome, string hash = Hash) =>
        new() { Revision = revision, SpecHash = hash, Image = "app:2", Outcome = outcome };

    /// <summary>A Deployment on a revision, its controller caught up, everything available unless said otherwise.</summary>
    private static ObservedDeployment Deployment(long revision, bool observed = true, int available = 1, string? deadline = null, int statusReplicas = 1) =>
        new(revision, Generation: 3, ObservedGeneration: observed ? 3 : 2, Replicas: 1, StatusReplicas: statusReplicas, UpdatedReplicas: available, AvailableReplicas: available, deadline);

    private static KubeObserved Observed(ObservedDeployment? deployment, params ObservedJob[] jobs) => new(deployment, jobs, DataReady);

    private static KubeObserved WithPods(KubeObserved observed, params ObservedPod[] pods) => observed with { Pods = pods };

    private static ObservedPod Pod(long revision, string? waiting = null, int restarts = 0, int? exit = null, string component = StackNames.AppComponent, string? message = null) =>
        new($"api-{revision}-x", component, revision, [new ObservedPodContainer("app", waiting, message, restarts, exit, exit is null ? null : "Error")]);

    private static string Steps(StackPlan plan) => string.Join(" > ", plan.Actions.Select(a => a switch
    {
        ApplyStackObjects => "objects",
        BeginRollout b => $"begin r{b.Revision}",
        WaitDataReady => "wait data",
        StopStaleMigrations s => $"stop job r{string.Join(",", s.Revisions)}",
        ApplyMigrationJob j => $"job r{j.Revision}",
        WaitMigrationJob j => $"wait job r{j.Revision}",
        ApplyAppDeployment d => d.Rollback ? $"rollback to r{d.Revision} ({d.Image})" : $"deployment r{d.Revision}",
        WaitDeploymentRollout w => $"wait deployment r{w.Revision}",
        CompleteRollout c => $"complete r{c.Revision}",
        FailRollout f => $"fail r{f.Revision} {f.Reason}",
        PruneObjects => "prune",
        _ => a.GetType().Name,
    }));

    public static TheoryData<string, KubeObserved, RevisionRecord[], string> Rows => new()
    {
        {
            "first deploy: the data first",
            new KubeObserved(null, [], new Dictionary<string, bool> { [StackNames.DatabaseComponent] = false }),
            [],
            "objects > begin r1 > wait data"
        },
        {
            "first deploy, data ready: the Job before any Deployment",
            Observed(null),
            [Record(1, Outcomes.Progressing)],
            "objects > begin r1 > job r1 > wait job r1"
        },
        {
            "image change: the Job of the new revision, the live Deployment untouched",
            Observed(Deployment(1)),
            [Good(1)],
            "objects > begin r2 > job r2 > wait job r2"
        },
        {
            "the spec changed while a migration ran: that Job goes before the new one starts",
            Observed(Deployment(1), new ObservedJob(2, Complete: false, Failure: null), new ObservedJob(1, Complete: true, Failure: null)),
            [Good(1), Record(2, Outcomes.Progressing, hash: "h-superseded")],
            "objects > begin r3 > stop job r2 > job r3 > wait job r3"
        },
        {
            "the Job runs: wait, the Deployment untouched",
            Observed(Deployment(1), new ObservedJob(2, Complete: false, Failure: null)),
            [Good(1), Record(2, Outcomes.Progressing)],
            "objects > begin r2 > wait job r2"
        },
        {
            "the Job completed: now the Deployment's template",
            Observed(Deployment(1), new ObservedJob(2, Complete: true, Failure: null)),
            [Good(1), Record(2, Outcomes.Progressing)],
            "objects > begin r2 > deployment r2 > wait deployment r2"
        },
        {
            "the Job failed: the revision fails, no Deployment apply",
            Observed(Deployment(1), new ObservedJob(2, Complete: false, Failure: "migration Job app-migrate-r2 failed")),
            [Good(1), Record(2, Outcomes.Progressing)],
            "objects > begin r2 > fail r2 MigrationFailed"
        },
        {
            "rolled back after a failed Job: the Deployment is still on the last good revision, nothing to apply",
            Observed(Deployment(1), new ObservedJob(2, Complete: false, Failure: "failed")),
            [Good(1), Record(2, Outcomes.RolledBack)],
            "objects > prune"
        },
        {
            "the Deployment's controller has not seen the new template: wait, do not judge the old status",
            Observed(Deployment(2, observed: false, deadline: "old deadline"), new ObservedJob(2, Complete: true, Failure: null)),
            [Good(1), Record(2, Outcomes.Progressing)],
            "objects > begin r2 > deployment r2 > wait deployment r2"
        },
        {
            "old pods still there: not rolled out yet",
            Observed(Deployment(2, statusReplicas: 2), new ObservedJob(2, Complete: true, Failure: null)),
            [Good(1), Record(2, Outcomes.Progressing)],
            "objects > begin r2 > deployment r2 > wait deployment r2"
        },
        {
            "rolled out: complete and prune",
            Observed(Deployment(2), new ObservedJob(2, Complete: true, Failure: null)),
            [Good(1), Record(2, Outcomes.Progressing)],
            "objects > begin r2 > deployment r2 > complete r2 > prune"
        },
        {
            "ProgressDeadlineExceeded: the revision fails",
            Observed(Deployment(2, available: 0, deadline: "timed out"), new ObservedJob(2, Complete: true, Failure: null)),
            [Good(1), Record(2, Outcomes.Progressing)],
            "objects > begin r2 > deployment r2 > fail r2 ProgressDeadlineExceeded"
        },
        {
            "after ProgressDeadlineExceeded: back to the last good template",
            Observed(Deployment(2, available: 0, deadline: "timed out"), new ObservedJob(2, Complete: true, Failure: null)),
            [Good(1), Record(2, Outcomes.RolledBack)],
            "objects > rollback to r1 (app:1) > prune"
        },
        {
            "live: apply again (drift) and prune",
            Observed(Deployment(2)),
            [Good(1), Good(2, Hash, "app:2")],
            "objects > deployment r2 > prune"
        },
        {
            "a revert to a spec that failed before, after another success: a new revision",
            Observed(Deployment(3)),
            [Record(2, Outcomes.RolledBack), Good(3, "h3", "app:3")],
            "objects > begin r4 > job r4 > wait job r4"
        },
        {
            "a revision number left by a crash (the Deployment already on it) is not reused",
            Observed(Deployment(5)),
            [Good(1)],
            "objects > begin r6 > job r6 > wait job r6"
        },
        {
            "the new revision's pod crash-loops: it fails before the progress deadline",
            WithPods(Observed(Deployment(2, available: 0), new ObservedJob(2, Complete: true, Failure: null)), Pod(2, "CrashLoopBackOff", restarts: 1, exit: 1)),
            [Good(1), Record(2, Outcomes.Progressing)],
            "objects > begin r2 > deployment r2 > fail r2 ContainerExited"
        },
        {
            "the new revision's container restarted twice (running again now): as on Docker, it failed",
            WithPods(Observed(Deployment(2, available: 0), new ObservedJob(2, Complete: true, Failure: null)), Pod(2, restarts: 2, exit: 137)),
            [Good(1), Record(2, Outcomes.Progressing)],
            "objects > begin r2 > deployment r2 > fail r2 ContainerExited"
        },
        {
            "one restart is not yet a crash loop: wait",
            WithPods(Observed(Deployment(2, available: 0), new ObservedJob(2, Complete: true, Failure: null)), Pod(2, restarts: 1, exit: 1)),
            [Good(1), Record(2, Outcomes.Progressing)],
            "objects > begin r2 > deployment r2 > wait deployment r2"
        },
        {
            "the new revision's image does not exist",
            WithPods(Observed(Deployment(2, available: 0), new ObservedJob(2, Complete: true, Failure: null)),
                Pod(2, "ErrImagePull", message: "failed to pull and unpack image \"docker.io/library/app:2\": docker.io/library/app:2: not found")),
            [Good(1), Record(2, Outcomes.Progressing)],
            "objects > begin r2 > deployment r2 > fail r2 ImageNotFound"
        },
        {
            "the new revision's image may not be pulled (credentials)",
            WithPods(Observed(Deployment(2, available: 0), new ObservedJob(2, Complete: true, Failure: null)),
                Pod(2, "ImagePullBackOff", message: "Back-off pulling image \"registry.example/app:2\": 401 Unauthorized")),
            [Good(1), Record(2, Outcomes.Progressing)],
            "objects > begin r2 > deployment r2 > fail r2 ImagePullFailed"
        },
        {
            "a crash-looping pod of the old revision does not fail the new one",
            WithPods(Observed(Deployment(2, available: 0), new ObservedJob(2, Complete: true, Failure: null)), Pod(1, "CrashLoopBackOff", restarts: 5, exit: 1), Pod(2)),
            [Good(1), Record(2, Outcomes.Progressing)],
            "objects > begin r2 > deployment r2 > wait deployment r2"
        },
        {
            "pods of the new revision before its template is applied (a Job's pod) are not the app's",
            WithPods(Observed(Deployment(1), new ObservedJob(2, Complete: false, Failure: null)), Pod(2, "CrashLoopBackOff", restarts: 3, exit: 1, component: StackNames.MigrateComponent)),
            [Good(1), Record(2, Outcomes.Progressing)],
            "objects > begin r2 > wait job r2"
        },
        {
            "the migration Job's pod cannot pull its image: the revision fails, the Deployment untouched",
            WithPods(Observed(Deployment(1), new ObservedJob(2, Complete: false, Failure: null)),
                Pod(2, "ImagePullBackOff", component: StackNames.MigrateComponent, message: "Back-off pulling image \"app:2\": manifest unknown")),
            [Good(1), Record(2, Outcomes.Progressing)],
            "objects > begin r2 > fail r2 ImageNotFound"
        },
        {
            "after a crash loop: back to the last good template",
            WithPods(Observed(Deployment(2, available: 0), new ObservedJob(2, Complete: true, Failure: null)), Pod(2, "CrashLoopBackOff", restarts: 4, exit: 1)),
            [Good(1), Record(2, Outcomes.RolledBack)],
            "objects > rollback to r1 (app:1) > prune"
        },
        {
            "the Deployment already has the revision (a crash after the apply): no Job is looked for",
            Observed(Deployment(2)),
            [Good(1), Record(2, Outcomes.Progressing)],
            "objects > begin r2 > deployment r2 > complete r2 > prune"
        },
    };

    [Theory]
    [MemberData(nameof(Rows))]
    public void Plan_follows_the_rollout_rules(string scenario, KubeObserved observed, RevisionRecord[] history, string expected)
    {
        var plan = KubeRolloutPlanner.Plan(WithMigration, observed, history);
        Assert.True(expected == Steps(plan), $"{scenario}: expected {expected}, got {Steps(plan)}");
    }

    [Fact]
    public void Without_a_migration_the_deployment_is_applied_at_once()
    {
        var desired = WithMigration with { HasMigration = false, DataComponents = [] };
        var plan = KubeRolloutPlanner.Plan(desired, new KubeObserved(Deployment(1), [], new Dictionary<string, bool>()), [Good(1)]);
        Assert.Equal("objects > begin r2 > deployment r2 > wait deployment r2", Steps(plan));
    }

    [Fact]
    public void Without_autoRollback_a_failed_revision_is_left_as_it_is()
    {
        var desired = WithMigration with { AutoRollback = false };
        var plan = KubeRolloutPlanner.Plan(desired, Observed(Deployment(2, available: 0, deadline: "timed out")), [Good(1), Record(2, Outcomes.Failed)]);
        Assert.Equal("objects > prune", Steps(plan));
    }

    [Fact]
    public void A_first_rollout_that_failed_has_nothing_to_roll_back_to()
    {
        var plan = KubeRolloutPlanner.Plan(WithMigration, Observed(Deployment(1, available: 0, deadline: "timed out")), [Record(1, Outcomes.Failed)]);
        Assert.Equal("objects > prune", Steps(plan));
    }

    [Fact]
    public void Every_wait_comes_back_by_itself()
    {
        var plan = KubeRolloutPlanner.Plan(WithMigration, Observed(Deployment(1)), [Good(1)]);
        var wait = Assert.Single(plan.Actions, a => a.IsWait);
        Assert.Equal(KubeRolloutPlanner.PollInterval, wait.RequeueAfter);
        Assert.Contains("migration Job", wait.Waiting, StringComparison.Ordinal);
    }

    [Fact]
    public void A_crash_loop_is_told_in_the_docker_targets_words_with_where_to_look()
    {
        var pod = new ObservedPod("api-7d9f-x2k", StackNames.AppComponent, 2, [new ObservedPodContainer("app", "CrashLoopBackOff", "back-off 40s restarting failed container", 3, 137, "OOMKilled")]);
        var failure = KubeRolloutPlanner.PodFailure([pod], StackNames.AppComponent, 2, crashes: true);
        Assert.NotNull(failure);
        Assert.Equal(Reasons.ContainerExited, failure.Value.Reason);
        Assert.Equal("container app of pod api-7d9f-x2k exited with code 137, OOMKilled (restarted 3 times); see kubectl logs api-7d9f-x2k -c app --previous", failure.Value.Message);

        var pull = new ObservedPod("api-7d9f-x2k", StackNames.AppComponent, 2, [new ObservedPodContainer("app", "ErrImagePull", "app:2: not found", 0, null, null)]);
        Assert.Equal(
            (Reasons.ImageNotFound, "container app of pod api-7d9f-x2k cannot pull its image (ErrImagePull: app:2: not found)"),
            KubeRolloutPlanner.PodFailure([pull], StackNames.AppComponent, 2, crashes: true));
        Assert.Null(KubeRolloutPlanner.PodFailure([pull], StackNames.AppComponent, 3, crashes: true));
    }
}
