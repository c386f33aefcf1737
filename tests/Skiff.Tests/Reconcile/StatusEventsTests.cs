using Skiff.Api;
using Skiff.Reconcile;

namespace Skiff.Tests.Reconcile;

/// <summary>The one place Events of state changes come from: the status before and after a write.</summary>
public class StatusEventsTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 3, 12, 0, 0, TimeSpan.Zero);

    private static AppDeploymentStatus Status(Action<AppDeploymentStatus>? change = null)
    {
        var status = new AppDeploymentStatus { History = [] };
        change?.Invoke(status);
        return status;
    }

    private static RevisionRecord Record(long revision, string outcome, string? reason = null) =>
        new() { Revision = revision, SpecHash = "h" + revision, Image = $"acme/api:{revision}", Outcome = outcome, Reason = reason, DeployedAt = Now.AddSeconds(-12) };

    private static void Condition(AppDeploymentStatus s, string type, bool value, string reason, string message = "m") =>
        Conditions.Set(s, type, value, reason, message, 1, Now);

    private static string[] Said(AppDeploymentStatus? before, AppDeploymentStatus after) =>
        StatusEvents.Between(before, after, Now).Select(e => $"{e.Kind} {e.Reason}").ToArray();

    [Fact]
    public void Nothing_changed_says_nothing()
    {
        var s = Status(x =>
        {
            x.History!.Add(Record(1, Outcomes.Succeeded));
            Condition(x, ConditionTypes.Ready, true, "Ready");
            Condition(x, ConditionTypes.Stalled, false, "Ready");
        });

        Assert.Empty(StatusEvents.Between(s, StackReconciler.CloneStatus(s), Now));
    }

    [Fact]
    public void A_first_rollout_that_succeeds_in_one_write_says_started_succeeded_and_ready()
    {
        var after = Status(x =>
        {
            x.History!.Add(Record(1, Outcomes.Succeeded));
            Condition(x, ConditionTypes.Ready, true, "Ready", "revision 1 is ready");
        });

        Assert.Equal(["Normal RolloutStarted", "Normal RolloutSucceeded", "Normal Ready"], Said(null, after));
        Assert.Equal("Revision 1 (acme/api:1) is live after 12.0s", StatusEvents.Between(null, after, Now)[1].Message);
    }

    [Fact]
    public void A_rollout_started_then_finished_in_two_writes_says_each_once()
    {
        var ready = Status(x =>
        {
            x.History!.Add(Record(1, Outcomes.Succeeded));
            Condition(x, ConditionTypes.Ready, true, "Ready");
        });
        var progressing = StackReconciler.CloneStatus(ready);
        progressing.History!.Add(Record(2, Outcomes.Progressing));
        var done = StackReconciler.CloneStatus(progressing);
        done.History!.Last().Outcome = Outcomes.Succeeded;

        Assert.Equal(["Normal RolloutStarted"], Said(ready, progressing));
        Assert.Equal(["Normal RolloutSucceeded"], Said(progressing, done));
    }

    [Theory]
    [InlineData(true)] // start-first: the old revision never stopped
    [InlineData(false)] // stop-first: it was stopped, then started again
    public void A_rollback_says_why_the_revision_failed_and_that_it_was_rolled_back(bool startFirst)
    {
        var before = Status(x =>
        {
            x.History!.Add(Record(1, Outcomes.Succeeded));
            x.History.Add(Record(2, Outcomes.Progressing));
            Condition(x, ConditionTypes.Ready, startFirst, startFirst ? "Ready" : "Replacing");
        });
        var after = StackReconciler.CloneStatus(before);
        after.History![1].Outcome = Outcomes.RolledBack;
        after.History[1].Reason = "HealthCheckFailed";
        Condition(after, ConditionTypes.Stalled, true, "HealthCheckFailed", "revision 2 (acme/api:2) failed: GET /healthz ...; rolled back to revision 1");
        Condition(after, ConditionTypes.Ready, false, "HealthCheckFailed", "revision 2 failed");

        var events = StatusEvents.Between(before, after, Now);

        Assert.Equal(["Warning HealthCheckFailed", "Warning RolledBack"], events.Select(e => $"{e.Kind} {e.Reason}"));
        Assert.StartsWith("revision 2 (acme/api:2) failed: GET /healthz", events[0].Message, StringComparison.Ordinal);
        Assert.Equal("Revision 2 was rolled back: serving revision 1 (acme/api:1) again", events[1].Message);
    }

    [Theory]
    [InlineData("InvalidSpec")]
    [InlineData("SecretNotFound")]
    [InlineData("RuntimeNotSupported")]
    [InlineData("VolumeNotFound")]
    [InlineData("OwnedByAnotherSource")]
    [InlineData("ImagePullFailed")]
    [InlineData("NetworkPoolExhausted")]
    public void Stalling_is_a_Warning_with_its_reason_once_and_again_when_the_reason_changes(string reason)
    {
        var stalled = Status(x =>
        {
            Condition(x, ConditionTypes.Stalled, true, reason, "what to fix");
            Condition(x, ConditionTypes.Ready, false, reason, "what to fix");
        });

        Assert.Equal([$"Warning {reason}"], Said(Status(), stalled));
        Assert.Empty(Said(stalled, StackReconciler.CloneStatus(stalled)));
        var other = StackReconciler.CloneStatus(stalled);
        Condition(other, ConditionTypes.Stalled, true, "DatabaseNotReady");
        Assert.Equal(["Warning DatabaseNotReady"], Said(stalled, other));
    }

    [Theory]
    [InlineData("CrashLooping", "Warning")]
    [InlineData("HealthCheckFailed", "Warning")]
    [InlineData("EngineUnreachable", "Warning")]
    [InlineData("Replacing", "Normal")]
    public void Ready_turning_False_after_a_rollout_says_why_and_turning_True_says_Ready(string reason, string kind)
    {
        var ready = Status(x => Condition(x, ConditionTypes.Ready, true, "Ready"));
        var not = StackReconciler.CloneStatus(ready);
        Condition(not, ConditionTypes.Ready, false, reason);

        Assert.Equal([$"{kind} {reason}"], Said(ready, not));
        Assert.Equal(["Normal Ready"], Said(not, ready));
    }

    [Fact]
    public void A_rollout_in_progress_is_said_by_RolloutStarted_alone()
    {
        var after = Status(x =>
        {
            x.History!.Add(Record(1, Outcomes.Progressing));
            Condition(x, ConditionTypes.Ready, false, "RolloutInProgress");
        });

        Assert.Equal(["Normal RolloutStarted"], Said(null, after));
    }

    [Fact]
    public void Disk_pressure_rising_is_a_Warning_and_clearing_a_Normal()
    {
        var calm = Status();
        var pressed = Status(x => Condition(x, ConditionTypes.DiskPressure, true, "DiskPressure"));
        var relieved = Status(x => Condition(x, ConditionTypes.DiskPressure, false, "DiskSpaceAvailable"));

        Assert.Equal(["Warning DiskPressure"], Said(calm, pressed));
        Assert.Equal(["Normal DiskSpaceAvailable"], Said(pressed, relieved));
        Assert.Empty(Said(calm, relieved));
    }

    [Fact]
    public void Events_go_to_the_sink_with_the_resource()
    {
        var sink = new Recorder();
        var resource = new AppDeployment { Metadata = new() { Name = "api", NamespaceProperty = "prod" } };

        StatusEvents.Record(sink, resource, Status(), Status(x => Condition(x, ConditionTypes.Stalled, true, "SecretNotFound", "spec.app.env[0]: ...")), Now);

        var (who, kind, reason, message) = Assert.Single(sink.Events);
        Assert.Same(resource, who);
        Assert.Equal((EventKind.Warning, "SecretNotFound", "spec.app.env[0]: ..."), (kind, reason, message));
    }

    private sealed class Recorder : IEventSink
    {
        public List<(AppDeployment, EventKind, string, string)> Events { get; } = [];

        public void Record(AppDeployment resource, EventKind kind, string reason, string message) => Events.Add((resource, kind, reason, message));
    }
}
