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
}
