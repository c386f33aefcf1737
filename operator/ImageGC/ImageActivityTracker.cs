using Microsoft.Extensions.Logging;

namespace Skiff.ImageGC;

/// <summary>One engine event, as much of it as image GC needs (Docker's <c>/events</c> message).</summary>
/// <param name="Type"><c>image</c> or <c>container</c>.</param>
/// <param name="Action"><c>pull</c>, <c>tag</c>, <c>import</c>, <c>load</c>, <c>create</c>, <c>start</c>…</param>
/// <param name="ActorId">The image id or reference (image events), the container id (container events).</param>
/// <param name="Attributes">The actor's attributes (a container's <c>image</c>, a tag's <c>name</c>).</param>
/// <param name="Time">When it happened.</param>
public sealed record EngineEvent(string Type, string Action, string ActorId, IReadOnlyDictionary<string, string> Attributes, DateTimeOffset Time);

/// <summary>
/// The engine's side of <see cref="ImageActivityTracker"/>: its event stream and the look-ups that turn an
/// event into an image id. <c>Docker/</c> implements it on the node's engine; tests hand events in directly.
/// </summary>
public interface IImageEventSource
{
    /// <summary>
    /// Calls <paramref name="onEvent"/> (which must not block) for every event matching <paramref name="filters"/>
    /// (Docker's <c>/events</c> filters: values under one key are ORed, keys ANDed) until <paramref name="ct"/>
    /// ends; throws when the stream drops, and the caller reconnects.
    /// </summary>
    Task MonitorEventsAsync(IReadOnlyDictionary<string, string[]> filters, Action<EngineEvent> onEvent, CancellationToken ct);

    /// <summary>The id of the image an event is about, or null when that is gone again (nothing to record).</summary>
    Task<string?> ResolveImageIdAsync(EngineEvent e, CancellationToken ct);
}

/// <summary>
/// Keeps <see cref="FirstSeenStore"/> current from the engine's event stream: an image pulled,
/// tagged, imported or loaded is first seen then (if Skiff did not know it); a container created or
/// started marks its image used. Whoever pulls or starts (Skiff, a CI script, a person) counts,
/// which is what "first seen" and "least recently used" mean on a node.
/// </summary>
/// <remarks>
/// <b>Caveats.</b> Events missed while the stream is down (engine restart, operator restart) are
/// covered by the scan at each GC pass: an unknown image is then first seen at the scan, later than
/// it arrived, which only protects it longer.
/// </remarks>
public sealed class ImageActivityTracker(FirstSeenStore store, Func<EngineEvent, CancellationToken, Task<string?>> resolveImageId)
{
    /// <summary>The filters for Docker's <c>/events</c>: values under one key are ORed, keys ANDed.</summary>
    public static IReadOnlyDictionary<string, string[]> Filters { get; } = new Dictionary<string, string[]>
    {
        ["type"] = ["image", "container"],
        ["event"] = ["pull", "tag", "import", "load", "create", "start"],
    };

    /// <summary>Applies one event; returns the image id it touched, or null when it was not about an image Skiff can resolve.</summary>
    public async Task<string?> HandleAsync(EngineEvent e, CancellationToken ct)
    {
        var used = e.Type == "container" && e.Action is "create" or "start";
        var seen = e.Type == "image" && e.Action is "pull" or "tag" or "import" or "load";
        if (!used && !seen)
        {
            return null;
        }

        var id = await resolveImageId(e, ct);
        if (string.IsNullOrEmpty(id))
        {
            return null;
        }

        if (used)
        {
            store.MarkUsed(id, e.Time);
        }
        else
        {
            store.MarkSeen(id, e.Time);
        }

        return id;
    }

    /// <summary>Resolves events on the node's engine (see <see cref="IImageEventSource.ResolveImageIdAsync"/>).</summary>
    public static Func<EngineEvent, CancellationToken, Task<string?>> EngineResolver(IImageEventSource engine) => engine.ResolveImageIdAsync;

    /// <summary>Follows the engine's events until <paramref name="ct"/> ends, reconnecting with backoff when the stream drops.</summary>
    public async Task FollowAsync(IImageEventSource engine, ILogger logger, CancellationToken ct)
    {
        var delay = TimeSpan.FromSeconds(1);
        while (!ct.IsCancellationRequested)
        {
            var pending = System.Threading.Channels.Channel.CreateUnbounded<EngineEvent>();
            var consumer = Task.Run(async () =>
            {
                await foreach (var e in pending.Reader.ReadAllAsync(ct))
                {
                    try
                    {
                        await HandleAsync(e, ct);
                    }
                    catch (Exception ex) when (ex is not OperationCanceledException)
                    {
                        logger.LogDebug(ex, "Image GC: could not record engine event {Type} {Action} {Actor}", e.Type, e.Action, e.ActorId);
                    }
                }
            }, ct);
            try
            {
                // The stream's callback must not block on the engine; resolution happens on the consumer.
                await engine.MonitorEventsAsync(Filters, e => pending.Writer.TryWrite(e), ct);
                delay = TimeSpan.FromSeconds(1);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                logger.LogWarning("Image GC: the engine's event stream stopped ({Message}); reconnecting in {Delay}", e.Message, delay);
            }
            finally
            {
                pending.Writer.TryComplete();
                await consumer.ContinueWith(_ => { }, TaskScheduler.Default);
            }

            try
            {
                await Task.Delay(delay, ct);
            }
            catch (OperationCanceledException)
            {
                break;
            }

            delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(30).Ticks));
        }
    }
}
