using Skiff.Api;
using Skiff.Reconcile;

namespace Skiff.Tests.Reconcile;

public class SpecHashTests
{
    private static AppDeploymentSpec Known() => new()
    {
        Node = "vps-1",
        App = new AppSpec
        {
            Image = "registry.example.com/acme/api:1.4.2",
            Env = [new EnvVar { Name = "NODE_ENV", Value = "production" }],
            Ports = [new PortSpec { Name = "http", ContainerPort = 3000, HostPort = 3000 }],
            HealthCheck = new HealthCheckSpec { Http = new HttpCheck { Path = "/healthz", Port = "http" } },
            Migrate = new MigrateSpec { Command = ["npx", "prisma", "migrate", "deploy"] },
        },
        Database = new DatabaseSpec { Name = "app", User = "app" },
    };

    /// <summary>
    /// Pins the hash of a known spec. If this fails, every app on every node would restart after an
    /// upgrade: change the canonical form only with a migration plan.
    /// </summary>
    [Fact]
    public void Golden_hash_of_a_known_spec_is_stable()
    {
        var actual = SpecHash.Compute(Known());
        Assert.Equal("ca36cf7626ea7ca948e9dd3de5480483223c09237647fe7febb661e0fef0905c", actual);
    }

    [Fact]
    public void Defaults_written_out_do_not_change_the_hash()
    {
        var explicitDefaults = Known();
        explicitDefaults.Runtime = "docker";
        explicitDefaults.App.ImagePullPolicy = "IfNotPresent";
        explicitDefaults.Rollout = new RolloutSpec { ProgressDeadlineSeconds = 120, MinReadySeconds = 5, AutoRollback = true, RevisionHistoryLimit = 3 };
        Assert.Equal(SpecHash.Compute(Known()), SpecHash.Compute(explicitDefaults));
    }

    [Fact]
    public void Any_real_change_changes_the_hash()
    {
        var changed = Known();
        changed.App.Image = "registry.example.com/acme/api:1.4.3";
        Assert.NotEqual(SpecHash.Compute(Known()), SpecHash.Compute(changed));
    }
}
