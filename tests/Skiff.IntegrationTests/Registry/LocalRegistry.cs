using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Skiff.IntegrationTests.Infrastructure;

namespace Skiff.IntegrationTests.Registry;

/// <summary>
/// A private image registry on this machine: Debian's <c>docker-registry</c> (the CNCF distribution
/// registry, the one behind Docker Hub and most self-hosted registries) with htpasswd basic auth, on a
/// free port of 127.0.0.1, which the Docker engine accepts over plain HTTP. One user, a random password.
/// </summary>
public sealed class LocalRegistry : IAsyncDisposable
{
    public const string User = "skiff";

    private readonly Process process;
    private readonly string root;

    private LocalRegistry(Process process, string root, int port, string password)
    {
        this.process = process;
        this.root = root;
        Host = $"localhost:{port}";
        Password = password;
    }

    /// <summary><c>localhost:PORT</c>, the registry part of an image reference.</summary>
    public string Host { get; }

    public string Password { get; }

    public static async Task<LocalRegistry> StartAsync()
    {
        var root = Directory.CreateTempSubdirectory("skiff-registry-").FullName;
        var password = "pw-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12));
        var htpasswd = Path.Combine(root, "htpasswd");
        await Command.MustAsync("htpasswd (apache2-utils; scripts/install-deps.sh installs it)", "htpasswd", ["-Bbc", htpasswd, User, password]);

        var port = FreePort();
        var config = Path.Combine(root, "config.yml");
        await File.WriteAllTextAsync(config, $"""
            version: 0.1
            log: {"{"} level: warn {"}"}
            storage:
              filesystem: {"{"} rootdirectory: {Path.Combine(root, "data")} {"}"}
            http:
              addr: 127.0.0.1:{port}
            auth:
              htpasswd: {"{"} realm: skiff-test, path: {htpasswd} {"}"}
            """);
        var info = new ProcessStartInfo("docker-registry", ["serve", config])
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        var process = Process.Start(info) ?? throw new InvalidOperationException("docker-registry did not start");
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var registry = new LocalRegistry(process, root, port, password);

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var answer = await Eventually.ValueAsync($"docker-registry answers on 127.0.0.1:{port}", async _ =>
        {
            Assert.False(process.HasExited, "docker-registry exited at start-up");
            try
            {
                using var response = await http.GetAsync(new Uri($"http://127.0.0.1:{port}/v2/"));
                return (response.StatusCode.ToString(), "");
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                // Not listening yet, or too slow to answer on a loaded machine: ask again.
                return (null, e.Message);
            }
        }, TimeSpan.FromSeconds(60));

        // 401 without credentials: up, and asking for them.
        Assert.Equal(nameof(HttpStatusCode.Unauthorized), answer);
        return registry;
    }

    /// <summary>Tags a local image into the registry, pushes it with a throwaway docker CLI login, and removes the local tag.</summary>
    public async Task<string> PushAsync(string localImage, string repository)
    {
        var reference = $"{Host}/{repository}";
        var config = Directory.CreateTempSubdirectory("skiff-docker-config-").FullName;
        try
        {
            await Command.MustAsync($"docker tag {reference}", "docker", ["tag", localImage, reference]);
            await Command.MustAsync($"docker login {Host}", "docker", ["--config", config, "login", Host, "--username", User, "--password", Password]);
            await Command.MustAsync($"docker push {reference}", "docker", ["--config", config, "push", reference]);
            await Command.MustAsync($"docker rmi {reference}", "docker", ["rmi", reference]);
        }
        finally
        {
            Directory.Delete(config, recursive: true);
        }

        return reference;
    }

    /// <summary>The <c>.dockerconfigjson</c> of a kubernetes.io/dockerconfigjson Secret for this registry.</summary>
    public string DockerConfigJson(string password) => new System.Text.Json.Nodes.JsonObject
    {
        ["auths"] = new System.Text.Json.Nodes.JsonObject
        {
            [Host] = new System.Text.Json.Nodes.JsonObject
            {
                ["username"] = User,
                ["password"] = password,
                ["auth"] = Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes($"{User}:{password}")),
            },
        },
    }.ToJsonString();

    public async ValueTask DisposeAsync()
    {
        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }

        process.Dispose();
        Directory.Delete(root, recursive: true);
    }

    private static int FreePort() => Infrastructure.DockerFixture.FreeTcpPort();
}
