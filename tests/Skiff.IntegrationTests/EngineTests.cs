using System.Net;
using System.Text.Json;
using Docker.DotNet.Models;
using Skiff.IntegrationTests.Infrastructure;

namespace Skiff.IntegrationTests;

/// <summary>The real engine and the test images behave as the rest of the tests assume.</summary>
[Collection(DockerCollection.Name)]
public sealed class EngineTests(DockerFixture docker)
{
    private static readonly TimeSpan Startup = TimeSpan.FromSeconds(60);

    private static CancellationToken Timeout => new CancellationTokenSource(TimeSpan.FromMinutes(2)).Token;

    [Fact]
    public async Task Engine_speaks_API_1_41_or_newer()
    {
        var version = await docker.Client.System.GetVersionAsync(Timeout);

        Assert.False(string.IsNullOrEmpty(version.Version));
        Assert.True(System.Version.Parse(version.APIVersion) >= new System.Version(1, 41), $"API version {version.APIVersion}");
    }

    [Fact]
    public async Task Postgres_accepts_the_app_on_its_network_then_goes_away_with_it()
    {
        var ct = Timeout;
        var network = await docker.CreateNetworkAsync("net", ct);
        var (database, url) = await StartPostgresAsync(network, ct);

        var migrated = await MigrateAsync(network, url, ct);

        Assert.Contains("table visits is ready", migrated.Output);
        Assert.DoesNotContain(PasswordOf(url), migrated.Output);
        var pgVersion = await docker.ExecAsync(database, ["cat", "/var/lib/postgresql/data/PG_VERSION"], ct);
        Assert.Equal("15", pgVersion.Output.Trim());

        await docker.RemoveContainerAsync(database, ct);
        await docker.Client.Networks.DeleteNetworkAsync(network, ct);
        var left = await docker.Client.Containers.ListContainersAsync(
            new ContainersListParameters { All = true, Filters = Filter("id", database) }, ct);
        Assert.Empty(left);
        var networks = await docker.Client.Networks.ListNetworksAsync(new NetworksListParameters { Filters = Filter("name", network) }, ct);
        Assert.DoesNotContain(networks, n => n.Name == network);
    }

    [Fact]
    public async Task Redis_answers_ping_from_redis_cli()
    {
        var ct = Timeout;
        var network = await docker.CreateNetworkAsync("net", ct);
        var redis = await StartRedisAsync(network, ct);

        var ping = await Eventually.ValueAsync("redis-cli ping", async t =>
        {
            var run = await docker.ExecAsync(redis, ["redis-cli", "ping"], t);
            return (run.ExitCode == 0 && run.Output.Trim() == "PONG" ? run : null, run.ToString());
        }, Startup, ct, DockerFixture.PollInterval);

        Assert.Equal("PONG", ping.Output.Trim());
    }

    [Fact]
    public async Task App_is_healthy_with_its_backends_and_counts_visits_and_hits()
    {
        var ct = Timeout;
        var network = await docker.CreateNetworkAsync("net", ct);
        var (_, databaseUrl) = await StartPostgresAsync(network, ct);
        var redis = await StartRedisAsync(network, ct);
        var redisName = (await docker.Client.Containers.InspectContainerAsync(redis, ct)).Name.TrimStart('/');
        await MigrateAsync(network, databaseUrl, ct);

        var port = DockerFixture.FreeTcpPort();
        await docker.StartContainerAsync(new CreateContainerParameters
        {
            Image = TestImages.App1,
            Env = [$"DATABASE_URL={databaseUrl}", $"REDIS_URL=redis://{redisName}:6379/0"],
            ExposedPorts = new Dictionary<string, EmptyStruct> { [$"{TestImages.AppPort}/tcp"] = default },
            HostConfig = new HostConfig
            {
                NetworkMode = network,
                PortBindings = new Dictionary<string, IList<PortBinding>>
                {
                    [$"{TestImages.AppPort}/tcp"] = [new PortBinding { HostIP = "127.0.0.1", HostPort = port.ToString(System.Globalization.CultureInfo.InvariantCulture) }],
                },
            },
        }, ct);
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(10) };

        var health = await Eventually.ValueAsync("/healthz 200", async t =>
        {
            try
            {
                using var response = await http.GetAsync("/healthz", t);
                var body = await response.Content.ReadAsStringAsync(t);
                return (response.StatusCode == HttpStatusCode.OK ? body : null, $"{(int)response.StatusCode} {body}");
            }
            catch (HttpRequestException e)
            {
                return (null, e.Message);
            }
        }, Startup, ct, DockerFixture.PollInterval);
        var first = await GetJsonAsync(http, ct);
        var second = await GetJsonAsync(http, ct);

        Assert.Equal("ok", health.Trim());
        Assert.Equal("1", first.GetProperty("version").GetString());
        Assert.Equal(1, first.GetProperty("visits").GetInt64());
        Assert.Equal(2, second.GetProperty("visits").GetInt64());
        Assert.Equal(1, first.GetProperty("hits").GetInt64());
        Assert.Equal(2, second.GetProperty("hits").GetInt64());
    }

    [Fact]
    public async Task Bad_migrate_image_fails_its_migration()
    {
        var run = await docker.RunToCompletionAsync(
            new CreateContainerParameters { Image = TestImages.AppBadMigrate, Cmd = ["migrate"] }, Startup, Timeout);

        Assert.Equal(1, run.ExitCode);
        Assert.Contains("TESTAPP_FAIL_MIGRATE", run.Output);
    }

    [Fact]
    public async Task Bad_health_image_answers_500_on_healthz()
    {
        var ct = Timeout;
        var network = await docker.CreateNetworkAsync("net", ct);
        var app = await docker.StartContainerAsync(
            new CreateContainerParameters { Image = TestImages.AppBadHealth, HostConfig = new HostConfig { NetworkMode = network } }, ct);
        var name = (await docker.Client.Containers.InspectContainerAsync(app, ct)).Name.TrimStart('/');

        // From a container on the same network, as Skiff probes apps that publish no port.
        var probe = await Eventually.ValueAsync("an answer from /healthz", async t =>
        {
            var run = await docker.RunToCompletionAsync(new CreateContainerParameters
            {
                Image = TestImages.Busybox,
                // nc rather than wget: busybox wget hides the body of an error answer. The sleep keeps nc's stdin
                // open: at its end busybox nc half-closes the connection, and Kestrel takes a FIN as an abort.
                Cmd = ["sh", "-c", $"(printf 'GET /healthz HTTP/1.0\\r\\nHost: app\\r\\n\\r\\n'; sleep 3) | nc -w 5 {name} {TestImages.AppPort}; true"],
                HostConfig = new HostConfig { NetworkMode = network },
            }, TimeSpan.FromSeconds(30), t);
            return (run.Output.StartsWith("HTTP/", StringComparison.Ordinal) ? run : null, run.Output);
        }, Startup, ct, DockerFixture.PollInterval);

        Assert.StartsWith("HTTP/1.1 500", probe.Output, StringComparison.Ordinal);
        Assert.Contains("TESTAPP_FAIL_HEALTH", probe.Output);
    }

    private async Task<(string Id, string Url)> StartPostgresAsync(string network, CancellationToken ct)
    {
        var password = Guid.NewGuid().ToString("N");
        var id = await docker.StartContainerAsync(new CreateContainerParameters
        {
            Image = TestImages.Postgres,
            Env = [$"POSTGRES_PASSWORD={password}", "POSTGRES_USER=app", "POSTGRES_DB=appdb"],
            HostConfig = new HostConfig { NetworkMode = network },
            StopSignal = "SIGINT",
        }, ct);
        var name = (await docker.Client.Containers.InspectContainerAsync(id, ct)).Name.TrimStart('/');
        return (id, $"postgres://app:{password}@{name}:5432/appdb");
    }

    private Task<string> StartRedisAsync(string network, CancellationToken ct) =>
        docker.StartContainerAsync(new CreateContainerParameters
        {
            Image = TestImages.Redis,
            Cmd = ["redis-server", "--appendonly", "yes", "--maxmemory", "256mb", "--dir", "/data"],
            HostConfig = new HostConfig { NetworkMode = network },
        }, ct);

    /// <summary>The database accepts connections once a migration succeeds; it may take a few tries while it initialises.</summary>
    private Task<ContainerRun> MigrateAsync(string network, string databaseUrl, CancellationToken ct) =>
        Eventually.ValueAsync("a successful migration", async t =>
        {
            var run = await docker.RunTestAppMigrateAsync(network, databaseUrl, t);
            return (run.ExitCode == 0 ? run : null, run.ToString());
        }, Startup, ct, DockerFixture.PollInterval);

    private static async Task<JsonElement> GetJsonAsync(HttpClient http, CancellationToken ct)
    {
        using var response = await http.GetAsync("/", ct);
        var body = await response.Content.ReadAsStringAsync(ct);
        Assert.True(response.IsSuccessStatusCode, $"GET / answered {(int)response.StatusCode}: {body}");
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    private static string PasswordOf(string url) => new Uri(url).UserInfo.Split(':')[1];

    private static Dictionary<string, IDictionary<string, bool>> Filter(string key, string value) =>
        new() { [key] = new Dictionary<string, bool> { [value] = true } };
}
