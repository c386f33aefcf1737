namespace Skiff.IntegrationTests.Infrastructure;

/// <summary>The images scripts/build-test-images.sh builds (no registry is reachable in tests).</summary>
public static class TestImages
{
    /// <summary>PostgreSQL 15 with the official image's conventions (POSTGRES_PASSWORD, POSTGRES_USER, POSTGRES_DB, PGDATA).</summary>
    public const string Postgres = "skiff-test/postgres:15";

    /// <summary>Redis 7; arguments pass through ("redis-server --appendonly yes --dir /data").</summary>
    public const string Redis = "skiff-test/redis:7";

    public const string Busybox = "skiff-test/busybox:latest";

    /// <summary>The test app reporting version "1"; entrypoint <c>testapp</c>, <c>migrate</c> as the command migrates.</summary>
    public const string App1 = "skiff-test/app:1";

    /// <summary>The same app reporting version "2".</summary>
    public const string App2 = "skiff-test/app:2";

    /// <summary>The app whose /healthz always answers 500.</summary>
    public const string AppBadHealth = "skiff-test/app:bad-health";

    /// <summary>The app whose migration always exits 1.</summary>
    public const string AppBadMigrate = "skiff-test/app:bad-migrate";

    public static IReadOnlyList<string> All { get; } = [Postgres, Redis, Busybox, App1, App2, AppBadHealth, AppBadMigrate];

    /// <summary>The port the app listens on unless PORT says otherwise.</summary>
    public const int AppPort = 8080;
}
