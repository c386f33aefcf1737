using System.Text;
using Skiff.Sources.Git;

namespace Skiff.Tests.Sources.Git;

/// <summary>The Git source's URL handling: what is shown, what is fetched, and which credentials are masked where.</summary>
public sealed class GitRemoteTests
{
    [Fact]
    public void A_password_in_an_HTTPS_URL_becomes_the_header_and_is_shown_nowhere()
    {
        var remote = GitRemote.Parse("https://deployer:s3cr3t-pw@git.example.com/org/deploy.git", GitCredentials.None, out var problem)!;

        Assert.Null(problem);
        Assert.Equal("https://git.example.com/org/deploy.git", remote.DisplayUrl);
        Assert.Equal("https://git.example.com/org/deploy.git", remote.FetchUrl);
        var env = remote.Environment();
        Assert.Equal("http.extraHeader", env["GIT_CONFIG_KEY_0"]);
        Assert.Equal("Authorization: Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("deployer:s3cr3t-pw")), env["GIT_CONFIG_VALUE_0"]);
        var said = $"fatal: unable to access 'https://deployer:s3cr3t-pw@git.example.com/org/deploy.git/': {env["GIT_CONFIG_VALUE_0"]}";
        var masked = remote.Mask(said);
        Assert.DoesNotContain("s3cr3t-pw", masked, StringComparison.Ordinal);
        Assert.DoesNotContain(Convert.ToBase64String(Encoding.UTF8.GetBytes("deployer:s3cr3t-pw")), masked, StringComparison.Ordinal);
        Assert.Contains("git.example.com/org/deploy.git", masked, StringComparison.Ordinal);
    }

    [Fact]
    public void A_token_file_authenticates_as_x_access_token_unless_the_URL_names_a_user()
    {
        var plain = GitRemote.Parse("https://github.com/org/deploy.git", new GitCredentials(Token: "ghp_tokenvalue"), out _)!;
        var named = GitRemote.Parse("https://oauth2@gitlab.com/org/deploy.git", new GitCredentials(Token: "glpat-tokenvalue"), out _)!;

        Assert.Equal("Authorization: Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("x-access-token:ghp_tokenvalue")), plain.Environment()["GIT_CONFIG_VALUE_0"]);
        Assert.Equal("Authorization: Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("oauth2:glpat-tokenvalue")), named.Environment()["GIT_CONFIG_VALUE_0"]);
        Assert.Equal("https://gitlab.com/org/deploy.git", named.DisplayUrl);
        Assert.Equal("remote said *** is wrong", plain.Mask("remote said ghp_tokenvalue is wrong"));
        Assert.DoesNotContain(plain.Environment().Values, v => v.Contains("ghp_tokenvalue", StringComparison.Ordinal));
    }

    [Fact]
    public void SSH_URLs_keep_their_user_and_take_the_deploy_key_and_known_hosts_through_GIT_SSH_COMMAND()
    {
        var scp = GitRemote.Parse("git@github.com:org/deploy.git", new GitCredentials(SshKeyFile: "/keys/deploy key"), out var p1)!;
        var url = GitRemote.Parse("ssh://git@host.example:2222/srv/deploy.git", new GitCredentials(SshKeyFile: "/keys/id", KnownHostsFile: "/keys/known"), out var p2)!;

        Assert.Null(p1);
        Assert.Null(p2);
        Assert.Equal("git@github.com:org/deploy.git", scp.DisplayUrl);
        Assert.Equal("ssh://git@host.example:2222/srv/deploy.git", url.FetchUrl);
        Assert.Contains("-i '/keys/deploy key'", scp.Environment()["GIT_SSH_COMMAND"], StringComparison.Ordinal);
        var ssh = url.Environment()["GIT_SSH_COMMAND"];
        Assert.Contains("BatchMode=yes", ssh, StringComparison.Ordinal);
        Assert.Contains("StrictHostKeyChecking=yes", ssh, StringComparison.Ordinal);
        Assert.Contains("UserKnownHostsFile='/keys/known'", ssh, StringComparison.Ordinal);
        Assert.False(url.Environment().ContainsKey("GIT_CONFIG_VALUE_0"));
    }

    [Theory]
    [InlineData("git@github.com:org/deploy.git", "tok", null, "--token-file")]
    [InlineData("ssh://git@host/srv/deploy.git", "tok", null, "--token-file")]
    [InlineData("https://github.com/org/deploy.git", null, "/keys/id", "--ssh-key")]
    [InlineData("ftp://host/deploy.git", null, null, "not a URL git can fetch")]
    [InlineData("deploy.git", null, null, "not a URL git can fetch")]
    [InlineData(" https://github.com/org/deploy.git", null, null, "must be a Git URL")]
    [InlineData("ssh://git:pw@host/srv/deploy.git", null, null, "--ssh-key")]
    public void Credentials_that_do_not_fit_the_URL_are_refused_naming_the_flag(string url, string? token, string? key, string expected)
    {
        Assert.Null(GitRemote.Parse(url, new GitCredentials(token, key), out var problem));
        Assert.Contains(expected, problem, StringComparison.Ordinal);
    }

    [Fact]
    public void An_unparseable_URL_is_shown_without_its_password()
    {
        Assert.Null(GitRemote.Parse("https://user:hunter22@/nohost", GitCredentials.None, out var problem));
        Assert.DoesNotContain("hunter22", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void The_identity_is_the_URL_without_credentials_the_branch_and_the_folder()
    {
        var a = GitRemote.Identity("https://github.com/org/deploy.git", "main", "prod");
        Assert.Equal("git:https://github.com/org/deploy.git#main:prod", a);
        Assert.Equal("git:https://github.com/org/deploy.git#HEAD:.", GitRemote.Identity("https://github.com/org/deploy.git", null, ""));
        Assert.NotEqual(GitRemote.SourceId(a, null), GitRemote.SourceId(GitRemote.Identity("https://github.com/org/deploy.git", "main", "staging"), null));
        Assert.NotEqual(GitRemote.SourceId(a, null), GitRemote.SourceId(GitRemote.Identity("https://github.com/org/deploy.git", "dev", "prod"), null));
        Assert.Equal(GitRemote.SourceId("prod-vps1", null), GitRemote.SourceId(a, "prod-vps1"));
        Assert.StartsWith("git-", GitRemote.SourceId(a, null), StringComparison.Ordinal);

        // The same repository with a password in its URL is the same source: credentials are not part of who it is.
        var withPassword = GitRemote.Parse("https://u:pw12345@github.com/org/deploy.git", GitCredentials.None, out _)!;
        Assert.Equal(a, GitRemote.Identity(withPassword.DisplayUrl, "main", "prod"));
    }

    [Fact]
    public void Git_messages_lose_their_last_lines_hints_and_credentials()
    {
        var remote = GitRemote.Parse("https://github.com/org/deploy.git", new GitCredentials(Token: "tok-abcdef"), out _)!;
        var cli = new GitCli(remote, TimeSpan.FromSeconds(5));

        var said = cli.Describe(["fetch"], 128, "remote: tok-abcdef is invalid\nhint: try this\nfatal: Authentication failed for 'https://x:tok-abcdef@github.com/org/deploy.git/'\n");

        Assert.Equal("git fetch failed: remote: *** is invalid; fatal: Authentication failed for 'https://***@github.com/org/deploy.git/'", said);

        // After an SSH failure git adds two lines of advice; the line that says why stays in.
        var ssh = cli.Describe(["fetch"], 128, "No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict checking.\nHost key verification failed.\nfatal: Could not read from remote repository.\n\nPlease make sure you have the correct access rights\nand the repository exists.\n");
        Assert.Equal("git fetch failed: No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict checking.; Host key verification failed.; fatal: Could not read from remote repository.", ssh);
    }
}
