using Skiff.Hosting;

namespace Skiff.Tests.Sources.Git;

/// <summary>The flags of <c>skiff run --source git</c>: what is refused before anything runs, and how.</summary>
public sealed class GitFeedTests
{
    private static (GitFeedPlan? Plan, string Error) Plan(GitRunOptions options)
    {
        var error = new StringWriter();
        return (GitFeed.Plan(options, error), error.ToString());
    }

    private static GitRunOptions Options(string url = "https://github.com/org/deploy.git", string? branch = null, string? path = null, string interval = "1m", string? token = null, string? key = null) =>
        new(url, branch, path, interval, key, null, token, null);

    [Theory]
    [InlineData(null, "")]
    [InlineData("deploy/prod", "deploy/prod")]
    [InlineData("./deploy//prod/", "deploy/prod")]
    [InlineData(".", "")]
    public void The_folder_in_the_repository_is_normalized(string? given, string expected) =>
        Assert.Equal(expected, GitFeed.NormalizeSubPath(given, out _));

    [Theory]
    [InlineData("/srv/deploy")]
    [InlineData("deploy/../../etc")]
    public void A_folder_outside_the_repository_is_refused(string given)
    {
        Assert.Null(GitFeed.NormalizeSubPath(given, out var problem));
        Assert.Contains("inside the repository", problem, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("0s", "--interval")]
    [InlineData("soon", "--interval")]
    [InlineData("500ms", "--interval")]
    public void A_bad_interval_is_refused(string interval, string flag)
    {
        var (plan, error) = Plan(Options(interval: interval));
        Assert.Null(plan);
        Assert.StartsWith(flag + ":", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("refs/heads/main")]
    [InlineData("-main")]
    [InlineData("a..b")]
    [InlineData("main branch")]
    public void A_bad_branch_is_refused(string branch)
    {
        var (plan, error) = Plan(Options(branch: branch));
        Assert.Null(plan);
        Assert.StartsWith("--branch:", error, StringComparison.Ordinal);
    }

    [Fact]
    public void A_key_and_a_token_together_or_an_unreadable_file_are_refused()
    {
        var (both, bothError) = Plan(Options(token: "/nonexistent/token", key: "/nonexistent/key"));
        Assert.Null(both);
        Assert.StartsWith("--ssh-key and --token-file:", bothError, StringComparison.Ordinal);

        var (missing, missingError) = Plan(Options(token: "/nonexistent/token"));
        Assert.Null(missing);
        Assert.StartsWith("--token-file: cannot read /nonexistent/token", missingError, StringComparison.Ordinal);

        var (noKey, noKeyError) = Plan(Options(url: "git@github.com:org/deploy.git", key: "/nonexistent/key"));
        Assert.Null(noKey);
        Assert.StartsWith("--ssh-key: cannot read /nonexistent/key", noKeyError, StringComparison.Ordinal);
    }

    [Fact]
    public void A_good_plan_has_the_identity_of_the_URL_without_credentials_the_branch_and_the_folder()
    {
        var (plan, error) = Plan(Options(url: "https://u:pw-123456@github.com/org/deploy.git", branch: "main", path: "prod/", interval: "30s"));

        Assert.Equal("", error);
        Assert.Equal("git:https://github.com/org/deploy.git#main:prod", plan!.Identity);
        Assert.Equal(TimeSpan.FromSeconds(30), plan.Options.Interval);
        Assert.Null(plan.WebhookSecret);
    }
}
