using Npgsql;

namespace Skiff.TestApp;

internal sealed class SettingsException(string message) : Exception(message);

/// <summary>Everything the app reads from its environment.</summary>
internal sealed record Settings(
    string Version,
    int Port,
    string? DatabaseConnectionString,
    RedisEndpoint? Redis,
    bool FailHealth,
    bool FailMigrate,
    IReadOnlyList<string> Secrets)
{
    public static Settings FromEnvironment()
    {
        var secrets = new List<string>();
        var portText = Environment.GetEnvironmentVariable("PORT");
        var port = 8080;
        if (!string.IsNullOrEmpty(portText) && (!int.TryParse(portText, out port) || port is < 1 or > 65535))
        {
            throw new SettingsException($"PORT must be a number between 1 and 65535, got '{portText}'");
        }

        var databaseUrl = Environment.GetEnvironmentVariable("DATABASE_URL");
        var redisUrl = Environment.GetEnvironmentVariable("REDIS_URL");
        return new Settings(
            Version: Environment.GetEnvironmentVariable("APP_VERSION") is { Length: > 0 } v ? v : "dev",
            Port: port,
            DatabaseConnectionString: string.IsNullOrEmpty(databaseUrl) ? null : ToNpgsql(databaseUrl, secrets),
            Redis: string.IsNullOrEmpty(redisUrl) ? null : RedisEndpoint.Parse(redisUrl, secrets),
            FailHealth: Environment.GetEnvironmentVariable("TESTAPP_FAIL_HEALTH") == "1",
            FailMigrate: Environment.GetEnvironmentVariable("TESTAPP_FAIL_MIGRATE") == "1",
            Secrets: secrets)
        {
            MigrateDelay = Seconds("TESTAPP_MIGRATE_SECONDS"),
            HealthyAfter = Seconds("TESTAPP_HEALTHY_AFTER_SECONDS"),
            Control = Environment.GetEnvironmentVariable("TESTAPP_CONTROL") == "1",
            TcpPort = int.TryParse(Environment.GetEnvironmentVariable("TESTAPP_TCP_PORT"), out var tcp) && tcp is > 0 and < 65536 ? tcp : null,
            StopGrace = int.TryParse(Environment.GetEnvironmentVariable("TESTAPP_STOP_GRACE_SECONDS"), out var grace) && grace >= 0 ? grace : 2,
        };
    }

    /// <summary>How long <c>/healthz</c> answers 503 after start (TESTAPP_HEALTHY_AFTER_SECONDS): an app that warms up, to hold a rollout.</summary>
    public TimeSpan HealthyAfter { get; init; }

    private static TimeSpan Seconds(string variable) =>
        int.TryParse(Environment.GetEnvironmentVariable(variable), out var seconds) && seconds > 0 ? TimeSpan.FromSeconds(seconds) : TimeSpan.Zero;

    /// <summary>How long a migration works before it finishes (TESTAPP_MIGRATE_SECONDS): a long migration, to be interrupted.</summary>
    public TimeSpan MigrateDelay { get; init; }

    /// <summary>TESTAPP_TCP_PORT: also a TCP echo server there (the version and a newline, then every byte back).</summary>
    public int? TcpPort { get; init; }

    /// <summary>TESTAPP_STOP_GRACE_SECONDS (default 2): how long requests in flight get after SIGTERM.</summary>
    public int StopGrace { get; init; }

    /// <summary>TESTAPP_CONTROL=1: <c>GET /control/unhealthy</c> and <c>/control/healthy</c> turn the health check off and on.</summary>
    public bool Control { get; init; }

    /// <summary>postgres://user:pass@host:port/db → an Npgsql connection string.</summary>
    internal static string ToNpgsql(string url, List<string> secrets)
    {
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("postgres" or "postgresql"))
        {
            throw new SettingsException("DATABASE_URL must look like postgres://user:password@host:5432/database");
        }

        var (user, password) = SplitUserInfo(uri.UserInfo);
        if (password is { Length: > 0 })
        {
            secrets.Add(password);
        }

        var builder = new NpgsqlConnectionStringBuilder
        {
            Host = uri.Host,
            Port = uri.IsDefaultPort || uri.Port < 0 ? 5432 : uri.Port,
            Username = user,
            Password = password,
            Database = Uri.UnescapeDataString(uri.AbsolutePath.TrimStart('/')) is { Length: > 0 } db ? db : user,
            Timeout = 5,
            CommandTimeout = 5,
            // Probes and requests must notice a dead server quickly rather than reuse a broken connection.
            ConnectionLifetime = 60,
        };
        return builder.ConnectionString;
    }

    internal static (string? User, string? Password) SplitUserInfo(string userInfo)
    {
        if (userInfo.Length == 0)
        {
            return (null, null);
        }

        var colon = userInfo.IndexOf(':', StringComparison.Ordinal);
        return colon < 0
            ? (Uri.UnescapeDataString(userInfo), null)
            : (Uri.UnescapeDataString(userInfo[..colon]), Uri.UnescapeDataString(userInfo[(colon + 1)..]));
    }

    /// <summary>Replaces every known secret in a message, so no password reaches a log or a response.</summary>
    public string Mask(string message)
    {
        foreach (var secret in Secrets)
        {
            message = message.Replace(secret, "***", StringComparison.Ordinal);
        }

        return message;
    }
}

/// <summary>Where Redis is: redis://[user][:password@]host[:port][/db].</summary>
internal sealed record RedisEndpoint(string Host, int Port, string? User, string? Password, int Database)
{
    public static RedisEndpoint Parse(string url, List<string> secrets)
    {
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("redis" or "rediss"))
        {
            throw new SettingsException("REDIS_URL must look like redis://host:6379/0 (optionally redis://:password@host:6379/0)");
        }

        var (user, password) = Settings.SplitUserInfo(uri.UserInfo);
        if (password is { Length: > 0 })
        {
            secrets.Add(password);
        }

        var path = uri.AbsolutePath.Trim('/');
        var database = 0;
        if (path.Length > 0 && !int.TryParse(path, out database))
        {
            throw new SettingsException($"REDIS_URL database must be a number, got '{path}'");
        }

        return new RedisEndpoint(
            uri.Host,
            uri.IsDefaultPort || uri.Port < 0 ? 6379 : uri.Port,
            string.IsNullOrEmpty(user) ? null : user,
            string.IsNullOrEmpty(password) ? null : password,
            database);
    }
}
