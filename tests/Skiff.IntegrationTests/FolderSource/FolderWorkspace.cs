using System.Security.Cryptography;
using Docker.DotNet.Models;
using Skiff.Api;
using Skiff.Docker;
using Skiff.Reconcile;
using Skiff.IntegrationTests.Infrastructure;

namespace Skiff.IntegrationTests.FolderSource;

/// <summary>A resources folder and a state folder of one test, with a namespace of its own; removes what it created.</summary>
public sealed class FolderWorkspace : IAsyncDisposable
{
    public FolderWorkspace()
    {
        var id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4));
        Namespace = "f" + id;
        Root = Path.Combine(Path.GetTempPath(), "skiff-it-" + id);
        Resources = Path.Combine(Root, "resources");
        StateDir = Path.Combine(Root, "state");
        System.IO.Directory.CreateDirectory(Resources);
        Engine = new DockerEngine(Environment.GetEnvironmentVariable("DOCKER_HOST"));
    }

    public string Namespace { get; }

    public string Root { get; }

    public string Resources { get; }

    public string StateDir { get; }

    public DockerEngine Engine { get; }

    public string[] RunOnceArgs(string? resources = null, string? stateDir = null) =>
        ["run", "--path", resources ?? Resources, "--node", "local", "--once", "--state-dir", stateDir ?? StateDir,
         "--metrics-bind-address", "0", "--health-probe-bind-address", "0", "--log-level", "warning"];

    public string[] RunArgs() =>
        ["run", "--path", Resources, "--node", "local", "--state-dir", StateDir,
         "--metrics-bind-address", "0", "--health-probe-bind-address", "0"];

    public void Write(string file, string yaml) => File.WriteAllText(Path.Combine(Resources, file), yaml);

    public void Delete(string file) => File.Delete(Path.Combine(Resources, file));

    /// <summary>
    /// The seed API (<see cref="Stacks.Api"/>) in this workspace's namespace, as YAML; <paramref name="healthyAfter"/> seconds
    /// pass before its health check passes; <paramref name="edit"/> changes the spec first.
    /// </summary>
    public string Api(string name = "api", string image = TestImages.App1, int deadline = 60, int healthyAfter = 0, Action<AppDeploymentSpec>? edit = null)
    {
        var api = Stacks.Api(name, Namespace, image, deadline: deadline);
        if (healthyAfter > 0)
        {
            api.WithEnv("TESTAPP_HEALTHY_AFTER_SECONDS", healthyAfter);
        }

        return Stacks.Yaml(api.With(edit));
    }

    /// <summary>The seed bot (<see cref="Stacks.Bot"/>) and its Secret in this workspace's namespace, as YAML.</summary>
    public string Bot(string name = "bot") => Stacks.Yaml(Stacks.Bot(name, Namespace), Stacks.BotSecret(Namespace));

    /// <summary>Containers of this workspace's namespace, by stack.</summary>
    public Task<IReadOnlyList<ObservedContainer>> ContainersAsync(string? stack = null) => ContainersAsync(Engine, Namespace, stack);

    /// <summary>Skiff's containers of namespace <paramref name="ns"/> on <paramref name="engine"/> (by label dev.skiff.app), by stack.</summary>
    public static async Task<IReadOnlyList<ObservedContainer>> ContainersAsync(DockerEngine engine, string ns, string? stack = null)
    {
        var all = await engine.ListContainersAsync(new Dictionary<string, string> { [SkiffLabels.ManagedBy] = SkiffLabels.ManagedByValue }, CancellationToken.None);
        return all.Where(c => c.Label(SkiffLabels.App) is { } app && app.StartsWith(ns + "/", StringComparison.Ordinal)
            && (stack is null || app == $"{ns}/{stack}")).ToList();
    }

    /// <summary>Removes Skiff's containers, networks and volumes of namespace <paramref name="ns"/> from <paramref name="engine"/>.</summary>
    public static async Task RemoveNamespaceAsync(DockerEngine engine, string ns)
    {
        var client = engine.Client;
        foreach (var c in await ContainersAsync(engine, ns))
        {
            await client.Containers.RemoveContainerAsync(c.Id, new ContainerRemoveParameters { Force = true, RemoveVolumes = true });
        }

        foreach (var n in await client.Networks.ListNetworksAsync(new NetworksListParameters()))
        {
            if (n.Name.StartsWith($"skiff_{ns}_", StringComparison.Ordinal))
            {
                await client.Networks.DeleteNetworkAsync(n.ID);
            }
        }

        foreach (var v in (await client.Volumes.ListAsync(CancellationToken.None)).Volumes ?? [])
        {
            if (v.Name.StartsWith($"skiff_{ns}_", StringComparison.Ordinal))
            {
                await client.Volumes.RemoveAsync(v.Name, force: true);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await RemoveNamespaceAsync(Engine, Namespace);
        Engine.Dispose();
        try
        {
            System.IO.Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
