namespace Skiff.Acme;

/// <summary>
/// When to try a failed issuance again: exponential (5 min, 10, 20 … at most 12 h) with "equal jitter" (a delay
/// between half and all of the step), so that many domains failing together (the CA down) do not retry in step,
/// and a CA's failed-validation limit (Let's Encrypt: 5 per hostname an hour) is not spent in minutes.
/// </summary>
public static class RetryBackoff
{
    public static readonly TimeSpan First = TimeSpan.FromMinutes(5);
    public static readonly TimeSpan Longest = TimeSpan.FromHours(12);

    /// <summary>The delay after <paramref name="failures"/> failures in a row (1 or more); <paramref name="unit"/> is a random number in [0, 1).</summary>
    public static TimeSpan Delay(int failures, double unit)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(failures, 1);
        var step = Math.Min(First.TotalSeconds * Math.Pow(2, Math.Min(failures - 1, 30)), Longest.TotalSeconds);
        return TimeSpan.FromSeconds(step / 2 + step / 2 * Math.Clamp(unit, 0, 1));
    }
}
