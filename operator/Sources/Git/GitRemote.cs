using System.Text;
using System.Text.RegularExpressions;
using Skiff.State;

namespace Skiff.Sources.Git;

/// <summary>How the Git source reaches its remote: a token for HTTPS, or a deploy key (and known hosts) for SSH.</summary>
/// <param name="Token">The token of <c>--token-file</c> (HTTPS basic auth, user from the URL or <c>x-access-token</c>).</param>
/// <param name="SshKeyFile">The private key of <c>--ssh-key</c>.</param>
/// <param name="KnownHostsFile">The known-hosts file of <c>--ssh-known-hosts</c>; ssh's own when null.</param>
public sealed record GitCredentials(string? Token = null, string? SshKeyFile = null, string? KnownHostsFile = null)
{
    public static readonly GitCredentials None = new();
}

/// <summary>
/// The remote of a Git source: the URL as given, the URL shown everywhere (no password, no token), the secrets to keep
/// out of every log, status and event, and the environment that hands them to <c>git</c> without a command line.
/// </summary>
/// <remarks>
/// # Guarantees
/// - <see cref="DisplayUrl"/> and <see cref="Mask"/> never contain the URL's password, the token, nor the
///   Authorization header built from them; <see cref="FetchUrl"/> has no password either (it travels in the header).
/// - The environment never puts a secret on a command line (other users of the host can read those in /proc).
/// </remarks>
public sealed partial class GitRemote
{
    /// <summary>The user name of token basic auth when the URL names none (GitHub's and Gitea's convention; GitLab takes any).</summary>
    public const string DefaultTokenUser = "x-access-token";

    private readonly string[] secrets;
    private readonly string? authorization;

    private GitRemote(string url, string fetchUrl, string displayUrl, string? authorization, string[] secrets, GitCredentials credentials)
    {
        Url = url;
        FetchUrl = fetchUrl;
        DisplayUrl = displayUrl;
        this.authorization = authorization;
        this.secrets = secrets;
        Credentials = credentials;
    }

    /// <summary>The URL as given (may hold a password: never show it).</summary>
    public string Url { get; }

    /// <summary>The URL given to <c>git fetch</c>: without a password.</summary>
    public string FetchUrl { get; }

    /// <summary>The URL shown in status, logs and metrics: no user info for HTTP(S) URLs (an SSH user such as <c>git@</c> stays).</summary>
    public string DisplayUrl { get; }

    public GitCredentials Credentials { get; }

    /// <summary>Every value that must never be shown (the token, the URL's password, the header made of them).</summary>
    public IReadOnlyList<string> Secrets => secrets;

    /// <summary>Parses <paramref name="url"/>; returns null and a message naming the fix when it is not a Git URL Skiff can fetch.</summary>
    public static GitRemote? Parse(string url, GitCredentials credentials, out string? problem)
    {
        problem = null;
        if (string.IsNullOrWhiteSpace(url) || url.Trim() != url || url.Any(char.IsControl))
        {
            problem = "must be a Git URL such as https://github.com/org/repo.git, ssh://git@host/org/repo.git, git@host:org/repo.git or file:///srv/repo.git";
            return null;
        }

        if (ScpLike().Match(url) is { Success: true })
        {
            // git@host:org/repo.git: SSH; its user is not a secret.
            return credentials.Token is not null
                ? Fail("--token-file: a token authenticates HTTPS URLs; an SSH URL takes --ssh-key", out problem)
                : new GitRemote(url, url, url, null, [], credentials);
        }

        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https" or "ssh" or "file" or "git"))
        {
            problem = $"\"{MaskUserInfo(url)}\" is not a URL git can fetch: use https://, http://, ssh://, git@host:path or file:///path";
            return null;
        }

        var (user, password) = SplitUserInfo(uri);
        var isHttp = uri.Scheme is "http" or "https";
        if (credentials.Token is not null && !isHttp)
        {
            return Fail("--token-file: a token authenticates HTTP(S) URLs; an SSH URL takes --ssh-key, a file:// URL nothing", out problem);
        }

        if (credentials.SshKeyFile is not null && uri.Scheme != "ssh")
        {
            return Fail("--ssh-key: a deploy key authenticates SSH URLs (ssh://… or git@host:path); an HTTPS URL takes --token-file", out problem);
        }

        if (password is not null && !isHttp)
        {
            return Fail("--url: a password in an SSH URL is not supported: use --ssh-key with a deploy key", out problem);
        }

        var bare = WithoutUserInfo(uri);
        var secretValues = new List<string>();
        string? header = null;
        var token = credentials.Token ?? password;
        if (isHttp && token is not null)
        {
            var basic = Convert.ToBase64String(Encoding.UTF8.GetBytes($"{Uri.UnescapeDataString(user ?? DefaultTokenUser)}:{Uri.UnescapeDataString(token)}"));
            header = "Authorization: Basic " + basic;
            secretValues.AddRange([token, Uri.UnescapeDataString(token), basic]);
        }

        var fetchUrl = isHttp ? bare : (user is null ? bare : url);
        var display = isHttp ? bare : fetchUrl;
        return new GitRemote(url, fetchUrl, display, header, [.. secretValues.Distinct(StringComparer.Ordinal).Where(s => s.Length > 0)], credentials);
    }

    /// <summary>
    /// The text with every secret of this remote masked, and the user info of any URL in it (a password git echoed) too.
    /// </summary>
    public string Mask(string text)
    {
        foreach (var secret in secrets.OrderByDescending(s => s.Length))
        {
            text = text.Replace(secret, "***", StringComparison.Ordinal);
        }

        return MaskUserInfo(text);
    }

    /// <summary>Masks the user info of every HTTP(S) URL in <paramref name="text"/> (<c>https://user:pw@host</c> → <c>https://***@host</c>).</summary>
    public static string MaskUserInfo(string text) => UrlUserInfo().Replace(text, "$1***@");

    /// <summary>
    /// The environment of every <c>git</c> run against this remote: never prompt, C locale (messages Skiff can read),
    /// the Authorization header through GIT_CONFIG_* (not the command line), and ssh in batch mode with the deploy key and
    /// the known-hosts file, host keys checked strictly.
    /// </summary>
    public IReadOnlyDictionary<string, string> Environment()
    {
        var env = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["GIT_TERMINAL_PROMPT"] = "0",
            ["GIT_ASKPASS"] = "true",
            ["SSH_ASKPASS"] = "true",
            ["LC_ALL"] = "C",
            ["LANG"] = "C",
        };
        if (authorization is not null)
        {
            env["GIT_CONFIG_COUNT"] = "1";
            env["GIT_CONFIG_KEY_0"] = "http.extraHeader";
            env["GIT_CONFIG_VALUE_0"] = authorization;
        }

        var ssh = new StringBuilder("ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -o ConnectTimeout=20");
        if (Credentials.SshKeyFile is { } key)
        {
            ssh.Append(" -o IdentitiesOnly=yes -i ").Append(ShellQuote(Path.GetFullPath(key)));
        }

        if (Credentials.KnownHostsFile is { } known)
        {
            ssh.Append(" -o UserKnownHostsFile=").Append(ShellQuote(Path.GetFullPath(known)));
        }

        env["GIT_SSH_COMMAND"] = ssh.ToString();
        env["GIT_SSH_VARIANT"] = "ssh";
        return env;
    }

    /// <summary>
    /// The identity of a Git source (its <c>dev.skiff.source</c> label): the URL without credentials, the branch and the
    /// folder in the repository, so that prune touches only what this repository, branch and folder deployed.
    /// </summary>
    public static string Identity(string displayUrl, string? branch, string subPath) =>
        $"git:{displayUrl}#{branch ?? "HEAD"}:{(subPath.Length == 0 ? "." : subPath)}";

    /// <summary>The label value of a Git source with this identity, or with this name when given (<c>--source-name</c>).</summary>
    public static string SourceId(string identity, string? sourceName) => StateStore.SourceId("git", sourceName ?? identity);

    private static GitRemote? Fail(string message, out string? problem)
    {
        problem = message;
        return null;
    }

    private static (string? User, string? Password) SplitUserInfo(Uri uri)
    {
        if (uri.UserInfo.Length == 0)
        {
            return (null, null);
        }

        var colon = uri.UserInfo.IndexOf(':', StringComparison.Ordinal);
        return colon < 0 ? (uri.UserInfo, null) : (uri.UserInfo[..colon], uri.UserInfo[(colon + 1)..]);
    }

    // Authority is host[:port] without the user info.
    private static string WithoutUserInfo(Uri uri) => $"{uri.Scheme}://{uri.Authority}{uri.PathAndQuery}";

    private static string ShellQuote(string value) => "'" + value.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    [GeneratedRegex(@"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:(?!//)[^\s]+$")]
    private static partial Regex ScpLike();

    [GeneratedRegex(@"(https?://)[^/@\s]+@", RegexOptions.IgnoreCase)]
    private static partial Regex UrlUserInfo();
}
