using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using Skiff.IntegrationTests.DockerTarget;
using Skiff.IntegrationTests.Infrastructure;
using Skiff.Reconcile;

namespace Skiff.IntegrationTests.FreshHost;

/// <summary>
/// A host as a user meets it on the first day: a Docker engine that holds no image at all, and a private
/// registry (Debian's <c>docker-registry</c>, with basic auth) that holds the app, PostgreSQL and Redis images
/// under registry-style names. Both live in a network namespace of their own, where the registry answers on
/// <c>localhost:5000</c> as a registry on the host's loopback would; skiff runs there too (nsenter), so it reaches
/// the engine's containers as it does on a real host.
/// </summary>
public sealed class FreshHost : IAsyncDisposable
{
    public const string Registry = "localhost:5000";
    public const string User = "deploy";

    private readonly ThrowawayEngine engine;
    private readonly string root;
    private Process? registry;

    private FreshHost(ThrowawayEngine engine, string root, string password)
    {
        this.engine = engine;
        this.root = root;
        Password = password;
        Resources = Path.Combine(root, "resources");
        StateDir = Path.Combine(root, "state");
        Directory.CreateDirectory(Resources);
    }

    public string Password { get; }

    public string Resources { get; }

    public string StateDir { get; }

    public ThrowawayEngine Engine => engine;

    /// <summary>Starts the engine and the registry, pushes <paramref name="images"/> (local name → repository:tag), and empties the engine.</summary>
    public static async Task<FreshHost> StartAsync(IReadOnlyDictionary<string, string> images)
    {
        var id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3));
        var engine = new ThrowawayEngine("fresh" + id);
        var root = Directory.CreateTempSubdirectory("skiff-fresh-").FullName;
        var host = new FreshHost(engine, root, "pw-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8)));
        try
        {
            await engine.StartAsync();
            await engine.ResetAsync();
            await host.StartRegistryAsync();
            await host.PushAsync(images);
            return host;
        }
        catch
        {
            await host.DisposeAsync();
            throw;
        }
    }

    /// <summary>Every image reference the engine holds (none on a fresh host).</summary>
    public async Task<IReadOnlyList<string>> ImagesAsync()
    {
        using var docker = new Skiff.Docker.DockerEngine(engine.Endpoint);
        var list = await docker.Client.Images.ListImagesAsync(new() { All = true });
        return [.. list.SelectMany(i => i.RepoTags ?? []).Where(t => t != "<none>:<none>")];
    }

    public void Write(string file, string yaml) => File.WriteAllText(Path.Combine(Resources, file), yaml);

    /// <summary>The registry's login as a folder Secret document (kubernetes.io/dockerconfigjson).</summary>
    public string PullSecret(string ns, string name, string? password = null)
    {
        var auth = Convert.ToBase64String(Encoding.UTF8.GetBytes($"{User}:{password ?? Password}"));
        var json = new System.Text.Json.Nodes.JsonObject
        {
            ["auths"] = new System.Text.Json.Nodes.JsonObject { [Registry] = new System.Text.Json.Nodes.JsonObject { ["auth"] = auth } },
        }.ToJsonString();
        return $"""
            apiVersion: v1
            kind: Secret
            metadata:
              name: {name}
              namespace: {ns}
            type: kubernetes.io/dockerconfigjson
            data:
              .dockerconfigjson: {Convert.ToBase64String(Encoding.UTF8.GetBytes(json))}
            """;
    }

    /// <summary>Runs <c>skiff run --once</c> on this host (in its namespace, against its engine) to the end.</summary>
    public async Task<(int Exit, string Stdout, string Stderr)> RunOnceAsync(TimeSpan timeout, params string[] extra)
    {
        string[] args =
        [
            "run", "--path", Resources, "--node", "vps-1", "--once", "--state-dir", StateDir, "--docker-host", engine.Endpoint,
            "--metrics-bind-address", "0", "--health-probe-bind-address", "0", .. extra,
        ];
        await using var skiff = FolderSource.SkiffProcess.StartUnder(engine.Enter, args);
        var exit = await skiff.WaitAsync(timeout);
        return (exit, skiff.Stdout, skiff.Stderr);
    }

    /// <summary>A listener in the host's namespace that accepts a connection and never answers (busybox nc).</summary>
    public IAsyncDisposable Listen(int port) => new Started(StartInNamespace("busybox", "nc", "-l", "-p", port.ToString(System.Globalization.CultureInfo.InvariantCulture)));

    public async ValueTask DisposeAsync()
    {
        if (registry is { HasExited: false })
        {
            registry.Kill(entireProcessTree: true);
            await registry.WaitForExitAsync();
        }

        registry?.Dispose();
        try
        {
            await engine.ResetAsync();
        }
        catch (Exception e) when (e is Skiff.Reconcile.EngineUnreachableException or HttpRequestException or IOException)
        {
            // Not started: nothing to reset.
        }

        await engine.DisposeAsync();
        Directory.Delete(root, recursive: true);
    }

    private async Task StartRegistryAsync()
    {
        var htpasswd = Path.Combine(root, "htpasswd");
        await Command.MustAsync("htpasswd (apache2-utils; scripts/install-deps.sh installs it)", "htpasswd", ["-Bbc", htpasswd, User, Password]);
        var config = Path.Combine(root, "registry.yml");
        await File.WriteAllTextAsync(config, $$"""
            version: 0.1
            log: { level: warn }
            storage:
              filesystem: { rootdirectory: {{Path.Combine(root, "registry")}} }
            http:
              addr: 127.0.0.1:5000
            auth:
              htpasswd: { realm: fresh-host, path: {{htpasswd}} }
            """);
        registry = StartInNamespace("docker-registry", "serve", config);
    }

    private Process StartInNamespace(params string[] command)
    {
        var info = new ProcessStartInfo(engine.Enter[0]) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        foreach (var a in engine.Enter.Skip(1).Concat(command))
        {
            info.ArgumentList.Add(a);
        }

        var process = Process.Start(info) ?? throw new InvalidOperationException($"{command[0]} did not start");
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    private sealed class Started(Process process) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync();
            }

            process.Dispose();
        }
    }

    /// <summary>
    /// docker save | docker load into the fresh engine, then push through that engine (its daemon reaches the registry
    /// in the namespace), then remove every image: afterwards only the registry has them.
    /// </summary>
    private async Task PushAsync(IReadOnlyDictionary<string, string> images)
    {
        var sources = images.Keys.Distinct().ToArray();
        if (sources.Length == 0)
        {
            return;
        }

        await Command.MustAsync("docker save | docker load", "sh", ["-c", $"docker save {string.Join(' ', sources)} | docker -H {engine.Endpoint} load -q"]);
        var config = Path.Combine(root, "docker-config");
        Directory.CreateDirectory(config);
        // The login goes through the engine's daemon, so it also says the registry answers.
        await Eventually.ValueAsync($"the registry in {engine.NetworkNamespace} answers a docker login", async _ =>
        {
            var (code, output) = await Command.RunAsync("docker", ["-H", engine.Endpoint, "--config", config, "login", Registry, "-u", User, "-p", Password]);
            return (code == 0 ? "logged in" : null, output);
        }, TimeSpan.FromSeconds(30), interval: TimeSpan.FromMilliseconds(200));

        foreach (var (local, target) in images)
        {
            var reference = $"{Registry}/{target}";
            await Command.MustAsync($"docker tag {reference}", "docker", ["-H", engine.Endpoint, "tag", local, reference]);
            await Command.MustAsync($"docker push {reference}", "docker", ["-H", engine.Endpoint, "--config", config, "push", "-q", reference]);
        }

        using var docker = new Skiff.Docker.DockerEngine(engine.Endpoint);
        foreach (var image in await docker.Client.Images.ListImagesAsync(new() { All = true }))
        {
            try
            {
                await docker.Client.Images.DeleteImageAsync(image.ID, new() { Force = true, NoPrune = false });
            }
            catch (global::Docker.DotNet.DockerImageNotFoundException)
            {
                // Went with another one (a shared parent).
            }
        }

        Assert.Empty(await ImagesAsync());
    }
}
