using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Skiff.Api;
using Skiff.IntegrationTests.FolderSource;
using Skiff.IntegrationTests.Infrastructure;
using Skiff.Reconcile;
using Skiff.Sources.Git;
using Skiff.State;

namespace Skiff.IntegrationTests.GitSource;

/// <summary>
/// <c>skiff run --source git</c> end to end: a real skiff process fetching a real repository (file://, Git's smart HTTP
/// through <c>git http-backend</c> with a token, SSH through a local sshd with a deploy key) and deploying its commits
/// onto the real Docker engine.
/// </summary>
public sealed class GitSourceTests
{
    private static readonly TimeSpan Rollout = TimeSpan.FromSeconds(60);

    private static string Web(FolderWorkspace w, string image) => Stacks.Yaml(Stacks.Stateless("web", w.Namespace, image: image));

    /// <summary>An AppDeployment that fails validation (a port out of range).</summary>
    private static string Broken(FolderWorkspace w) =>
        Stacks.Yaml(Stacks.Stateless("broken", w.Namespace).With(s => s.App.Ports = [new PortSpec { Name = "http", ContainerPort = 70000 }]));

    private static StatusRecord? Record(FolderWorkspace w, string name) => new StateStore(w.StateDir).Read(w.Namespace, name);

    private static bool Serves(StatusRecord? record, string image, string source) =>
        record?.Status is { } s && Conditions.IsTrue(s, ConditionTypes.Ready) && s.Image == image && s.Source == source;

    private static Task WaitServesAsync(FolderWorkspace w, string name, string image, string source, SkiffProcess? skiff = null) =>
        Eventually.TrueAsync(
            $"{name} is Ready on {image} from {source}",
            () => Serves(Record(w, name), image, source),
            Rollout,
            () => JsonSerializer.Serialize(Record(w, name)?.Status) + "\n" + skiff?.Stderr);

    private static string[] Common(FolderWorkspace w) => ["--node", "local", "--state-dir", w.StateDir, "--health-probe-bind-address", "0"];

    [Fact]
    public async Task Over_file_urls_run_once_rolls_out_a_new_tag_and_an_invalid_commit_exits_1_leaving_the_stack_alone()
    {
        await using var w = new FolderWorkspace();
        using var repo = new LocalRepository(Path.Combine(w.Root, "git"));
        repo.Write("deploy/web.yaml", Web(w, TestImages.App1));
        var first = repo.Commit("web on app:1");
        string[] args = ["run", "--source", "git", "--url", repo.FileUrl, "--path", "deploy", "--once", "--metrics-bind-address", "0", "--log-level", "warning", .. Common(w)];

        var (exit, stdout, stderr) = await SkiffProcess.RunAsync(Rollout, args);
        Assert.True(exit == 0, stdout + stderr);
        Assert.True(Serves(Record(w, "web"), TestImages.App1, $"git:{repo.FileUrl}@{first}"), JsonSerializer.Serialize(Record(w, "web")?.Status));

        repo.Write("deploy/web.yaml", Web(w, TestImages.App2));
        var second = repo.Commit("web on app:2");
        (exit, stdout, stderr) = await SkiffProcess.RunAsync(Rollout, args);
        Assert.True(exit == 0, stdout + stderr);
        Assert.True(Serves(Record(w, "web"), TestImages.App2, $"git:{repo.FileUrl}@{second}"), JsonSerializer.Serialize(Record(w, "web")?.Status));
        Assert.Equal(TestImages.App2, Assert.Single(await w.ContainersAsync("web")).Image);

        // skiff status shows the commit the stack came from.
        var (statusExit, described, _) = await SkiffProcess.RunAsync(TimeSpan.FromSeconds(30), "status", "web", "-n", w.Namespace, "--state-dir", w.StateDir);
        Assert.Equal(0, statusExit);
        Assert.Contains($"git:{repo.FileUrl}@{second}", described, StringComparison.Ordinal);

        repo.Write("deploy/web.yaml", Web(w, TestImages.App1));
        repo.Write("deploy/broken.yaml", Broken(w));
        var bad = repo.Commit("invalid");
        (exit, stdout, stderr) = await SkiffProcess.RunAsync(Rollout, args);
        Assert.True(exit == 1, stdout + stderr);
        Assert.Contains($"commit {bad[..12]} is not served", stderr, StringComparison.Ordinal);
        Assert.Contains("broken.yaml:1: spec.app.ports[0].containerPort: must be between 1 and 65535, got 70000", stderr, StringComparison.Ordinal);
        Assert.Contains($"still serving commit {second[..12]}", stderr, StringComparison.Ordinal);
        Assert.True(Serves(Record(w, "web"), TestImages.App2, $"git:{repo.FileUrl}@{second}"), JsonSerializer.Serialize(Record(w, "web")?.Status));
        Assert.Null(Record(w, "broken"));
    }

    [Fact]
    public async Task Over_SSH_with_a_deploy_key_a_commit_that_changes_the_tag_rolls_out()
    {
        await using var w = new FolderWorkspace();
        using var repo = new LocalRepository(Path.Combine(w.Root, "git"));
        await using var sshd = await SshServer.StartAsync(Path.Combine(w.Root, "ssh"));
        var url = sshd.UrlOf(repo.Bare);
        repo.Write("web.yaml", Web(w, TestImages.App1));
        var first = repo.Commit("web on app:1");
        string[] args =
        [
            "run", "--source", "git", "--url", url, "--branch", "main", "--ssh-key", sshd.DeployKey, "--ssh-known-hosts", sshd.KnownHosts,
            "--once", "--metrics-bind-address", "0", "--log-level", "warning", .. Common(w),
        ];

        var (exit, stdout, stderr) = await SkiffProcess.RunAsync(Rollout, args);
        Assert.True(exit == 0, stdout + stderr);
        Assert.True(Serves(Record(w, "web"), TestImages.App1, $"git:{url}@{first}"), JsonSerializer.Serialize(Record(w, "web")?.Status));

        repo.Write("web.yaml", Web(w, TestImages.App2));
        var second = repo.Commit("web on app:2");
        (exit, stdout, stderr) = await SkiffProcess.RunAsync(Rollout, args);
        Assert.True(exit == 0, stdout + stderr);
        Assert.True(Serves(Record(w, "web"), TestImages.App2, $"git:{url}@{second}"), JsonSerializer.Serialize(Record(w, "web")?.Status));

        // A host key the known-hosts file does not hold is refused (strict checking), and the stack stays.
        File.WriteAllText(sshd.KnownHosts, "");
        repo.Write("web.yaml", Web(w, TestImages.App1));
        repo.Commit("not fetched");
        (exit, stdout, stderr) = await SkiffProcess.RunAsync(Rollout, args);
        Assert.True(exit == 1, stdout + stderr);
        Assert.Contains("Host key verification failed", stderr, StringComparison.Ordinal);
        Assert.Contains($"still serving commit {second[..12]}", stderr, StringComparison.Ordinal);
        Assert.True(Serves(Record(w, "web"), TestImages.App2, $"git:{url}@{second}"), JsonSerializer.Serialize(Record(w, "web")?.Status));
    }

    [Fact]
    public async Task Over_smart_HTTP_with_a_token_signed_webhooks_roll_out_prune_and_recover_and_bad_ones_change_nothing()
    {
        await using var w = new FolderWorkspace();
        using var repo = new LocalRepository(Path.Combine(w.Root, "git"));
        var token = "tok-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12));
        await using var http = new GitHttpServer(repo.Root, token);
        var url = http.UrlOf("remote.git");
        File.WriteAllText(Path.Combine(w.Root, "token"), token + "\n");
        var secret = Encoding.UTF8.GetBytes("webhook-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8)));
        File.WriteAllBytes(Path.Combine(w.Root, "webhook"), secret);
        var port = GitHttpServer.FreePort();
        using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };

        repo.Write("deploy/web.yaml", Web(w, TestImages.App1));
        repo.Write("deploy/bot.yaml", w.Bot());
        var c1 = repo.Commit("web and bot");
        await using var skiff = SkiffProcess.Start(
        [
            "run", "--source", "git", "--url", url, "--branch", "main", "--path", "deploy", "--interval", "1h",
            "--token-file", Path.Combine(w.Root, "token"), "--webhook-secret-file", Path.Combine(w.Root, "webhook"),
            "--metrics-bind-address", $"127.0.0.1:{port}", .. Common(w),
        ]);
        await WaitServesAsync(w, "web", TestImages.App1, $"git:{url}@{c1}", skiff);
        await WaitServesAsync(w, "bot", TestImages.App1, $"git:{url}@{c1}", skiff);

        async Task<HttpResponseMessage> SyncAsync(string? signature, string body = "{\"ref\":\"refs/heads/main\"}")
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/sync") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
            if (signature is not null)
            {
                request.Headers.TryAddWithoutValidation(WebhookSignature.Header, signature);
            }

            request.Headers.Add("X-GitHub-Event", "push");
            return await client.SendAsync(request);
        }

        Task<HttpResponseMessage> SignedAsync(string body = "{\"ref\":\"refs/heads/main\"}") => SyncAsync(WebhookSignature.Sign(secret, Encoding.UTF8.GetBytes(body)), body);

        async Task<JsonNode> GitStatusAsync() => JsonNode.Parse(await client.GetStringAsync("/status"))!["git"]!;

        // A new tag, and webhooks that are not signed with the secret: refused, the remote is not even asked.
        repo.Write("deploy/web.yaml", Web(w, TestImages.App2));
        var c2 = repo.Commit("web on app:2");
        var attempts = (await GitStatusAsync())["lastAttemptTime"]!.ToString();
        var asked = http.Requests;
        Assert.Equal(HttpStatusCode.Unauthorized, (await SyncAsync(null)).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await SyncAsync(WebhookSignature.Sign(Encoding.UTF8.GetBytes("wrong secret"), Encoding.UTF8.GetBytes("{}")), "{}")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await SyncAsync(WebhookSignature.Sign(secret, Encoding.UTF8.GetBytes("another body")))).StatusCode);
        Assert.Equal(asked, http.Requests);
        Assert.Equal(attempts, (await GitStatusAsync())["lastAttemptTime"]!.ToString());
        Assert.True(Serves(Record(w, "web"), TestImages.App1, $"git:{url}@{c1}"));

        // Signed: fetched at once, rolled out.
        Assert.Equal(HttpStatusCode.Accepted, (await SignedAsync()).StatusCode);
        await WaitServesAsync(w, "web", TestImages.App2, $"git:{url}@{c2}", skiff);
        Assert.Equal(c2, (await GitStatusAsync())["commit"]!.ToString());

        // A commit deleting a file prunes its stack and keeps its volume.
        repo.Delete("deploy/bot.yaml");
        var c3 = repo.Commit("bot goes");
        Assert.Equal(HttpStatusCode.Accepted, (await SignedAsync()).StatusCode);
        await Eventually.TrueAsync("bot is pruned", async () => Record(w, "bot") is null && (await w.ContainersAsync("bot")).Count == 0, Rollout, () => skiff.Stderr);
        var volumes = ((await w.Engine.Client.Volumes.ListAsync(CancellationToken.None)).Volumes ?? []).Select(v => v.Name).ToList();
        Assert.Contains($"skiff_{w.Namespace}_bot_cache", volumes);
        await WaitServesAsync(w, "web", TestImages.App2, $"git:{url}@{c3}", skiff);

        // An invalid commit: not served, the error names it, web keeps running from c3.
        repo.Write("deploy/web.yaml", Web(w, TestImages.App1));
        repo.Write("deploy/broken.yaml", Broken(w));
        var bad = repo.Commit("invalid");
        Assert.Equal(HttpStatusCode.Accepted, (await SignedAsync()).StatusCode);
        var error = await Eventually.UntilAsync("the invalid commit is reported", GitStatusAsync, s => s["lastError"]?["commit"]?.ToString() == bad, Rollout, () => skiff.Stderr);
        Assert.Equal(Skiff.Sources.Git.GitSource.InvalidCommit, error["lastError"]!["reason"]!.ToString());
        Assert.Equal(c3, error["commit"]!.ToString());
        Assert.Contains($"still serving commit {c3[..12]}", error["lastError"]!["message"]!.ToString(), StringComparison.Ordinal);
        Assert.True(Serves(Record(w, "web"), TestImages.App2, $"git:{url}@{c3}"), JsonSerializer.Serialize(Record(w, "web")?.Status));
        var metrics = await client.GetStringAsync("/metrics");
        Assert.Contains("skiff_git_rejected_commits_total 1", metrics, StringComparison.Ordinal);
        Assert.Contains("skiff_git_sync_ok 0", metrics, StringComparison.Ordinal);
        Assert.Contains($"skiff_git_commit_info{{commit=\"{c3}\"}} 1", metrics, StringComparison.Ordinal);

        // A force-push rewriting the invalid commit away is followed.
        repo.ResetTo(c3);
        repo.Write("deploy/web.yaml", Web(w, TestImages.App1));
        var c4 = repo.Commit("rewritten", force: true);
        Assert.Equal(HttpStatusCode.Accepted, (await SignedAsync()).StatusCode);
        await WaitServesAsync(w, "web", TestImages.App1, $"git:{url}@{c4}", skiff);

        // The remote goes away: the stacks keep running from c4, the error says so; it comes back: the next commit rolls out.
        await http.StopAsync();
        repo.Write("deploy/web.yaml", Web(w, TestImages.App2));
        var c5 = repo.Commit("while the remote is away");
        Assert.Equal(HttpStatusCode.Accepted, (await SignedAsync()).StatusCode);
        var away = await Eventually.UntilAsync("the fetch error is reported", GitStatusAsync, s => s["lastError"]?["reason"]?.ToString() == Skiff.Sources.Git.GitSource.FetchFailed, Rollout, () => skiff.Stderr);
        Assert.Contains($"still serving commit {c4[..12]}", away["lastError"]!["message"]!.ToString(), StringComparison.Ordinal);
        Assert.True(Serves(Record(w, "web"), TestImages.App1, $"git:{url}@{c4}"));
        Assert.Contains("skiff_git_fetch_errors_total 1", await client.GetStringAsync("/metrics"), StringComparison.Ordinal);
        http.Start();
        Assert.Equal(HttpStatusCode.Accepted, (await SignedAsync()).StatusCode);
        await WaitServesAsync(w, "web", TestImages.App2, $"git:{url}@{c5}", skiff);
        Assert.Null((await GitStatusAsync())["lastError"]);

        // The token authenticated every fetch and was never shown.
        Assert.Equal(0, http.Refused);
        var shown = skiff.Stderr + await client.GetStringAsync("/status") + await client.GetStringAsync("/metrics")
            + string.Concat(Directory.GetFiles(Path.Combine(w.StateDir, "status")).Select(File.ReadAllText));
        Assert.DoesNotContain(token, shown, StringComparison.Ordinal);
        Assert.DoesNotContain(Encoding.UTF8.GetString(secret), shown, StringComparison.Ordinal);
    }
}
