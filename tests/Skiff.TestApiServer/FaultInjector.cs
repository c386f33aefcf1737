using System.Text.RegularExpressions;

namespace Skiff.TestApiServer;

/// <summary>
/// Faults a test can inject: dropped watches, failing requests, a paused server, expired resourceVersions.
/// </summary>
public sealed class FaultInjector
{
    private readonly ObjectStore _store;
    private readonly Lock _lock = new();
    private readonly List<Failure> _failures = [];
    private TaskCompletionSource _resumed = CreateResumed();
    private CancellationTokenSource? _autoResume;

    internal FaultInjector(ObjectStore store)
    {
        _store = store;
    }

    /// <summary>Ends every open watch now (cleanly, as when an apiserver restarts); clients must re-watch.</summary>
    public void DropAllWatches() => _store.DropAllWatches();

    /// <summary>
    /// The next <paramref name="count"/> requests whose method matches <paramref name="methodPattern"/> ("*", "PUT",
    /// "PUT|PATCH") and whose path matches <paramref name="pathRegex"/> fail with <paramref name="statusCode"/>
    /// (409 Conflict, 429 TooManyRequests with Retry-After: 1, 500 InternalError, 503 ServiceUnavailable, others generic).
    /// </summary>
    public void FailNext(int count, string methodPattern, string pathRegex, int statusCode)
    {
        var method = methodPattern is "*" or "" ? ".*" : methodPattern;
        lock (_lock)
        {
            _failures.Add(new Failure(
                new Regex($"^(?:{method})$", RegexOptions.IgnoreCase),
                new Regex(pathRegex),
                statusCode,
                count));
        }
    }

    /// <summary>Removes pending failures.</summary>
    public void ClearFailures()
    {
        lock (_lock)
        {
            _failures.Clear();
        }
    }

    /// <summary>Holds every new request until <see cref="Resume"/> (an unresponsive apiserver). Open watches keep flowing.</summary>
    public void Pause()
    {
        lock (_lock)
        {
            if (_resumed.Task.IsCompleted)
            {
                _resumed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }
        }
    }

    /// <summary>Holds every new request for <paramref name="duration"/>.</summary>
    public void Pause(TimeSpan duration)
    {
        Pause();
        CancellationTokenSource cts;
        lock (_lock)
        {
            _autoResume?.Cancel();
            cts = new CancellationTokenSource();
            _autoResume = cts;
        }

        _ = Task.Delay(duration, cts.Token).ContinueWith(t =>
        {
            if (!t.IsCanceled)
            {
                Resume();
            }
        }, TaskScheduler.Default);
    }

    public void Resume()
    {
        lock (_lock)
        {
            _resumed.TrySetResult();
        }
    }

    /// <summary>Watches from a resourceVersion below <paramref name="resourceVersion"/> get 410 Expired from now on.</summary>
    public void ExpireResourceVersionsBelow(long resourceVersion) => _store.ExpireBelow(resourceVersion);

    /// <summary>Expires every resourceVersion older than the current one and drops open watches: clients must relist.</summary>
    public void ExpireAll()
    {
        _store.ExpireBelow(_store.CurrentRv);
        _store.DropAllWatches();
    }

    internal Task WaitIfPausedAsync(CancellationToken ct)
    {
        Task t;
        lock (_lock)
        {
            t = _resumed.Task;
        }

        return t.WaitAsync(ct);
    }

    internal int? TakeFailure(string method, string path)
    {
        lock (_lock)
        {
            var f = _failures.FirstOrDefault(f => f.Remaining > 0 && f.Method.IsMatch(method) && f.Path.IsMatch(path));
            if (f is null)
            {
                return null;
            }

            if (--f.Remaining == 0)
            {
                _failures.Remove(f);
            }

            return f.StatusCode;
        }
    }

    private static TaskCompletionSource CreateResumed()
    {
        var tcs = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        tcs.SetResult();
        return tcs;
    }

    private sealed class Failure(Regex method, Regex path, int statusCode, int remaining)
    {
        public Regex Method { get; } = method;

        public Regex Path { get; } = path;

        public int StatusCode { get; } = statusCode;

        public int Remaining { get; set; } = remaining;
    }
}
