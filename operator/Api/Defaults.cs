using System.Text.Json;

namespace Skiff.Api;

/// <summary>
/// Fills in the defaults the CRD schema declares, so a resource read from a folder behaves exactly
/// like one that went through the API server. The result is a deep copy; the input is not changed.
/// </summary>
public static class Defaults
{
    public const string PostgresImage = "postgres:16";
    public const string RedisImage = "redis:7";

    public static AppDeploymentSpec Apply(AppDeploymentSpec spec)
    {
        var s = Clone(spec);
        s.Runtime ??= Runtimes.Docker;
        s.App.ImagePullPolicy ??= PullPolicies.IfNotPresent;
        if (s.App.HealthCheck is { } hc)
        {
            hc.PeriodSeconds ??= 5;
            hc.FailureThreshold ??= 3;
            hc.Http.Path ??= "/";
        }

        if (s.App.Migrate is { } m)
        {
            m.TimeoutSeconds ??= 300;
        }

        if (s.Database is { } db)
        {
            db.Engine ??= Engines.Postgres;
            db.Image ??= PostgresImage;
            db.Name ??= "app";
            db.User ??= "app";
            db.Storage ??= new StorageSpec();
            db.Storage.ReclaimPolicy ??= ReclaimPolicies.Retain;
        }

        if (s.Cache is { } cache)
        {
            cache.Engine ??= Engines.Redis;
            cache.Image ??= RedisImage;
            cache.Persistence ??= PersistenceModes.None;
            cache.Storage ??= new StorageSpec();
            cache.Storage.ReclaimPolicy ??= ReclaimPolicies.Retain;
        }

        s.Rollout ??= new RolloutSpec();
        s.Rollout.ProgressDeadlineSeconds ??= 120;
        s.Rollout.MinReadySeconds ??= 5;
        s.Rollout.AutoRollback ??= true;
        s.Rollout.RevisionHistoryLimit ??= 3;
        return s;
    }

    public static ImageGCPolicySpec Apply(ImageGCPolicySpec spec)
    {
        var s = Clone(spec);
        s.Nodes ??= [];
        s.HighThresholdPercent ??= 85;
        s.LowThresholdPercent ??= 80;
        s.MinimumAge ??= "1h";
        s.RetainPerRepository ??= 3;
        s.Keep ??= [];
        s.PruneBuildCache ??= false;
        s.Interval ??= "10m";
        s.DryRun ??= false;
        return s;
    }

    private static T Clone<T>(T value) =>
        JsonSerializer.Deserialize<T>(JsonSerializer.SerializeToUtf8Bytes(value))!;
}
