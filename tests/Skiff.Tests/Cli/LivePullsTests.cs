using Microsoft.Extensions.Time.Testing;
using Skiff.Cli;
using Skiff.Docker;
using Skiff.Reconcile;

namespace Skiff.Tests.Cli;

/// <summary>The live pull lines of <c>skiff run --once</c> on a terminal, drawn into a buffer.</summary>
public class LivePullsTests
{
    private const string Up2 = "\u001b[2F\u001b[J";
    private const string Up1 = "\u001b[1F\u001b[J";

    [Fact]
    public void Each_image_has_one_line_redrawn_in_place_and_a_finished_pull_leaves_one_permanent_line()
    {
        var screen = new StringWriter();
        var clock = new FakeTimeProvider(DateTimeOffset.UnixEpoch);
        using var live = new LivePulls(screen, clock);

        live.Started("prod/api", "postgres:16");
        live.Started("prod/api", "acme/api:1");
        Assert.Equal("postgres:16: Pulling\n" + Up1 + "postgres:16: Pulling\nacme/api:1: Pulling\n", screen.ToString());

        screen.GetStringBuilder().Clear();
        clock.Advance(TimeSpan.FromSeconds(1));
        live.Progress("prod/api", new PullProgress("postgres:16", 50_000_000, 100_000_000, 4, 1));
        Assert.Equal(Up2 + "postgres:16: Downloading [==============>               ] 50.0MB/100.0MB (1/4 layers)\nacme/api:1: Pulling\n", screen.ToString());

        // Faster than ten times a second is not drawn (the line keeps the latest figures for the next draw).
        screen.GetStringBuilder().Clear();
        live.Progress("prod/api", new PullProgress("postgres:16", 60_000_000, 100_000_000, 4, 1));
        Assert.Equal("", screen.ToString());

        live.Finished(new PullResult("prod/api", "postgres:16", PullResults.Success, 100_000_000, TimeSpan.FromSeconds(3.2), null));
        Assert.Equal(Up2 + "postgres:16: Pulled 100.0MB in 3.2s\nacme/api:1: Pulling\n", screen.ToString());
    }

    [Fact]
    public void Log_lines_go_above_the_live_block_never_through_it()
    {
        var screen = new StringWriter();
        using var live = new LivePulls(screen, new FakeTimeProvider(DateTimeOffset.UnixEpoch));
        live.Started("bots/bot", "redis:7");
        screen.GetStringBuilder().Clear();

        live.Writer.Write("12:00:01 INF bots/bot: ");
        Assert.Equal("", screen.ToString()); // half a line waits for its end
        live.Writer.Write("start cache container\n");

        Assert.Equal(Up1 + "12:00:01 INF bots/bot: start cache container\nredis:7: Pulling\n", screen.ToString());
    }

    [Fact]
    public void A_failed_pull_says_so_on_its_permanent_line()
    {
        var screen = new StringWriter();
        using var live = new LivePulls(screen, new FakeTimeProvider(DateTimeOffset.UnixEpoch));
        live.Started("prod/api", "postgres:99");

        live.Finished(new PullResult("prod/api", "postgres:99", PullResults.NotFound, 0, TimeSpan.FromSeconds(0.4), "manifest unknown"));

        Assert.EndsWith(Up1 + "postgres:99: Pull failed after 0.4s (not_found)\n", screen.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0, 0, "img: Pulling (0/0 layers)")]
    [InlineData(0, 1000, "img: Downloading [                              ] 0B/1.0kB (0/2 layers)")]
    [InlineData(1000, 1000, "img: Downloading [=============================>] 1.0kB/1.0kB (0/2 layers)")]
    public void A_line_shows_bytes_done_of_the_total_like_docker_pull(long done, long total, string line)
    {
        Assert.Equal(line, LivePulls.Line(new PullProgress("img", done, total, total == 0 ? 0 : 2, 0)));
    }
}

/// <summary>How pull errors are classified, and how they are logged.</summary>
public class PullReportingTests
{
    [Theory]
    [InlineData("manifest for localhost:5000/postgres:99 not found: manifest unknown: manifest unknown", true)]
    [InlineData("pull access denied for acme/api, repository does not exist or may require 'docker login': denied: requested access to the resource is denied", true)]
    [InlineData("Head \"http://localhost:5000/v2/x/manifests/1\": no basic auth credentials", false)]
    [InlineData("unauthorized: authentication required", false)]
    [InlineData("Get \"https://localhost:5001/v2/\": dial tcp 127.0.0.1:5001: connect: connection refused", false)]
    public void A_registry_answer_is_not_found_only_when_it_says_the_image_does_not_exist(string answer, bool notFound)
    {
        Assert.Equal(notFound, ImageUnavailableException.SaysNotFound(answer));
    }

    [Fact]
    public void The_log_has_a_line_at_the_start_one_every_five_seconds_and_one_at_the_end()
    {
        var log = new Runtime.RecordingLogger<PullLog>();
        var clock = new FakeTimeProvider(DateTimeOffset.UnixEpoch);
        var pulls = new PullLog(log, clock);

        pulls.Started("prod/api", "postgres:16");
        for (var i = 1; i <= 12; i++)
        {
            clock.Advance(TimeSpan.FromSeconds(1));
            pulls.Progress("prod/api", new PullProgress("postgres:16", i * 1_000_000, 12_000_000, 3, 0));
        }

        pulls.Finished(new PullResult("prod/api", "postgres:16", PullResults.Success, 12_000_000, TimeSpan.FromSeconds(12), null));

        Assert.Equal(
        [
            "prod/api: pulling image postgres:16",
            "prod/api: pulling image postgres:16: 5.0MB of 12.0MB (0/3 layers)",
            "prod/api: pulling image postgres:16: 10.0MB of 12.0MB (0/3 layers)",
            "prod/api: pulled image postgres:16 in 12.0s (12.0MB)",
        ], log.Entries.Select(e => e.Message));
    }
}
