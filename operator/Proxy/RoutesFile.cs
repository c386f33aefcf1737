using Microsoft.Extensions.Logging;

namespace Skiff.Proxy;

/// <summary>
/// The routes file as the proxy follows it: a <see cref="FileSystemWatcher"/> on its folder says "look
/// now", and <see cref="ReadGood"/> is also called on a timer, since a rename can be missed (a folder
/// created later, an overflowing event queue, a bind mount).
/// </summary>
/// <remarks>
/// # Guarantees
/// - <see cref="ReadGood"/> returns the file's routes when it holds valid ones, and null otherwise: a
///   missing, empty or invalid file never replaces good routes.
/// - A problem is logged once when it appears (and again only when it changes: another error, other
///   content), not on every check; the file coming back is logged once too.
/// </remarks>
internal sealed class RoutesFile : IDisposable
{
    private readonly ILogger logger;
    private readonly SemaphoreSlim changed = new(0, 1);
    private FileSystemWatcher? watcher;
    private string? problem;
    private bool everGood;

    public RoutesFile(string path, ILogger logger)
    {
        Path = System.IO.Path.GetFullPath(path);
        this.logger = logger;
    }

    public string Path { get; }

    /// <summary>Reads the file; null when it is missing, empty or invalid (then the last good routes stay).</summary>
    public ProxyRoutes? ReadGood()
    {
        EnsureWatcher();
        try
        {
            var routes = ProxyRoutes.Read(Path);
            if (problem is not null && everGood)
            {
                logger.LogInformation("Routes file {Path} is readable again", Path);
            }

            problem = null;
            everGood = true;
            return routes;
        }
        catch (FileNotFoundException)
        {
            Report(everGood
                ? $"Routes file {Path} is gone; keeping the last good routes"
                : $"No routes file at {Path} yet; serving nothing until one is written",
                warn: everGood);
        }
        catch (ProxyRoutesException e)
        {
            Report($"Routes file {Path} is refused ({e.Message}); keeping the last good routes", warn: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Report($"Routes file {Path} cannot be read ({e.Message}); keeping the last good routes", warn: true);
        }

        return null;
    }

    /// <summary>Waits until the watcher reports a change in the folder, or <paramref name="period"/> passes.</summary>
    public async Task WaitAsync(TimeSpan period, CancellationToken ct)
    {
        try
        {
            await changed.WaitAsync(period, ct);
        }
        catch (OperationCanceledException)
        {
        }
    }

    public void Dispose()
    {
        watcher?.Dispose();
        changed.Dispose();
    }

    private void Report(string message, bool warn)
    {
        if (message == problem)
        {
            return;
        }

        problem = message;
        if (warn)
        {
            logger.LogWarning("{Message}", message);
        }
        else
        {
            logger.LogInformation("{Message}", message);
        }
    }

    /// <summary>Watches the folder once it exists (it may be created after the proxy starts).</summary>
    private void EnsureWatcher()
    {
        if (watcher is not null)
        {
            return;
        }

        var folder = System.IO.Path.GetDirectoryName(Path)!;
        if (!Directory.Exists(folder))
        {
            return;
        }

        try
        {
            var w = new FileSystemWatcher(folder)
            {
                NotifyFilter = NotifyFilters.FileName | NotifyFilters.LastWrite | NotifyFilters.Size | NotifyFilters.CreationTime,
                IncludeSubdirectories = false,
            };
            var name = System.IO.Path.GetFileName(Path);
            FileSystemEventHandler onChange = (_, e) =>
            {
                if (string.Equals(e.Name, name, StringComparison.Ordinal))
                {
                    Signal();
                }
            };
            w.Created += onChange;
            w.Changed += onChange;
            w.Deleted += onChange;
            w.Renamed += (_, e) =>
            {
                if (string.Equals(e.Name, name, StringComparison.Ordinal) || string.Equals(e.OldName, name, StringComparison.Ordinal))
                {
                    Signal();
                }
            };
            w.Error += (_, _) => Signal();
            w.EnableRaisingEvents = true;
            watcher = w;
        }
        catch (Exception e) when (e is IOException or ArgumentException or UnauthorizedAccessException)
        {
            // inotify limits reached, say: the periodic check still sees every change, only later.
            logger.LogDebug("Not watching {Folder} ({Reason}); checking it every period instead", folder, e.Message);
        }
    }

    private void Signal()
    {
        try
        {
            if (changed.CurrentCount == 0)
            {
                changed.Release();
            }
        }
        catch (Exception e) when (e is SemaphoreFullException or ObjectDisposedException)
        {
        }
    }
}
