namespace Skiff.Runtime;

/// <summary>
/// Decides how long a key waits before it is retried, like client-go's <c>TypedRateLimiter</c>.
/// </summary>
public interface IRateLimiter<TKey>
    where TKey : notnull
{
    /// <summary>How long to wait before the next retry of <paramref name="key"/>; records the retry.</summary>
    TimeSpan When(TKey key);

    /// <summary>Forgets the key's failures: its next retry starts from the base delay again.</summary>
    void Forget(TKey key);

    /// <summary>How many times the key has been retried since it was last forgotten.</summary>
    int NumRequeues(TKey key);
}

/// <summary>The rate limiters controller-runtime uses by default.</summary>
public static class RateLimiters
{
    /// <summary>
    /// controller-runtime's default: per-key exponential backoff from 5 ms doubling up to 1000 s,
    /// combined (the longer delay wins) with an overall token bucket of 10 qps and burst 100, so a
    /// mass failure cannot hammer the API server or Docker engine.
    /// </summary>
    public static IRateLimiter<TKey> Default<TKey>(TimeProvider? time = null)
        where TKey : notnull =>
        new MaxOfRateLimiter<TKey>(
            new ExponentialFailureRateLimiter<TKey>(TimeSpan.FromMilliseconds(5), TimeSpan.FromSeconds(1000)),
            new BucketRateLimiter<TKey>(qps: 10, burst: 100, time));
}

/// <summary>
/// Per-key exponential backoff: <c>baseDelay * 2^failures</c>, capped at <c>maxDelay</c>.
/// </summary>
/// <remarks>
/// # Guarantees
/// Thread-safe. The first retry of a key waits <c>baseDelay</c>; every further retry doubles it
/// until <c>maxDelay</c>; <see cref="Forget"/> starts over.
/// </remarks>
public sealed class ExponentialFailureRateLimiter<TKey>(TimeSpan baseDelay, TimeSpan maxDelay) : IRateLimiter<TKey>
    where TKey : notnull
{
    private readonly Lock gate = new();
    private readonly Dictionary<TKey, int> failures = [];

    public TimeSpan When(TKey key)
    {
        int exponent;
        lock (gate)
        {
            failures.TryGetValue(key, out exponent);
            failures[key] = exponent + 1;
        }

        // 2^exponent overflows long before any sane cap; compute in double and clamp.
        var ticks = baseDelay.Ticks * Math.Pow(2, exponent);
        return ticks >= maxDelay.Ticks ? maxDelay : TimeSpan.FromTicks((long)ticks);
    }

    public void Forget(TKey key)
    {
        lock (gate)
        {
            failures.Remove(key);
        }
    }

    public int NumRequeues(TKey key)
    {
        lock (gate)
        {
            return failures.GetValueOrDefault(key);
        }
    }
}

/// <summary>
/// An overall token bucket (golang.org/x/time/rate semantics): <c>burst</c> retries pass at once,
/// then they are spaced at <c>qps</c> per second across all keys.
/// </summary>
public sealed class BucketRateLimiter<TKey>(double qps, int burst, TimeProvider? time = null) : IRateLimiter<TKey>
    where TKey : notnull
{
    private readonly Lock gate = new();
    private readonly TimeProvider time = time ?? TimeProvider.System;
    private double tokens = burst;
    private long? last;

    public TimeSpan When(TKey key)
    {
        lock (gate)
        {
            var now = time.GetTimestamp();
            if (last is { } previous)
            {
                tokens = Math.Min(burst, tokens + (time.GetElapsedTime(previous, now).TotalSeconds * qps));
            }

            last = now;
            // Reserve a token even if it is not there yet: the debt is what later callers wait for.
            tokens -= 1;
            return tokens >= 0 ? TimeSpan.Zero : TimeSpan.FromSeconds(-tokens / qps);
        }
    }

    public void Forget(TKey key)
    {
    }

    public int NumRequeues(TKey key) => 0;
}

/// <summary>Combines limiters: the longest delay wins; requeues are the most any limiter counted.</summary>
public sealed class MaxOfRateLimiter<TKey>(params IRateLimiter<TKey>[] limiters) : IRateLimiter<TKey>
    where TKey : notnull
{
    public TimeSpan When(TKey key)
    {
        var delay = TimeSpan.Zero;
        foreach (var limiter in limiters)
        {
            var d = limiter.When(key);
            if (d > delay)
            {
                delay = d;
            }
        }

        return delay;
    }

    public void Forget(TKey key)
    {
        foreach (var limiter in limiters)
        {
            limiter.Forget(key);
        }
    }

    public int NumRequeues(TKey key) => limiters.Max(l => l.NumRequeues(key));
}
