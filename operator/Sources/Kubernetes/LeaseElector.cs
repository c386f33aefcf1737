using System.Net;
using System.Text.Json;
using k8s.Autorest;
using k8s.LeaderElection;
using k8s.LeaderElection.ResourceLock;
using Microsoft.Extensions.Logging;

namespace Skiff.Sources.Kubernetes;

/// <summary>controller-runtime's leader election timings: lease 15 s, renew deadline 10 s, retry every 2 s.</summary>
public sealed record LeaseTimings(TimeSpan LeaseDuration, TimeSpan RenewDeadline, TimeSpan RetryPeriod)
{
    public static LeaseTimings Default { get; } = new(TimeSpan.FromSeconds(15), TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(2));
}

/// <summary>How an attempt to acquire a lease ended.</summary>
/// <param name="Acquired">True when this instance holds the lease now.</param>
/// <param name="Holder">Otherwise: the live instance that holds it (see <see cref="LeaseElector.AcquireAsync"/>).</param>
public sealed record LeaseAcquisition(bool Acquired, string? Holder);

/// <summary>
/// Leader election on a Lease, as client-go's <c>leaderelection.go</c> does it: acquire (retrying every retry period,
/// jittered), then renew every retry period; a renewal that fails is retried every retry period until the renew
/// deadline, and only then is the lease given up. A lease that now names another holder is given up at once.
/// </summary>
/// <remarks>
/// <para>
/// Why not <c>k8s.LeaderElection.LeaderElector</c> (KubernetesClient 21.0.8): its renew loop runs the attempts in a task
/// that treats any exception from the lock as the end of leadership, and <c>LeaseLock</c> lets transport errors through
/// (an <c>HttpRequestException</c> when the API server refuses connections while it restarts), so one refused connection
/// ends the lease at once instead of being retried until the renew deadline. When its deadline does pass, the attempt it
/// gave up on keeps running and may renew the lease after the elector reported it lost; and its caller cannot tell a
/// renewal that failed from a lease taken by another holder. Configuration cannot change any of this, so this elector
/// keeps only the library's <see cref="ILock"/> (<see cref="LeaseLock"/>: the Lease reads and conditional writes).
/// </para>
/// <para>
/// # Guarantees
/// Every attempt runs under the renew deadline's token, so nothing renews the lease after <see cref="HoldAsync"/>
/// returned. Leadership ends at most retry period + renew deadline after the last renewal (12 s by default), before
/// the lease (15 s) lets another instance take it. Times are judged on this instance's clock from when it observed a
/// record change, never from the timestamps in the record (clocks of two hosts may differ), as client-go does.
/// </para>
/// </remarks>
public sealed class LeaseElector
{
    private readonly ILock lease;
    private readonly LeaseTimings timings;
    private readonly ILogger logger;
    private readonly TimeProvider time;
    private LeaderElectionRecord? observed;
    private long observedAt;
    private string? lastHttpError;
    private volatile bool leading;

    public LeaseElector(ILock lease, LeaseTimings timings, ILogger logger, TimeProvider? time = null)
    {
        this.lease = lease;
        this.timings = timings;
        this.logger = logger;
        this.time = time ?? TimeProvider.System;
        if (lease is LeaseLock leaseLock)
        {
            // LeaseLock answers a refused write (409) with false; the reason comes through this event.
            leaseLock.OnHttpError += e => lastHttpError = Describe(e);
        }
    }

    /// <summary>The lease, as namespace/name.</summary>
    public string Name => lease.Describe();

    public string Identity => lease.Identity;

    /// <summary>True from a successful acquisition until the lease is given up.</summary>
    public bool IsLeader => leading;

    /// <summary>Called when the lease is seen with a holder other than the one seen before (this instance included).</summary>
    public event Action<string>? NewLeader;

    /// <summary>
    /// Tries until this instance holds the lease, or <paramref name="ct"/> ends. With <paramref name="yieldToLiveHolder"/>
    /// it gives up as soon as another holder is seen renewing the lease (a running instance serves the node), and returns
    /// that holder; a lease that is not renewed is taken once it expires.
    /// </summary>
    public async Task<LeaseAcquisition> AcquireAsync(bool yieldToLiveHolder, CancellationToken ct)
    {
        string? reported = null;
        LeaderElectionRecord? firstSeen = null;
        string? lastError = null;
        while (true)
        {
            using (var attempt = new Deadline(timings.RenewDeadline, time, ct))
            {
                var result = await TryAcquireOrRenewAsync(attempt.Token, ct);
                if (result.Ok)
                {
                    leading = true;
                    Report(ref reported, Identity);
                    return new LeaseAcquisition(true, null);
                }

                if (result.Holder is { } holder)
                {
                    Report(ref reported, holder);
                    if (firstSeen is null || firstSeen.HolderIdentity != holder)
                    {
                        firstSeen = observed;
                    }
                    else if (yieldToLiveHolder && !Equals(firstSeen, observed))
                    {
                        return new LeaseAcquisition(false, holder);
                    }
                }
                else if (result.Error != lastError)
                {
                    logger.LogWarning("Could not acquire lease {Lease}: {Error}; retrying", Name, result.Error);
                }

                lastError = result.Error;
            }

            // client-go's wait.JitterUntil(retryPeriod, 1.2): so that instances started together do not ask in step.
            var jitter = timings.RetryPeriod * (1 + (Random.Shared.NextDouble() * 1.2));
            await Task.Delay(jitter, time, ct);
        }
    }

    /// <summary>
    /// Renews the lease every retry period while this instance holds it, and returns why it stopped holding it (a
    /// sentence for the log). Returns null when <paramref name="ct"/> ended first; the lease is then kept until it
    /// expires, unless <see cref="ReleaseAsync"/> gives it up.
    /// </summary>
    public async Task<string?> HoldAsync(CancellationToken ct)
    {
        try
        {
            while (true)
            {
                await Task.Delay(timings.RetryPeriod, time, ct);
                var lost = await RenewAsync(ct);
                if (lost is not null)
                {
                    leading = false;
                    return lost;
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            return null;
        }
    }

    /// <summary>
    /// Gives the lease up (client-go's ReleaseOnCancel: no holder, a one-second lease) so that another instance can take
    /// it at once. Call it only when this instance has stopped all work. Best effort: a failure is logged.
    /// </summary>
    public async Task ReleaseAsync(CancellationToken ct)
    {
        if (!leading || observed is not { } record)
        {
            return;
        }

        leading = false;
        var now = time.GetUtcNow().UtcDateTime;
        var released = new LeaderElectionRecord
        {
            HolderIdentity = "",
            LeaseDurationSeconds = 1,
            AcquireTime = now,
            RenewTime = now,
            LeaderTransitions = record.LeaderTransitions,
        };
        try
        {
            lastHttpError = null;
            if (!await lease.UpdateAsync(released, ct))
            {
                // Refused (409): the Lease changed since this instance last read or wrote it. A renewal the stop cut off
                // may have been applied all the same; read it again, and if it is still ours, give it up at that version.
                var current = await lease.GetAsync(ct);
                if (current.HolderIdentity != Identity)
                {
                    logger.LogInformation("Lease {Lease} is held by {Holder} now; nothing to release", Name, current.HolderIdentity);
                    return;
                }

                lastHttpError = null;
                if (!await lease.UpdateAsync(released, ct))
                {
                    logger.LogWarning("Could not release lease {Lease}: {Error}; it expires by itself", Name, lastHttpError);
                    return;
                }
            }

            logger.LogInformation("Released lease {Lease}", Name);
        }
        catch (Exception e) when (e is HttpRequestException or HttpOperationException or OperationCanceledException)
        {
            logger.LogWarning("Could not release lease {Lease}: {Error}; it expires by itself", Name, e.Message);
        }
    }

    /// <summary>
    /// One renewal: retried every retry period until it succeeds or the renew deadline passes (client-go's
    /// <c>wait.PollImmediateUntil(retryPeriod, tryAcquireOrRenew, renewDeadline)</c>). Returns why the lease is lost, or null.
    /// </summary>
    private async Task<string?> RenewAsync(CancellationToken ct)
    {
        using var deadline = new Deadline(timings.RenewDeadline, time, ct);
        var started = time.GetTimestamp();
        string? lastError = null;
        while (true)
        {
            var result = await TryAcquireOrRenewAsync(deadline.Token, ct);
            if (result.Ok)
            {
                if (lastError is not null)
                {
                    logger.LogInformation("Renewed lease {Lease} after {Seconds:0.0} s of failed attempts", Name, time.GetElapsedTime(started).TotalSeconds);
                }

                return null;
            }

            if (result.Holder is { } holder)
            {
                // Renewing cannot succeed before that holder's lease expires, and that holder may already be at work.
                NewLeader?.Invoke(holder);
                return $"it is now held by {holder}";
            }

            // An attempt cut off by the deadline says less than the error before it (the API server refusing, a 5xx):
            // keep that one as the reason, noting that the last attempt got no answer at all.
            lastError = result.Error == NoAnswer && lastError is not null
                ? lastError + "; the last attempt had no answer by the renew deadline"
                : result.Error;
            logger.LogWarning("Could not renew lease {Lease}: {Error}; retrying until the renew deadline ({Deadline} s)",
                Name, result.Error, timings.RenewDeadline.TotalSeconds);
            try
            {
                await Task.Delay(timings.RetryPeriod, time, deadline.Token);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                // The deadline passed while waiting to retry.
            }

            if (deadline.Passed)
            {
                ct.ThrowIfCancellationRequested();
                return $"could not renew it for {timings.RenewDeadline.TotalSeconds:0} s: {lastError}";
            }
        }
    }

    /// <summary>client-go's tryAcquireOrRenew: read the lease, then create, take over (expired) or renew it (ours).</summary>
    private async Task<(bool Ok, string? Holder, string? Error)> TryAcquireOrRenewAsync(CancellationToken attempt, CancellationToken ct)
    {
        var now = time.GetUtcNow().UtcDateTime;
        var desired = new LeaderElectionRecord
        {
            HolderIdentity = Identity,
            LeaseDurationSeconds = (int)timings.LeaseDuration.TotalSeconds,
            AcquireTime = now,
            RenewTime = now,
        };
        try
        {
            LeaderElectionRecord? current;
            try
            {
                current = await lease.GetAsync(attempt);
            }
            catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
            {
                current = null;
            }

            if (current is null)
            {
                lastHttpError = null;
                return await lease.CreateAsync(desired, attempt)
                    ? Observed(desired)
                    : (false, null, $"could not create the lease: {lastHttpError}");
            }

            if (!Equals(observed, current))
            {
                observed = current;
                observedAt = time.GetTimestamp();
            }

            var ours = current.HolderIdentity == Identity;
            if (!ours && !string.IsNullOrEmpty(current.HolderIdentity)
                && time.GetElapsedTime(observedAt) < TimeSpan.FromSeconds(current.LeaseDurationSeconds))
            {
                return (false, current.HolderIdentity, null);
            }

            if (ours)
            {
                desired.AcquireTime = current.AcquireTime;
                desired.LeaderTransitions = current.LeaderTransitions;
            }
            else
            {
                desired.LeaderTransitions = current.LeaderTransitions + 1;
            }

            lastHttpError = null;
            return await lease.UpdateAsync(desired, attempt)
                ? Observed(desired)
                : (false, null, $"the lease was not updated: {lastHttpError}");
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return (false, null, NoAnswer);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // Whatever went wrong (refused connection, 5xx, a body that does not parse), it is retried until the deadline.
            return (false, null, Describe(e));
        }
    }

    private const string NoAnswer = "the API server did not answer within the renew deadline";

    private (bool, string?, string?) Observed(LeaderElectionRecord record)
    {
        observed = record;
        observedAt = time.GetTimestamp();
        return (true, null, null);
    }

    private void Report(ref string? reported, string holder)
    {
        if (holder != reported)
        {
            reported = holder;
            NewLeader?.Invoke(holder);
        }
    }

    /// <summary>The error in words: the API's Status message when there is one, the transport's message otherwise.</summary>
    private static string Describe(Exception e) => e switch
    {
        HttpOperationException { Response: { } response } => $"{(int)response.StatusCode} {response.StatusCode}" +
            (StatusMessage(response.Content) is { } message ? $": {message}" : ""),
        _ => e.Message,
    };

    private static string? StatusMessage(string? content)
    {
        if (string.IsNullOrEmpty(content))
        {
            return null;
        }

        try
        {
            using var json = JsonDocument.Parse(content);
            return json.RootElement.ValueKind == JsonValueKind.Object && json.RootElement.TryGetProperty("message", out var m) ? m.GetString() : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>One attempt's or one renewal's token: cancelled by the caller's token or when the renew deadline passes.</summary>
    private sealed class Deadline : IDisposable
    {
        private readonly CancellationTokenSource timer;
        private readonly CancellationTokenSource linked;

        public Deadline(TimeSpan after, TimeProvider time, CancellationToken ct)
        {
            timer = new CancellationTokenSource(after, time);
            linked = CancellationTokenSource.CreateLinkedTokenSource(ct, timer.Token);
        }

        public CancellationToken Token => linked.Token;

        public bool Passed => timer.IsCancellationRequested;

        public void Dispose()
        {
            linked.Dispose();
            timer.Dispose();
        }
    }
}
