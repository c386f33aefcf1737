using System.Collections.Concurrent;
using System.Globalization;

namespace Skiff.Reconcile;

/// <summary>Where one image's pull stands.</summary>
/// <param name="Image">The reference pulled.</param>
/// <param name="Done">It ended (well or not).</param>
/// <param name="Failure">Why it failed; null while it runs and when it succeeded.</param>
/// <param name="EndedAt">When it ended.</param>
public sealed record PullState(string Image, bool Done, ImageUnavailableException? Failure, DateTimeOffset? EndedAt);

/// <summary>
/// Image pulls run beside the reconciles, never inside one: a pull takes seconds to minutes, and a worker that waited
/// for it would hold up every other stack of the node. A reconcile starts a pull and comes back; the pull's outcome
/// waits here for it.
/// </summary>
/// <remarks>
/// # Guarantees
/// - One pull per image at a time, whoever asks; every pull is bounded by the pull timeout.
/// - A failed pull is remembered for <see cref="RetryAfter"/> (a reconcile then reports it rather than pulling again at once).
///
/// # Caveats
/// Pulls end with the tracker (<see cref="Dispose"/>): an operator that stops abandons its pulls, and the next one starts them again.
/// </remarks>
public sealed class PullTracker(IContainerEngine engine, IPullListener listener, TimeProvider? timeProvider = null) : IDisposable
{
    private readonly TimeProvider time = timeProvider ?? TimeProvider.System;
    private readonly ConcurrentDictionary<string, PullState> pulls = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource stopping = new();

    /// <summary>How long a failed pull is reported before the next reconcile tries again.</summary>
    public static TimeSpan RetryAfter(ImageUnavailableException failure) => failure.NotFound ? TimeSpan.FromMinutes(2) : TimeSpan.FromSeconds(30);

    /// <summary>
    /// The latest pull of the image with these credentials (another login is another pull: a refusal of one says nothing
    /// of the other), or null when none ran or its failure is old enough to try again.
    /// </summary>
    public PullState? Get(string image, RegistryAuth? auth)
    {
        var key = Key(image, auth);
        if (!pulls.TryGetValue(key, out var state))
        {
            return null;
        }

        if (state is { Done: true, Failure: { } failure, EndedAt: { } ended } && time.GetUtcNow() - ended >= RetryAfter(failure))
        {
            pulls.TryRemove(new KeyValuePair<string, PullState>(key, state));
            return null;
        }

        return state;
    }

    /// <summary>
    /// Starts pulling <paramref name="image"/> unless a pull of it runs already; <paramref name="ended"/> is told how it
    /// ended (for Events). <paramref name="use"/> protects the image from image GC while it is pulled (disposed at the end).
    /// </summary>
    public void Start(string image, RegistryAuth? auth, string stack, TimeSpan timeout, IDisposable? use, Action<PullResult> ended)
    {
        var key = Key(image, auth);
        var running = new PullState(image, false, null, null);
        if (!pulls.TryAdd(key, running))
        {
            if (!pulls.TryGetValue(key, out var existing) || !existing.Done || !pulls.TryUpdate(key, running, existing))
            {
                use?.Dispose();
                return;
            }
        }

        _ = Task.Run(() => PullAsync(key, image, auth, stack, timeout, use, ended));
    }

    public void Dispose()
    {
        stopping.Cancel();
        stopping.Dispose();
    }

    /// <summary>The image and a digest of the login used (never the password itself).</summary>
    private static string Key(string image, RegistryAuth? auth)
    {
        if (auth is null)
        {
            return image;
        }

        var login = System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(
            string.Join('\n', auth.ServerAddress, auth.Username, auth.Password, auth.Auth, auth.IdentityToken)));
        return image + " " + Convert.ToHexStringLower(login.AsSpan(0, 8));
    }

    private async Task PullAsync(string key, string image, RegistryAuth? auth, string stack, TimeSpan timeout, IDisposable? use, Action<PullResult> ended)
    {
        var started = time.GetTimestamp();
        listener.Started(stack, image);
        PullProgress? last = null;
        var progress = new InlineProgress<PullProgress>(p =>
        {
            last = p;
            listener.Progress(stack, p);
        });
        string result;
        ImageUnavailableException? failure = null;
        long bytes = 0;
        try
        {
            using var bounded = CancellationTokenSource.CreateLinkedTokenSource(stopping.Token);
            bounded.CancelAfter(timeout);
            try
            {
                bytes = await engine.PullImageAsync(image, auth, progress, bounded.Token);
                result = PullResults.Success;
            }
            catch (ImageUnavailableException e)
            {
                failure = e;
                result = e.NotFound ? PullResults.NotFound : PullResults.Failed;
            }
            catch (OperationCanceledException) when (!stopping.IsCancellationRequested)
            {
                var sofar = last is { Total: > 0 } p ? $" ({PullLog.Bytes(p.Done)} of {PullLog.Bytes(p.Total)} downloaded)" : "";
                failure = new ImageUnavailableException(image,
                    $"pulling {image} did not finish within the pull timeout of {timeout.TotalSeconds.ToString("0", CultureInfo.InvariantCulture)}s{sofar}; raise it with --pull-timeout", notFound: false);
                result = PullResults.Timeout;
            }
            catch (EngineUnreachableException e)
            {
                failure = new ImageUnavailableException(image, $"pulling {image} failed: {e.Message}", notFound: false);
                result = PullResults.Failed;
            }
        }
        catch (OperationCanceledException)
        {
            // The operator stops: nobody waits for this pull any more.
            pulls.TryRemove(key, out _);
            use?.Dispose();
            return;
        }
        catch (ObjectDisposedException)
        {
            pulls.TryRemove(key, out _);
            use?.Dispose();
            return;
        }

        use?.Dispose();
        var elapsed = time.GetElapsedTime(started);
        var outcome = new PullResult(stack, image, result, bytes, elapsed, failure?.Message);
        pulls[key] = new PullState(image, true, failure, time.GetUtcNow());
        listener.Finished(outcome);
        ended(outcome);
    }
}
