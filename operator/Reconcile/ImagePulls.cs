using System.Globalization;
using Microsoft.Extensions.Logging;

namespace Skiff.Reconcile;

/// <summary>How a pull ended; the values of <c>skiff_image_pull_duration_seconds{result}</c>.</summary>
public static class PullResults
{
    public const string Success = "success";

    /// <summary>The registry says the image does not exist.</summary>
    public const string NotFound = "not_found";

    /// <summary>Refused (credentials) or failed (network, registry error).</summary>
    public const string Failed = "failed";

    /// <summary>Did not finish within the pull timeout.</summary>
    public const string Timeout = "timeout";
}

/// <summary>One finished pull.</summary>
public sealed record PullResult(string Stack, string Image, string Result, long Bytes, TimeSpan Duration, string? Error);

/// <summary>
/// Watches image pulls as they happen: the log, the metrics and, for <c>skiff run --once</c> on a terminal,
/// one live line per image.
/// </summary>
public interface IPullListener
{
    void Started(string stack, string image);

    void Progress(string stack, PullProgress progress);

    void Finished(PullResult result);
}

/// <summary>Several listeners as one.</summary>
public sealed class PullListeners(params IPullListener[] listeners) : IPullListener
{
    public void Started(string stack, string image)
    {
        foreach (var l in listeners)
        {
            l.Started(stack, image);
        }
    }

    public void Progress(string stack, PullProgress progress)
    {
        foreach (var l in listeners)
        {
            l.Progress(stack, progress);
        }
    }

    public void Finished(PullResult result)
    {
        foreach (var l in listeners)
        {
            l.Finished(result);
        }
    }
}

/// <summary>
/// Pulls in the log: a line when one starts, one every <see cref="Interval"/> while it runs (bytes so far), and
/// one at the end with its size and duration, so a long first pull on a fresh host never looks like a hang.
/// </summary>
public sealed class PullLog(ILogger logger, TimeProvider? timeProvider = null) : IPullListener
{
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(5);
    private readonly TimeProvider time = timeProvider ?? TimeProvider.System;
    private readonly Dictionary<(string, string), DateTimeOffset> lastLine = [];

    public void Started(string stack, string image)
    {
        lock (lastLine)
        {
            lastLine[(stack, image)] = time.GetUtcNow();
        }

        logger.LogInformation("{Stack}: pulling image {Image}", stack, image);
    }

    public void Progress(string stack, PullProgress progress)
    {
        var now = time.GetUtcNow();
        lock (lastLine)
        {
            if (lastLine.TryGetValue((stack, progress.Image), out var last) && now - last < Interval)
            {
                return;
            }

            lastLine[(stack, progress.Image)] = now;
        }

        logger.LogInformation("{Stack}: pulling image {Image}: {Done} of {Total} ({LayersDone}/{Layers} layers)",
            stack, progress.Image, Bytes(progress.Done), Bytes(progress.Total), progress.LayersDone, progress.Layers);
    }

    public void Finished(PullResult result)
    {
        lock (lastLine)
        {
            lastLine.Remove((result.Stack, result.Image));
        }

        var seconds = result.Duration.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture);
        if (result.Result == PullResults.Success)
        {
            logger.LogInformation("{Stack}: pulled image {Image} in {Seconds}s ({Size})", result.Stack, result.Image, seconds, Bytes(result.Bytes));
        }
        else
        {
            logger.LogWarning("{Stack}: pulling image {Image} failed after {Seconds}s ({Result}): {Error}", result.Stack, result.Image, seconds, result.Result, result.Error);
        }
    }

    /// <summary>A byte count as <c>docker pull</c> shows it: 12.3MB.</summary>
    public static string Bytes(long bytes) => bytes switch
    {
        >= 1_000_000_000 => (bytes / 1e9).ToString("0.00", CultureInfo.InvariantCulture) + "GB",
        >= 1_000_000 => (bytes / 1e6).ToString("0.0", CultureInfo.InvariantCulture) + "MB",
        >= 1_000 => (bytes / 1e3).ToString("0.0", CultureInfo.InvariantCulture) + "kB",
        _ => bytes.ToString(CultureInfo.InvariantCulture) + "B",
    };
}
