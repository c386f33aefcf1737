using Skiff.Api;
using Skiff.Reconcile;

namespace Skiff.Tests.Reconcile;

/// <summary>progressDeadlineSeconds counts from the moment the new app container starts (docs/CONFIGURATION.md).</summary>
public sealed class ProgressDeadlineTests
{
    private static readonly DateTimeOffset Created = new(2026, 12, 3, 12, 0, 0, TimeSpan.Zero);

    [Theory]
    [InlineData(29, false)]
    [InlineData(31, true)]
    public void A_container_created_by_an_operator_that_died_before_starting_it_gets_its_whole_deadline_from_its_start(int secondsAfterStart, bool fails)
    {
        var desired = DesiredStack.Build(
            new AppDeployment
            {
                Metadata = new() { Name = "api", NamespaceProperty = "prod" },
                Spec = new AppDeploymentSpec
                {
                    Node = "vps-1",
                    App = new AppSpec { Image = "acme/api:2", HealthCheck = new HealthCheckSpec { Http = new HttpCheck { Path = "/healthz", Port = 3000 } } },
                    Rollout = new RolloutSpec { ProgressDeadlineSeconds = 30 },
                },
            },
            ResolvedInputs.None,
            new StackContext("vps-1", "src", "test"));
        var spec = desired.AppContainer(2, desired.Image, rollback: false);
        // Created ten minutes before it was started (by the next operator).
        var started = Created + TimeSpan.FromMinutes(10);
        var app = new ObservedContainer("c2", spec.Name, spec.Image, "sha256:2", spec.Labels, "running", null, 0, 0, Created, started,
            new Dictionary<string, string> { [desired.Names.Network] = "10.0.0.2" });
        var history = new List<RevisionRecord> { new() { Revision = 2, SpecHash = desired.Hash, Image = desired.Image, Outcome = Outcomes.Progressing } };

        var plan = StackPlanner.Plan(desired, new ObservedStack(true, new Dictionary<string, IReadOnlyDictionary<string, string>?>(), [app]), history, started + TimeSpan.FromSeconds(secondsAfterStart));

        Assert.Equal(fails, plan.Actions.Any(a => a is FailRollout { Reason: Reasons.HealthCheckFailed }));
        Assert.Equal(!fails, plan.Actions.Any(a => a is WaitAppReady));
    }
}
