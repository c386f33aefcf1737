using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Skiff.Sources.Directory;

namespace Skiff.Sources.Git;

/// <summary>Options of the Git source (<c>skiff run --source git</c>).</summary>
/// <param name="Url">The remote (<c>--url</c>).</param>
/// <param name="Branch">The branch (<c>--branch</c>); null follows the remote's default branch (its HEAD).</param>
/// <param name="SubPath">The folder of the repository holding the documents (<c>--path</c>), relative; empty for the whole tree.</param>
/// <param name="Interval">How often to fetch (<c>--interval</c>).</param>
public sealed record GitSourceOptions(string Url, string? Branch, string SubPath, TimeSpan Interval);

/// <summary>The last error of the Git source: why the commit served is not the remote's newest.</summary>
/// <param name="Reason"><c>FetchFailed</c> (remote unreachable, branch gone, authentication) or <c>InvalidCommit</c>.</param>
/// <param name="Message">What happened, masked, with the commit ids.</param>
/// <param name="Commit">The commit that was rejected, or null when the fetch failed.</param>
/// <param name="Time">When.</param>
/// <param name="Problems">For an invalid commit, one line per problem (<c>FILE:DOC: PATH: message</c>).</param>
public sealed record GitSourceError(string Reason, string Message, string? Commit, DateTimeOffset Time, IReadOnlyList<string> Problems);

/// <summary>What <c>/status</c> shows of the Git source.</summary>
public sealed record GitSourceStatus(
    string Url,
    string? Branch,
    string Path,
    string? Commit,
    string? CommitSubject,
    DateTimeOffset? LastFetchTime,
    DateTimeOffset? LastAttemptTime,
    GitSourceError? LastError);

/// <summary>
/// The Git source: fetches the branch into the state folder on an interval and on request (a webhook), checks the new
/// commit's documents with the folder source's own reading, and only then switches the served folder to it
/// (<see cref="GitCheckout"/>). The folder logic (<see cref="DirectorySource"/>) reads <see cref="FolderPath"/>, through
/// the switched link, after each switch and never in between.
/// </summary>
/// <remarks>
/// # Guarantees
/// - An unreachable remote, a branch that vanished or a commit whose documents fail validation changes nothing served:
///   the last good commit stays, and <see cref="LastError"/>, the log and the metrics say why, with the commit ids.
/// - A commit is validated whole, as Flux does a revision: one invalid document keeps every stack on the last good commit.
/// - A rejected commit is not checked again until the branch moves.
/// - No credential reaches a message: every git message goes through <see cref="GitRemote.Mask"/>.
/// </remarks>
public sealed class GitSource
{
    /// <summary>The reason of a fetch that failed (remote unreachable, branch gone, authentication refused).</summary>
    public const string FetchFailed = "FetchFailed";

    /// <summary>The reason of a commit not served because its documents failed validation.</summary>
    public const string InvalidCommit = "InvalidCommit";

    private readonly GitSourceOptions options;
    private readonly GitCheckout checkout;
    private readonly ILogger logger;
    private readonly GitMetrics? metrics;
    private readonly TimeProvider time;
    private readonly SemaphoreSlim requested = new(0);
    private readonly SemaphoreSlim syncing = new(1, 1);
    private readonly Lock gate = new();
    private string? rejected;
    private string? subject;
    private DateTimeOffset? lastFetch;
    private DateTimeOffset? lastAttempt;
    private GitSourceError? lastError;
    private string? lastLogged;

    public GitSource(GitSourceOptions options, GitRemote remote, string root, ILogger logger, GitMetrics? metrics = null, TimeProvider? timeProvider = null)
    {
        this.options = options;
        Remote = remote;
        this.logger = logger;
        this.metrics = metrics;
        time = timeProvider ?? TimeProvider.System;
        checkout = new GitCheckout(root, remote, options.Branch, new GitCli(remote, TimeSpan.FromMinutes(5)));
        Commit = checkout.CurrentCommit();
        if (Commit is not null)
        {
            metrics?.Serving(Commit);
        }
    }

    public GitRemote Remote { get; }

    /// <summary>The clone in the state folder (builds read commits' trees from it).</summary>
    internal GitCheckout Checkout => checkout;

    /// <summary>The commit served (the last good one), or null before the first.</summary>
    public string? Commit { get; private set; }

    /// <summary>The folder the folder logic reads: the served commit's <c>--path</c>, through the switched link.</summary>
    public string FolderPath => options.SubPath.Length == 0 ? checkout.Current : Path.Combine(checkout.Current, options.SubPath);

    public GitSourceError? LastError
    {
        get
        {
            lock (gate)
            {
                return lastError;
            }
        }
    }

    /// <summary><c>git:URL@COMMIT</c>, the <c>status.source</c> of resources from <paramref name="commit"/> (URL without credentials).</summary>
    public string Describe(string? commit) => $"git:{Remote.DisplayUrl}@{commit ?? "none"}";

    /// <summary>What <c>/status</c> shows.</summary>
    public GitSourceStatus Status()
    {
        lock (gate)
        {
            return new GitSourceStatus(Remote.DisplayUrl, options.Branch, options.SubPath, Commit, subject, lastFetch, lastAttempt, lastError);
        }
    }

    /// <summary>Asks for a fetch now (a webhook); the loop of <see cref="RunAsync"/> does it.</summary>
    public void RequestSync(string why)
    {
        logger.LogInformation("Git sync requested: {Why}", why);
        requested.Release();
    }

    /// <summary>
    /// Fetches once and serves the branch's commit when it is new and valid; returns whether the served commit changed.
    /// Failures are kept in <see cref="LastError"/>, never thrown (only cancellation is).
    /// </summary>
    public async Task<bool> SyncAsync(CancellationToken ct)
    {
        await syncing.WaitAsync(ct);
        try
        {
            return await SyncLockedAsync(ct);
        }
        finally
        {
            syncing.Release();
        }
    }

    /// <summary>Syncs every interval and on each request until <paramref name="ct"/> ends; calls <paramref name="switched"/> after each switch.</summary>
    public async Task RunAsync(Action<string> switched, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await requested.WaitAsync(options.Interval, ct);
                while (requested.CurrentCount > 0)
                {
                    await requested.WaitAsync(ct);
                }

                if (await SyncAsync(ct) && Commit is { } commit)
                {
                    switched(commit);
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
        }
    }

    private async Task<bool> SyncLockedAsync(CancellationToken ct)
    {
        var now = time.GetUtcNow();
        lock (gate)
        {
            lastAttempt = now;
        }

        string head;
        try
        {
            head = await checkout.FetchAsync(ct);
        }
        catch (Exception e) when (e is GitException or IOException or UnauthorizedAccessException)
        {
            metrics?.FetchFailed();
            Fail(new GitSourceError(FetchFailed, $"{Remote.Mask(e.Message)}; {Serving()}", null, now, []));
            return false;
        }

        now = time.GetUtcNow();
        lock (gate)
        {
            lastFetch = now;
        }

        metrics?.Fetched(now);
        if (head == Commit)
        {
            Succeed();
            return false;
        }

        if (head == rejected)
        {
            // Already said why (and counted it); the error stays until the branch moves.
            return false;
        }

        var problems = await CheckAsync(head, ct);
        if (problems.Count > 0)
        {
            rejected = head;
            checkout.Discard(head);
            metrics?.Rejected();
            Fail(new GitSourceError(
                InvalidCommit,
                $"commit {Short(head)} is not served: {problems.Count} problem(s): {string.Join("; ", problems.Take(5))}{(problems.Count > 5 ? "; …" : "")}; {Serving()}",
                head, now, problems));
            return false;
        }

        var previous = Commit;
        try
        {
            checkout.Switch(head);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            checkout.Discard(head);
            Fail(new GitSourceError(InvalidCommit, $"commit {Short(head)} could not be switched to: {e.Message}; {Serving()}", head, now, []));
            return false;
        }

        var newSubject = Remote.Mask(await checkout.SubjectAsync(head, ct));
        lock (gate)
        {
            Commit = head;
            subject = newSubject;
        }

        rejected = null;
        metrics?.Serving(head);
        logger.LogInformation("Git source {Url}: serving commit {Commit} ({Subject}), was {Previous}", Remote.DisplayUrl, head, newSubject, previous ?? "none");
        Succeed();
        return true;
    }

    /// <summary>The problems of the commit's documents, read as the folder source reads them; none when it may be served.</summary>
    private async Task<IReadOnlyList<string>> CheckAsync(string commit, CancellationToken ct)
    {
        string tree;
        try
        {
            tree = await checkout.MaterializeAsync(commit, ct);
        }
        catch (Exception e) when (e is GitException or IOException or UnauthorizedAccessException or InvalidDataException)
        {
            return [$"cannot check it out: {Remote.Mask(e.Message)}"];
        }

        var folder = options.SubPath.Length == 0 ? tree : Path.Combine(tree, options.SubPath);
        if (!System.IO.Directory.Exists(folder))
        {
            return [$"--path {options.SubPath}: no such folder in the commit"];
        }

        var probe = new DirectorySource(folder, NullLogger<DirectorySource>.Instance);
        probe.Rescan();
        return [.. probe.Problems, .. probe.Entries().SelectMany(e => e.Errors)];
    }

    private string Serving() => Commit is null ? "no commit is served yet" : $"still serving commit {Short(Commit)}";

    private void Fail(GitSourceError error)
    {
        lock (gate)
        {
            lastError = error;
        }

        if (error.Message != lastLogged)
        {
            lastLogged = error.Message;
            logger.LogWarning("Git source {Url}: {Reason}: {Message}", Remote.DisplayUrl, error.Reason, error.Message);
        }
        else
        {
            logger.LogDebug("Git source {Url}: {Reason} again: {Message}", Remote.DisplayUrl, error.Reason, error.Message);
        }
    }

    private void Succeed()
    {
        bool recovered;
        lock (gate)
        {
            recovered = lastError is not null;
            lastError = null;
        }

        lastLogged = null;
        metrics?.SyncSucceeded();
        if (recovered)
        {
            logger.LogInformation("Git source {Url}: synced again at commit {Commit}", Remote.DisplayUrl, Commit);
        }
    }

    private static string Short(string commit) => commit.Length > 12 ? commit[..12] : commit;
}
