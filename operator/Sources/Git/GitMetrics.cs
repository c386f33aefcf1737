using Prometheus;

namespace Skiff.Sources.Git;

/// <summary>
/// The Git source's metrics: <c>skiff_git_last_fetch_timestamp_seconds</c> (the last successful fetch),
/// <c>skiff_git_fetches_total{result}</c> and <c>skiff_git_fetch_errors_total</c>, <c>skiff_git_rejected_commits_total</c>
/// (commits whose documents failed validation), <c>skiff_git_commit_info{commit}</c> (1 for the commit being served) and
/// <c>skiff_git_sync_ok</c> (0 while the last sync failed: alert on it). No URL in a label: it could hold a user name.
/// </summary>
public sealed class GitMetrics
{
    private readonly Gauge lastFetch;
    private readonly Counter fetches;
    private readonly Counter fetchErrors;
    private readonly Counter rejected;
    private readonly Gauge commitInfo;
    private readonly Gauge syncOk;
    private string? shownCommit;

    public GitMetrics(CollectorRegistry registry)
    {
        var factory = Prometheus.Metrics.WithCustomRegistry(registry);
        lastFetch = factory.CreateGauge("skiff_git_last_fetch_timestamp_seconds", "Unix time of the Git source's last successful fetch.");
        fetches = factory.CreateCounter("skiff_git_fetches_total", "Fetches of the Git source, by result.", new CounterConfiguration { LabelNames = ["result"] });
        fetchErrors = factory.CreateCounter("skiff_git_fetch_errors_total", "Fetches of the Git source that failed (remote unreachable, branch gone, authentication).");
        rejected = factory.CreateCounter("skiff_git_rejected_commits_total", "Commits not served because their documents failed validation (the last good commit keeps running).");
        commitInfo = factory.CreateGauge("skiff_git_commit_info", "1 for the commit the Git source serves.", new GaugeConfiguration { LabelNames = ["commit"] });
        syncOk = factory.CreateGauge("skiff_git_sync_ok", "1 when the Git source's last sync succeeded (fetched, and the commit is served), else 0.");
        fetches.WithLabels("success");
        fetches.WithLabels("error");
    }

    public void Fetched(DateTimeOffset at)
    {
        fetches.WithLabels("success").Inc();
        lastFetch.Set(at.ToUnixTimeMilliseconds() / 1000.0);
    }

    public void FetchFailed()
    {
        fetches.WithLabels("error").Inc();
        fetchErrors.Inc();
        syncOk.Set(0);
    }

    public void Rejected()
    {
        rejected.Inc();
        syncOk.Set(0);
    }

    public void Serving(string commit)
    {
        lock (commitInfo)
        {
            if (shownCommit is not null && shownCommit != commit)
            {
                commitInfo.RemoveLabelled(shownCommit);
            }

            commitInfo.WithLabels(commit).Set(1);
            shownCommit = commit;
        }
    }

    public void SyncSucceeded() => syncOk.Set(1);
}
