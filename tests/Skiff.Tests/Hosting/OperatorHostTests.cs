using Microsoft.Extensions.Logging.Abstractions;
using Skiff.Hosting;

namespace Skiff.Tests.Hosting;

/// <summary>The manager of one operator process: its runnables run together and stop together.</summary>
public sealed class OperatorHostTests
{
    [Fact]
    public async Task Every_runnable_runs_until_shutdown_and_the_run_ends_well()
    {
        await using var services = new OperatorServices(NullLoggerFactory.Instance);
        var host = new OperatorHost(services, NullLogger.Instance);
        var started = new CountdownEvent(3);
        using var shutdown = new CancellationTokenSource();
        Runnable Waiting(string name) => new(name, async token =>
        {
            started.Signal();
            await Task.Delay(Timeout.Infinite, token);
        });

        var run = host.RunAsync([Waiting("a"), Waiting("b"), Waiting("c")], lease: null, new CancellationTokenSource(), TextWriter.Null, shutdown.Token);
        Assert.True(started.Wait(TimeSpan.FromSeconds(10)), "not every runnable started");
        Assert.False(run.IsCompleted);
        await shutdown.CancelAsync();

        Assert.Equal(ExitCodes.Ok, await run);
    }

    [Fact]
    public async Task A_runnable_that_fails_stops_the_others_and_the_run_says_not_ok()
    {
        await using var services = new OperatorServices(NullLoggerFactory.Instance);
        var host = new OperatorHost(services, NullLogger.Instance);
        var stopped = new TaskCompletionSource();

        var exit = await host.RunAsync(
            [
                new Runnable("waits", async token =>
                {
                    try
                    {
                        await Task.Delay(Timeout.Infinite, token);
                    }
                    finally
                    {
                        stopped.TrySetResult();
                    }
                }),
                new Runnable("fails", async _ =>
                {
                    await Task.Yield();
                    throw new InvalidOperationException("the informer cannot list");
                }),
            ],
            lease: null,
            new CancellationTokenSource(),
            TextWriter.Null,
            CancellationToken.None);

        Assert.Equal(ExitCodes.NotOk, exit);
        Assert.True(stopped.Task.IsCompleted, "the other runnable was not stopped");
    }
}
