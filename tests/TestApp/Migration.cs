using Npgsql;

namespace Skiff.TestApp;

/// <summary><c>testapp migrate</c>: what a real app's migration step does, with the failure modes a rollout must handle.</summary>
internal static class Migration
{
    public const string CreateVisits =
        "CREATE TABLE IF NOT EXISTS visits (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())";

    private static readonly TimeSpan RetryFor = TimeSpan.FromSeconds(5);

    /// <summary>What a migration tool stopped by SIGTERM exits with by convention (128 + 15), as Node's and Python's do.</summary>
    private const int Terminated = 143;

    public static async Task<int> RunAsync(Settings settings, CancellationToken ct)
    {
        if (settings.FailMigrate)
        {
            Log.Line("migrate: failing on purpose (TESTAPP_FAIL_MIGRATE=1)");
            return 1;
        }

        if (settings.DatabaseConnectionString is null)
        {
            Log.Line("migrate: DATABASE_URL is not set, nothing to migrate");
            return 0;
        }

        // A database that is still starting refuses connections for a moment: retry briefly, as migration tools do.
        var deadline = DateTime.UtcNow + RetryFor;
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await using var connection = new NpgsqlConnection(settings.DatabaseConnectionString);
                await connection.OpenAsync(ct);
                await using var command = new NpgsqlCommand(CreateVisits, connection);
                await command.ExecuteNonQueryAsync(ct);
                if (settings.MigrateDelay > TimeSpan.Zero)
                {
                    Log.Line($"migrate: working for {settings.MigrateDelay.TotalSeconds:0}s");
                    await Task.Delay(settings.MigrateDelay, ct);
                }

                Log.Line("migrate: table visits is ready");
                return 0;
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                Log.Line("migrate: interrupted");
                return Terminated;
            }
            catch (Exception e) when (e is NpgsqlException or TimeoutException or IOException)
            {
                var message = settings.Mask(e.Message);
                if (DateTime.UtcNow >= deadline || e is PostgresException { SqlState: "28P01" or "3D000" })
                {
                    Log.Line($"migrate: failed after {attempt} attempt(s): {message}");
                    return 1;
                }

                Log.Line($"migrate: attempt {attempt} failed ({message}), retrying");
                try
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(500), ct);
                }
                catch (OperationCanceledException)
                {
                    Log.Line("migrate: interrupted");
                    return Terminated;
                }
            }
        }
    }
}
