using System.Text.Json;
using System.Text.Json.Serialization;
using Skiff.Api;
using Skiff.Observability;

namespace Skiff.State;

/// <summary>One Event of a resource as the state folder keeps it: a core/v1 Event's fields that <c>skiff status NAME</c> shows.</summary>
public sealed class StoredEvent
{
    /// <summary>Normal or Warning.</summary>
    [JsonPropertyName("type")]
    public string Type { get; set; } = "Normal";

    [JsonPropertyName("reason")]
    public string Reason { get; set; } = "";

    [JsonPropertyName("message")]
    public string Message { get; set; } = "";

    /// <summary>How many times this type, reason and message happened (kube's aggregation).</summary>
    [JsonPropertyName("count")]
    public int Count { get; set; } = 1;

    [JsonPropertyName("firstTimestamp")]
    public DateTimeOffset FirstTimestamp { get; set; }

    [JsonPropertyName("lastTimestamp")]
    public DateTimeOffset LastTimestamp { get; set; }
}

public sealed partial class StateStore
{
    /// <summary>How many distinct events a resource keeps; older ones go first.</summary>
    public const int MaxEvents = 20;

    // One skiff run owns a state folder (the lock); within it, the reconcile workers and health watchers
    // append from several threads, so the read-modify-write of one file is serialised here.
    private static readonly Lock EventsGate = new();

    private string EventsDir => Path.Combine(Root, "events");

    /// <summary>
    /// Records an event of <paramref name="ns"/>/<paramref name="name"/>, as the API server aggregates them: the same
    /// type, reason and message again increments its count and moves its lastTimestamp; the file keeps the last
    /// <see cref="MaxEvents"/>, ordered by lastTimestamp, written atomically. Known secret values are masked.
    /// </summary>
    public void AppendEvent(string ns, string name, string type, string reason, string message, DateTimeOffset time)
    {
        message = SecretRedactor.Shared.Redact(message);
        lock (EventsGate)
        {
            var events = ReadEvents(ns, name).ToList();
            var same = events.FindIndex(e => e.Type == type && e.Reason == reason && e.Message == message);
            StoredEvent entry;
            if (same >= 0)
            {
                entry = events[same];
                events.RemoveAt(same);
                entry.Count++;
                entry.LastTimestamp = time;
            }
            else
            {
                entry = new StoredEvent { Type = type, Reason = reason, Message = message, FirstTimestamp = time, LastTimestamp = time };
            }

            events.Add(entry);
            if (events.Count > MaxEvents)
            {
                events.RemoveRange(0, events.Count - MaxEvents);
            }

            AtomicFile.Write(EventsPath(ns, name), JsonSerializer.SerializeToUtf8Bytes(events, Json.Info<List<StoredEvent>>()));
        }
    }

    /// <summary>The resource's events, oldest first; none when it has no events file (or an unreadable one).</summary>
    public IReadOnlyList<StoredEvent> ReadEvents(string ns, string name)
    {
        var path = EventsPath(ns, name);
        try
        {
            return File.Exists(path) ? JsonSerializer.Deserialize(File.ReadAllBytes(path), Json.Info<List<StoredEvent>>()) ?? [] : [];
        }
        catch (JsonException)
        {
            // A hand-edited file is treated as empty; the next event writes it anew.
            return [];
        }
    }

    private string EventsPath(string ns, string name) => Path.Combine(EventsDir, $"{ns}_{name}.json");
}
