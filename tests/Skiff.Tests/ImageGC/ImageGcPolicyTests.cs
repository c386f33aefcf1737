using k8s.Models;
using Skiff.Api;
using Skiff.ImageGC;

namespace Skiff.Tests.ImageGC;

public class ImageGcPolicyTests
{
    private static ImageGCPolicy Policy(string name, string[]? nodes = null, Action<ImageGCPolicySpec>? edit = null)
    {
        var p = new ImageGCPolicy { Metadata = new V1ObjectMeta { Name = name }, Spec = new ImageGCPolicySpec { Nodes = nodes?.ToList() } };
        edit?.Invoke(p.Spec);
        return p;
    }

    [Fact]
    public void ResolvePolicy_without_policies_is_the_built_in_default()
    {
        var policy = ImageGcPlanner.ResolvePolicy([], "vps-1", out var warning);

        Assert.Same(GcPolicy.BuiltIn, policy);
        Assert.Null(warning);
        Assert.Equal((85, 80, TimeSpan.FromHours(1), 3), (policy.HighThresholdPercent, policy.LowThresholdPercent, policy.MinimumAge, policy.RetainPerRepository));
        Assert.Null(policy.MaximumAge);
        Assert.Empty(policy.Keep);
    }

    [Fact]
    public void ResolvePolicy_prefers_a_policy_naming_the_node_over_one_for_every_node()
    {
        var policy = ImageGcPlanner.ResolvePolicy(
            [Policy("a-everywhere"), Policy("z-vps1", ["vps-1"]), Policy("b-vps2", ["vps-2"])], "vps-1", out var warning);

        Assert.Equal("z-vps1", policy.Name);
        Assert.Null(warning);
    }

    [Fact]
    public void ResolvePolicy_ignores_policies_for_other_nodes()
    {
        var policy = ImageGcPlanner.ResolvePolicy([Policy("other", ["vps-2"])], "vps-1", out _);

        Assert.Same(GcPolicy.BuiltIn, policy);
    }

    [Fact]
    public void ResolvePolicy_among_equals_takes_the_first_by_name_and_warns()
    {
        var policy = ImageGcPlanner.ResolvePolicy([Policy("zeta", ["vps-1"]), Policy("alpha", ["vps-1", "vps-2"])], "vps-1", out var warning);

        Assert.Equal("alpha", policy.Name);
        Assert.NotNull(warning);
        Assert.Contains("alpha, zeta", warning, StringComparison.Ordinal);
        Assert.Contains("using alpha", warning, StringComparison.Ordinal);
    }

    [Fact]
    public void ResolvePolicy_applies_defaults_and_parses_durations()
    {
        var policy = ImageGcPlanner.ResolvePolicy([Policy("default", edit: s =>
        {
            s.MaximumAge = "720h";
            s.MinimumAge = "1h30m";
            s.Keep = ["postgres:*", "redis:*"];
            s.DryRun = true;
        })], "vps-1", out var warning);

        Assert.Null(warning);
        Assert.Equal(TimeSpan.FromHours(720), policy.MaximumAge);
        Assert.Equal(TimeSpan.FromMinutes(90), policy.MinimumAge);
        Assert.Equal(TimeSpan.FromMinutes(10), policy.Interval);
        Assert.Equal(["postgres:*", "redis:*"], policy.Keep);
        Assert.True(policy.DryRun);
        Assert.Equal(85, policy.HighThresholdPercent);
    }

    [Fact]
    public void ResolvePolicy_falls_back_to_safe_values_for_invalid_fields_with_a_warning()
    {
        var policy = ImageGcPlanner.ResolvePolicy([Policy("bad", edit: s =>
        {
            s.MinimumAge = "an hour";
            s.MaximumAge = "30 days";
            s.HighThresholdPercent = 70;
            s.LowThresholdPercent = 75;
        })], "vps-1", out var warning);

        Assert.Equal(TimeSpan.FromHours(1), policy.MinimumAge);
        Assert.Null(policy.MaximumAge);
        Assert.Equal((85, 80), (policy.HighThresholdPercent, policy.LowThresholdPercent));
        Assert.NotNull(warning);
        Assert.Contains("minimumAge", warning, StringComparison.Ordinal);
        Assert.Contains("maximumAge", warning, StringComparison.Ordinal);
        Assert.Contains("thresholds", warning, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("postgres:*", "postgres:16", true)]
    [InlineData("postgres:*", "postgresql:16", false)]
    [InlineData("postgres:*", "docker.io/library/postgres:16", true)]
    [InlineData("docker.io/library/postgres:*", "postgres:16", true)]
    [InlineData("postgres", "postgres:16", true)]          // no tag: the whole repository
    [InlineData("postgres", "postgres@sha256:abc", true)]
    [InlineData("postgres", "postgresql:16", false)]
    [InlineData("postgres:latest", "postgres:16", false)]
    [InlineData("skiff-test/*", "skiff-test/app:1", true)]
    [InlineData("skiff-test/*", "skiff-testing/app:1", false)]
    [InlineData("registry.example.com:5000/team/*", "registry.example.com:5000/team/web:2", true)]
    [InlineData("registry.example.com:5000/team/web", "registry.example.com:5000/team/web:2", true)]
    [InlineData("*:1.*", "acme/api:1.4.2", true)]
    [InlineData("*", "anything/at:all", true)]
    [InlineData("Postgres:*", "postgres:16", false)]       // case-sensitive, like references
    [InlineData("", "postgres:16", false)]
    public void Matches_keep_patterns(string pattern, string reference, bool expected)
    {
        Assert.Equal(expected, ImageGcPlanner.Matches(pattern, reference));
    }

    [Theory]
    [InlineData("30s", 30 * TimeSpan.TicksPerSecond)]
    [InlineData("1h30m", 90 * TimeSpan.TicksPerMinute)]
    [InlineData("1.5h", 90 * TimeSpan.TicksPerMinute)]
    [InlineData("720h", 720 * TimeSpan.TicksPerHour)]
    public void ResolvePolicy_parses_go_durations_with_the_shared_parser(string text, long ticks)
    {
        var policy = ImageGcPlanner.ResolvePolicy([Policy("p", edit: s => s.MinimumAge = text)], "vps-1", out var warning);
        Assert.Null(warning);
        Assert.Equal(ticks, policy.MinimumAge.Ticks);
    }

    [Theory]
    [InlineData("1d")]
    [InlineData("-1h")]
    [InlineData("1 h")]
    [InlineData("1")]
    public void ResolvePolicy_falls_back_to_the_default_for_what_go_rejects(string text)
    {
        var policy = ImageGcPlanner.ResolvePolicy([Policy("p", edit: s => s.MinimumAge = text)], "vps-1", out var warning);
        Assert.Equal(GcPolicy.BuiltIn.MinimumAge, policy.MinimumAge);
        Assert.Contains("minimumAge", warning);
    }
}
