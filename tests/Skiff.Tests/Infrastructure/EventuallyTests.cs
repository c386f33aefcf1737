using Skiff.IntegrationTests.Infrastructure;

namespace Skiff.Tests.Infrastructure;

/// <summary>The tests' one polling helper: it returns what it waited for, and a wait that fails says what and the last state seen.</summary>
public sealed class EventuallyTests
{
    private static readonly TimeSpan Short = TimeSpan.FromMilliseconds(50);

    [Fact]
    public async Task UntilAsync_returns_the_first_state_that_holds()
    {
        var n = 0;
        Assert.Equal(3, await Eventually.UntilAsync("three tries", () => ++n, v => v == 3, TimeSpan.FromSeconds(10), interval: TimeSpan.FromMilliseconds(1)));
    }

    [Fact]
    public async Task A_state_that_never_holds_fails_naming_what_and_the_last_state_as_JSON()
    {
        var e = await Assert.ThrowsAsync<TimeoutException>(() =>
            Eventually.UntilAsync("revision 2 is Ready", () => new { Revision = 1, Phase = "Progressing" }, s => s.Revision == 2, Short, () => "operator log line"));

        Assert.StartsWith("revision 2 is Ready did not happen within 0.1 s (", e.Message, StringComparison.Ordinal);
        Assert.Contains("""last seen: {"Revision":1,"Phase":"Progressing"}""", e.Message, StringComparison.Ordinal);
        Assert.EndsWith("--- context:\noperator log line", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_bare_condition_shows_its_state_as_what_was_last_seen()
    {
        var e = await Assert.ThrowsAsync<TimeoutException>(() => Eventually.TrueAsync("the lease is taken", () => false, Short, () => "Waiting for lease"));
        Assert.EndsWith("last seen: \nWaiting for lease", e.Message, StringComparison.Ordinal);

        e = await Assert.ThrowsAsync<TimeoutException>(() => Eventually.TrueAsync("the lease is taken", () => false, Short));
        Assert.EndsWith("last seen: the condition was false", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ValueAsync_shows_what_the_last_try_saw_and_an_assertion_inside_fails_at_once()
    {
        var e = await Assert.ThrowsAsync<TimeoutException>(() =>
            Eventually.ValueAsync<string>("redis answers PONG", _ => Task.FromResult<(string?, string)>((null, "exit 1: connection refused")), Short));
        Assert.EndsWith("last seen: exit 1: connection refused", e.Message, StringComparison.Ordinal);

        var tries = 0;
        var ended = true;
        await Assert.ThrowsAsync<Xunit.Sdk.FalseException>(() => Eventually.TrueAsync("never", () =>
        {
            tries++;
            Assert.False(ended, "the reconcile ended");
            return false;
        }, TimeSpan.FromSeconds(10)));
        Assert.Equal(1, tries);
    }
}
