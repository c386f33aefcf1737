using System.Globalization;
using Npgsql;

namespace Skiff.TestApp;

/// <summary>The app's use of its database and cache.</summary>
internal sealed class Backends(Settings settings) : IAsyncDisposable
{
    private readonly NpgsqlDataSource? _database =
        settings.DatabaseConnectionString is null ? null : NpgsqlDataSource.Create(settings.DatabaseConnectionString);

    /// <summary>Null when every configured backend answers, else why not.</summary>
    public async Task<string?> CheckAsync(CancellationToken ct)
    {
        var problems = new List<string>();
        if (_database is not null)
        {
            try
            {
                await using var command = _database.CreateCommand("SELECT 1");
                await command.ExecuteScalarAsync(ct);
            }
            catch (Exception e) when (e is NpgsqlException or TimeoutException or IOException or InvalidOperationException)
            {
                problems.Add($"database: {e.Message}");
            }
        }

        if (settings.Redis is { } redis)
        {
            try
            {
                await using var client = await RespClient.ConnectAsync(redis, ct);
                var reply = await client.CommandAsync(ct, "PING");
                if (reply != "PONG")
                {
                    problems.Add($"cache: PING answered '{reply}'");
                }
            }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or RedisException)
            {
                problems.Add($"cache: {e.Message}");
            }
        }

        return problems.Count == 0 ? null : settings.Mask(string.Join("; ", problems));
    }

    /// <summary>Records a visit; returns the number of visits so far, or null without a database.</summary>
    public async Task<long?> RecordVisitAsync(CancellationToken ct)
    {
        if (_database is null)
        {
            return null;
        }

        await using var command = _database.CreateCommand("INSERT INTO visits DEFAULT VALUES; SELECT count(*) FROM visits");
        return Convert.ToInt64(await command.ExecuteScalarAsync(ct), CultureInfo.InvariantCulture);
    }

    /// <summary>Counts a hit in Redis; returns the count, or null without a cache.</summary>
    public async Task<long?> RecordHitAsync(CancellationToken ct)
    {
        if (settings.Redis is not { } redis)
        {
            return null;
        }

        await using var client = await RespClient.ConnectAsync(redis, ct);
        return long.Parse(await client.CommandAsync(ct, "INCR", "hits") ?? "0", CultureInfo.InvariantCulture);
    }

    public async ValueTask DisposeAsync()
    {
        if (_database is not null)
        {
            await _database.DisposeAsync();
        }
    }
}
