using System.Diagnostics;
using System.Text.Json;

namespace Skiff.IntegrationTests.Infrastructure;

/// <summary>
/// The tests' one way to wait for the world (Gomega's <c>Eventually</c>): poll until something holds, and when it
/// does not in time, fail saying what did not happen and the last state seen.
/// </summary>
/// <remarks>
/// <para><b>Guarantees.</b> The condition is tried at least once, also after the deadline, and once more after the
/// last pause; an exception from it ends the wait at once (assertions inside a poll fail fast). The failure is a
/// <see cref="TimeoutException"/>: <c>WHAT did not happen within N s (K tries); last seen: STATE</c>, then the context.</para>
/// <para><b>Caveats.</b> It waits; it measures nothing. Never assert on how long it took.</para>
/// </remarks>
public static class Eventually
{
    /// <summary>The pause between tries unless a caller asks for another.</summary>
    public static readonly TimeSpan DefaultInterval = TimeSpan.FromMilliseconds(100);

    private const int MaxStateLength = 4000;

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = false };

    /// <summary>Polls <paramref name="observe"/> until <paramref name="until"/> holds for what it saw; returns that.</summary>
    /// <param name="what">What should happen, as the failure names it ("revision 2 is Ready").</param>
    /// <param name="observe">Reads the state (shown, as JSON, when the wait fails).</param>
    /// <param name="until">Whether the state is the awaited one.</param>
    /// <param name="timeout">How long to wait.</param>
    /// <param name="context">More to show when the wait fails (an operator's log).</param>
    /// <param name="interval">The pause between tries (<see cref="DefaultInterval"/>).</param>
    public static Task<T> UntilAsync<T>(
        string what, Func<Task<T>> observe, Func<T, bool> until, TimeSpan timeout, Func<string>? context = null, TimeSpan? interval = null) =>
        PollAsync(what, async _ =>
        {
            var seen = await observe();
            return (until(seen), seen, (string?)Describe(seen));
        }, timeout, context, interval, CancellationToken.None);

    /// <inheritdoc cref="UntilAsync{T}(string, Func{Task{T}}, Func{T, bool}, TimeSpan, Func{string}?, TimeSpan?)"/>
    public static Task<T> UntilAsync<T>(
        string what, Func<T> observe, Func<T, bool> until, TimeSpan timeout, Func<string>? context = null, TimeSpan? interval = null) =>
        UntilAsync(what, () => Task.FromResult(observe()), until, timeout, context, interval);

    /// <summary>Polls <paramref name="condition"/> until it holds.</summary>
    /// <param name="what">What should happen, as the failure names it.</param>
    /// <param name="condition">Whether it has.</param>
    /// <param name="timeout">How long to wait.</param>
    /// <param name="state">The state to show when the wait fails (read after the last try); without it, only that the condition was false.</param>
    /// <param name="interval">The pause between tries (<see cref="DefaultInterval"/>).</param>
    public static Task TrueAsync(string what, Func<Task<bool>> condition, TimeSpan timeout, Func<string>? state = null, TimeSpan? interval = null) =>
        PollAsync(what, async _ => (await condition(), true, (string?)null), timeout, state, interval, CancellationToken.None);

    /// <inheritdoc cref="TrueAsync(string, Func{Task{bool}}, TimeSpan, Func{string}?, TimeSpan?)"/>
    public static Task TrueAsync(string what, Func<bool> condition, TimeSpan timeout, Func<string>? state = null, TimeSpan? interval = null) =>
        TrueAsync(what, () => Task.FromResult(condition()), timeout, state, interval);

    /// <summary>Polls <paramref name="attempt"/> until it returns a result; each try says what it saw instead.</summary>
    /// <param name="what">What should happen, as the failure names it.</param>
    /// <param name="attempt">One try: the result, or null and what it saw instead (an exit code and output, an error).</param>
    /// <param name="timeout">How long to wait.</param>
    /// <param name="ct">Ends the wait (and is handed to each try).</param>
    /// <param name="interval">The pause between tries (<see cref="DefaultInterval"/>).</param>
    /// <param name="context">More to show when the wait fails.</param>
    public static Task<T> ValueAsync<T>(
        string what, Func<CancellationToken, Task<(T? Result, string State)>> attempt, TimeSpan timeout, CancellationToken ct = default,
        TimeSpan? interval = null, Func<string>? context = null)
        where T : class =>
        PollAsync(what, async token =>
        {
            var (result, state) = await attempt(token);
            return (result is not null, result!, (string?)state);
        }, timeout, context, interval, ct);

    private static async Task<T> PollAsync<T>(
        string what, Func<CancellationToken, Task<(bool Done, T Value, string? State)>> attempt, TimeSpan timeout, Func<string>? context,
        TimeSpan? interval, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var tries = 0;
        string? state;
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            var expired = clock.Elapsed >= timeout;
            tries++;
            var (done, value, seen) = await attempt(ct);
            if (done)
            {
                return value;
            }

            state = seen;
            if (expired)
            {
                break;
            }

            await Task.Delay(interval ?? DefaultInterval, ct);
        }

        // A try that reports no state of its own (a bare condition) is described by the context, read now.
        var more = context?.Invoke();
        var message = $"{what} did not happen within {timeout.TotalSeconds:0.#} s ({tries} tries); last seen: " +
            (state is not null ? Truncate(state) : more is { Length: > 0 } ? "\n" + Truncate(more) : "the condition was false");
        if (state is not null && more is { Length: > 0 })
        {
            message += "\n--- context:\n" + Truncate(more);
        }

        throw new TimeoutException(message);
    }

    private static string Describe<T>(T value)
    {
        if (value is null or string)
        {
            return value as string ?? "null";
        }

        try
        {
            // Tuples and other field-only types serialize as {}: their ToString says more.
            var json = JsonSerializer.Serialize(value, Json);
            return json == "{}" ? value.ToString() ?? json : json;
        }
        catch (Exception e) when (e is NotSupportedException or InvalidOperationException or JsonException)
        {
            return value.ToString() ?? typeof(T).Name;
        }
    }

    /// <summary>The end of a long text: logs say the latest last.</summary>
    private static string Truncate(string text) =>
        text.Length <= MaxStateLength ? text : "…" + text[^MaxStateLength..];
}
