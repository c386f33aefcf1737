using Skiff.IntegrationTests.DockerTarget;
using Skiff.IntegrationTests.Infrastructure;

namespace Skiff.IntegrationTests.FreshHost;

/// <summary>
/// The production path, tested as a user takes it: <c>skiff run --once</c> on a host whose engine has no image,
/// with every image (app, PostgreSQL, Redis) in a private registry.
/// </summary>
public sealed class FreshHostTests
{
    private static readonly Dictionary<string, string> Images = new()
    {
        [TestImages.App1] = "acme/api:1.4.2",
        [TestImages.Postgres] = "postgres:15",
        [TestImages.Redis] = "redis:7",
    };

    /// <summary>examples/stacks/api-postgres.yaml, pointed at the registry and the test app.</summary>
    private static string Api(string databaseImage = $"{FreshHost.Registry}/postgres:15") => $$"""
        apiVersion: skiff.dev/v1alpha1
        kind: AppDeployment
        metadata:
          name: api
          namespace: prod
        spec:
          node: vps-1
          app:
            image: {{FreshHost.Registry}}/acme/api:1.4.2
            imagePullSecret: registry-creds
            env:
              - { name: PORT, value: "3000" }
            ports:
              - { name: http, containerPort: 3000, hostPort: 3000, hostIP: 127.0.0.1 }
            healthCheck:
              http: { path: /healthz, port: http }
              periodSeconds: 1
            migrate:
              command: ["testapp", "migrate"]
              timeoutSeconds: 120
            resources: { memory: 512Mi, cpu: 500m }
          database:
            engine: postgres
            image: {{databaseImage}}
            name: api
            user: api
            storage: { reclaimPolicy: Retain }
          rollout:
            progressDeadlineSeconds: 120
        """;

    /// <summary>examples/stacks/bot-redis.yaml, pointed at the registry and the test app.</summary>
    private const string Bot = $$"""
        apiVersion: skiff.dev/v1alpha1
        kind: AppDeployment
        metadata:
          name: bot
          namespace: bots
        spec:
          node: vps-1
          app:
            image: {{FreshHost.Registry}}/acme/api:1.4.2
            imagePullSecret: registry-creds
            env:
              - name: BOT_TOKEN
                valueFrom:
                  secretKeyRef: { name: bot-secrets, key: token }
          cache:
            engine: redis
            image: {{FreshHost.Registry}}/redis:7
            persistence: aof
            maxMemory: 64Mi
          rollout:
            minReadySeconds: 2
        ---
        apiVersion: v1
        kind: Secret
        metadata:
          name: bot-secrets
          namespace: bots
        type: Opaque
        stringData:
          token: bot-token-4b1d
        """;

    [Fact]
    public async Task Stacks_converge_on_a_fresh_host_pulling_every_image_from_a_private_registry()
    {
        await using var host = await FreshHost.StartAsync(Images);
        Assert.Empty(await host.ImagesAsync());
        host.Write("api.yaml", Api());
        host.Write("bot.yaml", Bot);
        host.Write("registry.yaml", host.PullSecret("prod", "registry-creds") + "\n---\n" + host.PullSecret("bots", "registry-creds"));

        var (exit, stdout, stderr) = await host.RunOnceAsync(TimeSpan.FromMinutes(5));

        Assert.True(exit == 0, $"exit {exit}\n{stdout}\n{stderr}");
        Assert.Matches(@"prod\s+api\s+vps-1\s+True\s+Ready", stdout);
        Assert.Matches(@"bots\s+bot\s+vps-1\s+True\s+Ready", stdout);
        // Each image came from the registry, with the Secret's login for its host, and the log says so, with its size.
        foreach (var image in new[] { "acme/api:1.4.2", "postgres:15", "redis:7" })
        {
            var reference = $"{FreshHost.Registry}/{image}";
            Assert.Contains($"pulling image {reference}", stderr);
            Assert.Matches($@"pulled image {System.Text.RegularExpressions.Regex.Escape(reference)} in \d+\.\ds \(\d+(\.\d)?[kMG]?B\)", stderr);
        }

        Assert.Equal(
            [$"{FreshHost.Registry}/acme/api:1.4.2", $"{FreshHost.Registry}/postgres:15", $"{FreshHost.Registry}/redis:7"],
            (await host.ImagesAsync()).Order(StringComparer.Ordinal));
        Assert.DoesNotContain(host.Password, stdout + stderr);
        Assert.DoesNotContain("bot-token-4b1d", stdout + stderr);
    }

    [Fact]
    public async Task A_database_image_that_exists_nowhere_fails_the_run_in_bounded_time_and_says_which_image()
    {
        await using var host = await FreshHost.StartAsync(Images);
        host.Write("api.yaml", Api(databaseImage: $"{FreshHost.Registry}/postgres:99"));
        host.Write("registry.yaml", host.PullSecret("prod", "registry-creds"));

        // Bounded: a refusal ends the run at once, not after a retry loop (the test's own limit is the bound).
        var (exit, stdout, stderr) = await host.RunOnceAsync(TimeSpan.FromMinutes(2));

        Assert.True(exit == 1, $"exit {exit}\n{stdout}\n{stderr}");
        Assert.Matches(@"prod\s+api\s+vps-1\s+False\s+Failed", stdout);
        // The status names the field, the image and the registry's answer ...
        Assert.Contains($"spec.database.image: pulling {FreshHost.Registry}/postgres:99 failed", stdout);
        Assert.Contains("manifest unknown", stdout);
        // ... and the Event (a log line on the folder source) says it as a Warning.
        Assert.Matches($@"WRN prod/api ImageNotFound: spec\.database\.image: pulling {System.Text.RegularExpressions.Regex.Escape(FreshHost.Registry)}/postgres:99 failed", stderr);
    }

    [Fact]
    public async Task A_registry_that_never_answers_is_given_up_after_the_pull_timeout()
    {
        await using var host = await FreshHost.StartAsync(new Dictionary<string, string>());
        // A port that accepts connections and never says a word: the pull hangs until Skiff gives up.
        await using var silent = host.Listen(5001);
        host.Write("bot.yaml", $$"""
            apiVersion: skiff.dev/v1alpha1
            kind: AppDeployment
            metadata:
              name: quiet
              namespace: bots
            spec:
              node: vps-1
              app:
                image: localhost:5001/acme/quiet:1
            """);

        var (exit, stdout, stderr) = await host.RunOnceAsync(TimeSpan.FromMinutes(2), "--pull-timeout", "3s");

        Assert.True(exit == 1, $"exit {exit}\n{stdout}\n{stderr}");
        Assert.Contains("spec.app.image: pulling localhost:5001/acme/quiet:1 did not finish within the pull timeout of 3s; raise it with --pull-timeout", stdout);
        Assert.Contains("ImagePullFailed", stdout);
    }
}
