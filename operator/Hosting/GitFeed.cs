using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Skiff.Observability;
using Skiff.Sources.Git;
using Skiff.State;
using Skiff.Validation;

namespace Skiff.Hosting;

/// <summary>The flags of <c>skiff run --source git</c>, as given.</summary>
public sealed record GitRunOptions(
    string Url,
    string? Branch,
    string? SubPath,
    string Interval,
    string? SshKeyFile,
    string? KnownHostsFile,
    string? TokenFile,
    string? WebhookSecretFile);

/// <summary>The Git source checked and ready to start: its options, its remote, the webhook's secret.</summary>
public sealed record GitFeedPlan(GitSourceOptions Options, GitRemote Remote, byte[]? WebhookSecret)
{
    /// <summary>What the source's id hashes: the URL without credentials, the branch and the folder.</summary>
    public string Identity => GitRemote.Identity(Remote.DisplayUrl, Options.Branch, Options.SubPath);
}

/// <summary>
/// Start-up wiring of the Git source in front of the folder logic (<see cref="DirectoryRunner"/>): its flags, the first
/// sync, and <c>POST /sync</c>, the webhook.
/// </summary>
public static class GitFeed
{
    /// <summary>The largest webhook body read (GitHub caps payloads at 25 MB).</summary>
    public const int MaxWebhookBody = 25 * 1024 * 1024;

    /// <summary>Checks the flags and reads the credential files; null with one line per problem on <paramref name="error"/>.</summary>
    public static GitFeedPlan? Plan(GitRunOptions raw, TextWriter error)
    {
        if (!GoDuration.TryParse(raw.Interval, out var interval) || interval < TimeSpan.FromSeconds(1))
        {
            return Fail(error, $"--interval: \"{raw.Interval}\" is not a duration of at least 1s; use a Go duration such as 30s, 1m or 1h");
        }

        if (raw.SshKeyFile is not null && raw.TokenFile is not null)
        {
            return Fail(error, "--ssh-key and --token-file: give one: a deploy key for an SSH URL, or a token for an HTTPS URL");
        }

        if (raw.Branch is { } branch && (branch.Length == 0 || branch.StartsWith('-') || branch.StartsWith("refs/", StringComparison.Ordinal) || branch.Any(c => char.IsWhiteSpace(c) || char.IsControl(c) || c is '~' or '^' or ':' or '?' or '*' or '[' or '\\') || branch.Contains("..", StringComparison.Ordinal)))
        {
            return Fail(error, $"--branch: \"{branch}\" is not a branch name; give the name only, such as main or release/1.2");
        }

        var subPath = NormalizeSubPath(raw.SubPath, out var pathProblem);
        if (subPath is null)
        {
            return Fail(error, $"--path: {pathProblem}");
        }

        string? token = null;
        if (raw.TokenFile is { } tokenFile)
        {
            token = ReadFile(tokenFile, "--token-file", error)?.Trim();
            if (token is null)
            {
                return null;
            }

            if (token.Length == 0 || token.Any(char.IsControl))
            {
                return Fail(error, $"--token-file: {tokenFile} must hold the token on one line");
            }

            SecretRedactor.Shared.Register(token);
        }

        foreach (var (flag, file) in new[] { ("--ssh-key", raw.SshKeyFile), ("--ssh-known-hosts", raw.KnownHostsFile) })
        {
            // Only whether ssh will be able to read it: the key itself stays in its file.
            if (file is not null && !CanRead(file, flag, error))
            {
                return null;
            }
        }

        byte[]? secret = null;
        if (raw.WebhookSecretFile is { } secretFile)
        {
            if (ReadFile(secretFile, "--webhook-secret-file", error) is null)
            {
                return null;
            }

            secret = WebhookSignature.ReadSecret(secretFile);
            if (secret.Length == 0)
            {
                return Fail(error, $"--webhook-secret-file: {secretFile} is empty; put the webhook's secret in it");
            }

            SecretRedactor.Shared.Register(System.Text.Encoding.UTF8.GetString(secret));
        }

        var remote = GitRemote.Parse(raw.Url, new GitCredentials(token, raw.SshKeyFile, raw.KnownHostsFile), out var problem);
        if (remote is null)
        {
            return Fail(error, problem!.StartsWith("--", StringComparison.Ordinal) ? problem : $"--url: {problem}");
        }

        foreach (var value in remote.Secrets)
        {
            SecretRedactor.Shared.Register(value);
        }

        return new GitFeedPlan(new GitSourceOptions(raw.Url, raw.Branch, subPath, interval), remote, secret);
    }

    /// <summary>
    /// The Git source after its first sync. Without a good commit yet (none served before in this state folder),
    /// <c>--once</c> gives up (no <see cref="GitSource.Commit"/>, the reason on <paramref name="error"/>) and a long-running
    /// operator retries until one comes: serving nothing would prune every stack this source deployed.
    /// </summary>
    public static async Task<GitSource> StartAsync(
        GitFeedPlan plan, StateStore state, string sourceId, OperatorServices services, bool once, TextWriter error, CancellationToken ct)
    {
        var log = services.Logging.CreateLogger<GitSource>();
        var git = new GitSource(plan.Options, plan.Remote, Path.Combine(state.Root, "git", sourceId), log, new GitMetrics(services.Registry));
        if (git.Commit is not null)
        {
            log.LogInformation("Git source {Url}: last good commit {Commit} from the state folder", plan.Remote.DisplayUrl, git.Commit);
        }

        try
        {
            await git.SyncAsync(ct);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            return git;
        }

        if (once && git.LastError is { } first)
        {
            error.WriteLine($"skiff run: --url {plan.Remote.DisplayUrl}: {first.Message}");
        }

        var retry = plan.Options.Interval < TimeSpan.FromSeconds(30) ? plan.Options.Interval : TimeSpan.FromSeconds(30);
        try
        {
            while (git.Commit is null && !once)
            {
                log.LogWarning("Git source {Url}: no good commit yet; trying again in {Seconds} s", plan.Remote.DisplayUrl, retry.TotalSeconds);
                await Task.Delay(retry, ct);
                await git.SyncAsync(ct);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Stopped before a first good commit: nothing was served.
        }

        return git;
    }

    /// <summary>
    /// <c>POST /sync</c>: a webhook (GitHub's <c>X-Hub-Signature-256</c>, HMAC-SHA256 of the body) asks for a fetch now.
    /// 202 when the signature is right; 401 and nothing done when it is missing or wrong; 403 when no
    /// <c>--webhook-secret-file</c> was given (an unsigned trigger is never accepted).
    /// </summary>
    public static RequestDelegate SyncEndpoint(GitSource git, byte[]? secret, ILogger log) => async http =>
    {
        http.Response.ContentType = "text/plain; charset=utf-8";
        if (secret is null)
        {
            http.Response.StatusCode = StatusCodes.Status403Forbidden;
            await http.Response.WriteAsync("POST /sync is off: start skiff run with --webhook-secret-file FILE (the webhook's secret) to accept signed webhooks\n", http.RequestAborted);
            return;
        }

        if (http.Request.ContentLength > MaxWebhookBody)
        {
            http.Response.StatusCode = StatusCodes.Status413PayloadTooLarge;
            return;
        }

        using var body = new MemoryStream();
        var buffer = new byte[81920];
        int read;
        while ((read = await http.Request.Body.ReadAsync(buffer, http.RequestAborted)) > 0)
        {
            if (body.Length + read > MaxWebhookBody)
            {
                http.Response.StatusCode = StatusCodes.Status413PayloadTooLarge;
                return;
            }

            body.Write(buffer, 0, read);
        }

        var check = WebhookSignature.Check(secret, body.GetBuffer().AsSpan(0, (int)body.Length), http.Request.Headers[WebhookSignature.Header].ToString());
        var from = http.Connection.RemoteIpAddress?.ToString() ?? "unknown";
        if (check != SignatureCheck.Valid)
        {
            log.LogWarning("POST /sync from {Remote} refused: signature {Check}", from, check.ToString().ToLowerInvariant());
            http.Response.StatusCode = StatusCodes.Status401Unauthorized;
            await http.Response.WriteAsync($"signature {check.ToString().ToLowerInvariant()}: sign the body with the webhook's secret ({WebhookSignature.Header}: sha256=HMAC-SHA256)\n", http.RequestAborted);
            return;
        }

        var delivery = http.Request.Headers["X-GitHub-Delivery"].ToString();
        var kind = http.Request.Headers["X-GitHub-Event"].ToString();
        git.RequestSync($"webhook from {from}{(kind.Length > 0 ? $" ({kind} {delivery})" : "")}");
        http.Response.StatusCode = StatusCodes.Status202Accepted;
        await http.Response.WriteAsync("sync requested\n", http.RequestAborted);
    };

    /// <summary>The folder inside the repository: relative, inside it, with forward slashes; "" for the whole tree.</summary>
    public static string? NormalizeSubPath(string? subPath, out string? problem)
    {
        problem = null;
        if (subPath is null)
        {
            return "";
        }

        var parts = subPath.Replace('\\', '/').Split('/', StringSplitOptions.RemoveEmptyEntries).Where(p => p != ".").ToList();
        if (subPath.StartsWith('/') || parts.Contains("..") || subPath.Any(char.IsControl))
        {
            problem = $"\"{subPath}\" must be a folder inside the repository, relative to its root (such as deploy/prod), without \"..\"";
            return null;
        }

        return string.Join('/', parts);
    }

    private static string? ReadFile(string file, string flag, TextWriter error)
    {
        try
        {
            return File.ReadAllText(file);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            error.WriteLine($"{flag}: cannot read {file}: {e.Message}");
            return null;
        }
    }

    private static bool CanRead(string file, string flag, TextWriter error)
    {
        try
        {
            using var stream = File.OpenRead(file);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            error.WriteLine($"{flag}: cannot read {file}: {e.Message}");
            return false;
        }
    }

    private static GitFeedPlan? Fail(TextWriter error, string message)
    {
        error.WriteLine(message);
        return null;
    }
}
