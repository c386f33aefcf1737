using Microsoft.Extensions.Logging;
using Skiff.Docker;
using Skiff.Validation;

namespace Skiff.ImageGC;

/// <summary>One engine event, as much of it as image GC needs (Docker's <c>/events</c> message).</summary>
/// <param name="Type"><c>image</c> or <c>container</c>.</param>
/// <param name="Action"><c>pull</c>, <c>tag</c>, <c>import</c>, <c>load</c>, <c>create</c>, <c>start</c>…</param>
/// <param name="ActorId">The image id or reference (image events), the container id (container events).</param>
/// <param name="Attributes">The actor's attributes (a container's <c>image</c>, a tag's <c>name</c>).</param>
/// <param name="Time">When it happened.</param>
public sealed record EngineEvent(string Type, string Action, string ActorId, IReadOnlyDictionary<string, string> Attributes, DateTimeOffset Time);

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

    /// <summary>
    /// Resolves events on a real engine: a container event by inspecting the container (the image id
    /// it was created from), an image event by its actor (an id already, or a reference to inspect).
    /// </summary>
    public static Func<EngineEvent, CancellationToken, Task<string?>> EngineResolver(DockerEngine engine) => async (e, ct) =>
    {
        try
        {
            if (e.Type == "container")
            {
                return (await engine.InspectContainerAsync(e.ActorId, ct))?.ImageId
                    ?? (e.Attributes.TryGetValue("image", out var image) ? (await engine.InspectImageAsync(image, ct))?.Id : null);
            }

            return ImageReference.LooksLikeId(e.ActorId) ? ImageReference.NormalizeId(e.ActorId) : (await engine.InspectImageAsync(e.ActorId, ct))?.Id;
        }
        catch (global::Docker.DotNet.DockerApiException)
        {
            return null; // gone again already: nothing to record
        }
    };

    /// <summary>Follows the engine's events until <paramref name="ct"/> ends, reconnecting with backoff when the stream drops.</summary>
    public async Task FollowAsync(DockerEngine engine, ILogger logger, CancellationToken ct)
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
                await engine.MonitorEventsAsync(Filters, m => pending.Writer.TryWrite(FromMessage(m)), ct);
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

    private static EngineEvent FromMessage(global::Docker.DotNet.Models.Message m)
    {
        var time = m.TimeNano > 0 ? DateTimeOffset.FromUnixTimeMilliseconds(m.TimeNano / 1_000_000) : DateTimeOffset.FromUnixTimeSeconds(m.Time);
        return new EngineEvent(
            m.Type ?? "",
            m.Action ?? m.Status ?? "",
            m.Actor?.ID ?? m.ID ?? "",
            (IReadOnlyDictionary<string, string>?)m.Actor?.Attributes ?? new Dictionary<string, string>(),
            time);
    }
}
