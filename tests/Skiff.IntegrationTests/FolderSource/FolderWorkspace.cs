using System.Security.Cryptography;
using Docker.DotNet.Models;
using Skiff.Docker;
using Skiff.Reconcile;

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

    /// <summary>An API with PostgreSQL and a migration; <paramref name="healthyAfter"/> seconds pass before its health check passes.</summary>
    public string Api(string name = "api", string image = "skiff-test/app:1", int deadline = 60, int healthyAfter = 0) => $"""
        apiVersion: skiff.dev/v1alpha1
        kind: AppDeployment
        metadata:
          name: {name}
          namespace: {Namespace}
        spec:
          node: local
          app:
            image: {image}
            imagePullPolicy: Never
            ports:
              - {"{"} name: http, containerPort: 8080 {"}"}
            healthCheck:
              http: {"{"} path: /healthz, port: http {"}"}
              periodSeconds: 1
            migrate:
              command: ["testapp", "migrate"]
          database:
            image: skiff-test/postgres:15
          rollout:
            progressDeadlineSeconds: {deadline}
        """.Replace("    migrate:", healthyAfter > 0 ? $"    env:\n      - name: TESTAPP_HEALTHY_AFTER_SECONDS\n        value: \"{healthyAfter}\"\n    migrate:" : "    migrate:", StringComparison.Ordinal);

    public string Bot(string name = "bot") => $"""
        apiVersion: skiff.dev/v1alpha1
        kind: AppDeployment
        metadata:
          name: {name}
          namespace: {Namespace}
        spec:
          node: local
          app:
            image: skiff-test/app:1
            imagePullPolicy: Never
            env:
              - name: TOKEN
                valueFrom:
                  secretKeyRef: {"{"} name: bot-secrets, key: token {"}"}
            healthCheck:
              http: {"{"} path: /healthz, port: 8080 {"}"}
          cache:
            image: skiff-test/redis:7
            persistence: aof
        ---
        apiVersion: v1
        kind: Secret
        metadata:
          name: bot-secrets
          namespace: {Namespace}
        stringData:
          token: bot-token-value-123
        """;

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

        foreach (var v in (await client.Volumes.ListAsync()).Volumes ?? [])
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
