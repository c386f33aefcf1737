using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Docker.DotNet.Models;
using Microsoft.Extensions.Logging.Abstractions;
using Skiff.Api;
using Skiff.Docker;
using Skiff.Reconcile;
using Skiff.IntegrationTests.Infrastructure;

namespace Skiff.IntegrationTests.DockerTarget;

/// <summary>Secrets kept in memory, for driving the Docker target without a source.</summary>
public sealed class InMemorySecrets : ISecretSource
{
    public ConcurrentDictionary<string, Dictionary<string, byte[]>> Secrets { get; } = new();

    public Task<IReadOnlyDictionary<string, byte[]>?> GetSecretAsync(string @namespace, string name, CancellationToken ct) =>
        Task.FromResult<IReadOnlyDictionary<string, byte[]>?>(Secrets.TryGetValue($"{@namespace}/{name}", out var s) ? s : null);

    public Task<DatabaseCredentials> EnsureDatabaseCredentialsAsync(StackNames names, string database, string user, CancellationToken ct)
    {
        var secret = Secrets.GetOrAdd($"{names.Namespace}/{names.DatabaseSecret}", _ => new Dictionary<string, byte[]>
        {
            ["username"] = Encoding.UTF8.GetBytes(user),
            ["password"] = Encoding.UTF8.GetBytes(Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16))),
            ["database"] = Encoding.UTF8.GetBytes(database),
        });
        return Task.FromResult(new DatabaseCredentials(
            Encoding.UTF8.GetString(secret["username"]), Encoding.UTF8.GetString(secret["password"]), Encoding.UTF8.GetString(secret["database"])));
    }

    public Task DeleteDatabaseCredentialsAsync(StackNames names, CancellationToken ct)
    {
        Secrets.TryRemove($"{names.Namespace}/{names.DatabaseSecret}", out _);
        return Task.CompletedTask;
    }

    public void Put(string ns, string name, string key, string value) =>
        Secrets[$"{ns}/{name}"] = new Dictionary<string, byte[]> { [key] = Encoding.UTF8.GetBytes(value) };
}

/// <summary>Events kept in memory.</summary>
public sealed class RecordingEvents : IEventSink
{
    public ConcurrentQueue<(EventKind Kind, string Reason, string Message)> Events { get; } = new();

    public void Record(AppDeployment resource, EventKind kind, string reason, string message) => Events.Enqueue((kind, reason, message));
}

/// <summary>
/// Drives the Docker target on the real engine for one test: its own source id and namespace, so
/// its objects never mix with another test's, and everything it created is removed at the end.
/// </summary>
public sealed class StackHarness : IAsyncDisposable
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(5) };

    public StackHarness(string? sourceId = null, StackServices? services = null)
    {
        var id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4));
        Namespace = "t" + id;
        SourceId = sourceId ?? "test-" + id;
        Engine = new DockerEngine(Environment.GetEnvironmentVariable("DOCKER_HOST"));
        Reconciler = new StackReconciler(Engine, Secrets, new StackContext("local", SourceId, "test " + id), Events, NullLogger<StackReconciler>.Instance, services);
    }

    public string Namespace { get; }

    public string SourceId { get; }

    public DockerEngine Engine { get; }

    public InMemorySecrets Secrets { get; } = new();

    public RecordingEvents Events { get; } = new();

    public StackReconciler Reconciler { get; }

    /// <summary>The seed API (<see cref="Stacks.Api"/>) at generation 1, as a source hands it over.</summary>
    public static AppDeployment ApiWithDatabase(string ns, string name, string image = TestImages.App1) => AsGeneration1(Stacks.Api(name, ns, image));

    /// <summary>The seed bot (<see cref="Stacks.Bot"/>) at generation 1, with its Secret in <see cref="Secrets"/>.</summary>
    public AppDeployment BotWithRedis(string name)
    {
        Secrets.Put(Namespace, Stacks.BotSecretName, Stacks.BotTokenKey, Stacks.BotToken);
        return AsGeneration1(Stacks.Bot(name, Namespace));
    }

    private static AppDeployment AsGeneration1(AppDeployment resource)
    {
        resource.Metadata.Generation = 1;
        return resource;
    }

    /// <summary>Reconciles until the rollout is over (Ready, failed or stalled) and stores each new status on the resource, as a source would.</summary>
    public async Task<StackResult> ReconcileAsync(AppDeployment resource)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        return await SettleAsync(Reconciler, resource, cts.Token);
    }

    /// <summary>
    /// What a source's work queue does for one resource: reconcile, store the status, and come back after the interval
    /// the reconcile asked for while its status says a rollout step is under way (a reconcile never waits itself).
    /// </summary>
    public static async Task<StackResult> SettleAsync(StackReconciler reconciler, AppDeployment resource, CancellationToken ct)
    {
        while (true)
        {
            var result = await reconciler.ReconcileAsync(resource, (s, _) => { resource.Status = StackReconciler.CloneStatus(s); return Task.CompletedTask; }, ct);
            resource.Status = result.Status;
            if (!Conditions.RolloutInProgress(result.Status))
            {
                return result;
            }

            await Task.Delay(result.RequeueAfter ?? StackAction.PollInterval, ct);
        }
    }

    public async Task<IReadOnlyList<ObservedContainer>> ContainersAsync(AppDeployment resource) =>
        await Engine.ListContainersAsync(new Dictionary<string, string> { [SkiffLabels.App] = $"{resource.Metadata.NamespaceProperty}/{resource.Metadata.Name}" }, CancellationToken.None);

    /// <summary>GET on the running app container of the stack, through its address on the stack network.</summary>
    public async Task<(int Status, string Body)> GetAppAsync(AppDeployment resource, string path)
    {
        var app = (await ContainersAsync(resource)).Single(c => c.Component == StackNames.AppComponent && c.Running);
        var ip = app.NetworkIps.Values.First();
        using var response = await Http.GetAsync(new Uri($"http://{ip}:8080{path}"));
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    public async Task<JsonObject> GetAppJsonAsync(AppDeployment resource)
    {
        var (status, body) = await GetAppAsync(resource, "/");
        Assert.True(status == 200, $"GET / answered {status}: {body}");
        return JsonNode.Parse(body)!.AsObject();
    }

    public async ValueTask DisposeAsync()
    {
        Reconciler.Dispose();
        var client = Engine.Client;
        var filter = new Dictionary<string, IDictionary<string, bool>> { ["label"] = new Dictionary<string, bool> { [$"{SkiffLabels.Source}={SourceId}"] = true } };
        foreach (var c in await client.Containers.ListContainersAsync(new ContainersListParameters { All = true, Filters = filter }))
        {
            await client.Containers.RemoveContainerAsync(c.ID, new ContainerRemoveParameters { Force = true, RemoveVolumes = true });
        }

        foreach (var n in await client.Networks.ListNetworksAsync(new NetworksListParameters { Filters = filter }))
        {
            await client.Networks.DeleteNetworkAsync(n.ID);
        }

        var volumes = await client.Volumes.ListAsync(new VolumesListParameters { Filters = filter });
        foreach (var v in volumes.Volumes ?? [])
        {
            await client.Volumes.RemoveAsync(v.Name, force: true);
        }

        Engine.Dispose();
    }
}
