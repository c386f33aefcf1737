using System.Text.Json;
using System.Text.Json.Serialization;
using Skiff.State;
using Skiff.Validation;

namespace Skiff.ImageGC;

/// <summary>
/// When Skiff first saw each image on this node and when it last started a container from it,
/// kept as one JSON file in the state folder (DESIGN §3). The engine only knows when an image was
/// built, which says nothing about when it arrived; <c>minimumAge</c> and least-recently-used
/// ordering need these two times instead.
/// </summary>
/// <remarks>
/// <para><b>Guarantees.</b> Writes are atomic (temporary file in the same folder, flushed, renamed
/// over the old one), so a crash leaves the old file or the new one, never half of either. An
/// image is first seen at the first <see cref="Observe"/> that lists it; ids no longer on the
/// engine are forgotten there too, so the file stays as small as the image list.</para>
/// <para><b>Caveats.</b> A missing or unreadable file starts empty (see <see cref="LoadWarning"/>):
/// every image then counts as first seen now, which protects it for <c>minimumAge</c> — the
/// safe direction. Not shared between processes; the state folder's lock already ensures one
/// <c>skiff run</c> or <c>skiff gc</c> at a time.</para>
/// </remarks>
public sealed partial class FirstSeenStore
{

    private readonly Lock gate = new();
    private readonly Dictionary<string, Times> images;
    private long changes;

    private FirstSeenStore(string path, Dictionary<string, Times> images, string? loadWarning)
    {
        Path = path;
        this.images = images;
        LoadWarning = loadWarning;
    }

    /// <summary>The JSON file.</summary>
    public string Path { get; }

    /// <summary>Why the file could not be read, when it existed but was not valid; null otherwise.</summary>
    public string? LoadWarning { get; }

    /// <summary>How many images are recorded.</summary>
    public int Count
    {
        get
        {
            lock (gate)
            {
                return images.Count;
            }
        }
    }

    /// <summary>Reads the file, or starts empty when it does not exist or cannot be read.</summary>
    public static async Task<FirstSeenStore> LoadAsync(string path, CancellationToken ct)
    {
        var full = System.IO.Path.GetFullPath(path);
        if (!File.Exists(full))
        {
            return new FirstSeenStore(full, new(StringComparer.Ordinal), null);
        }

        try
        {
            await using var stream = File.OpenRead(full);
            var model = await JsonSerializer.DeserializeAsync(stream, FileJson.Default.FileModel, ct).ConfigureAwait(false);
            var loaded = new Dictionary<string, Times>(StringComparer.Ordinal);
            foreach (var (id, times) in model?.Images ?? [])
            {
                if (times?.FirstSeen is { } firstSeen)
                {
                    loaded[ImageReference.NormalizeId(id)] = new Times(firstSeen, times.LastUsed);
                }
            }

            return new FirstSeenStore(full, loaded, null);
        }
        catch (Exception e) when (e is JsonException or IOException or UnauthorizedAccessException)
        {
            return new FirstSeenStore(full, new(StringComparer.Ordinal),
                $"image first-seen file {full} could not be read ({e.Message}); every image counts as first seen now");
        }
    }

    /// <summary>
    /// Records the images now on the engine (new ones as first seen at <paramref name="now"/>),
    /// forgets the ones that are gone, and returns the images with their
    /// <see cref="ImageInfo.FirstSeen"/> and <see cref="ImageInfo.LastUsed"/> filled in, ready for
    /// the planner.
    /// </summary>
    public IReadOnlyList<ImageInfo> Observe(IReadOnlyList<ImageInfo> current, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(current);
        lock (gate)
        {
            var present = new HashSet<string>(StringComparer.Ordinal);
            var result = new List<ImageInfo>(current.Count);
            foreach (var image in current)
            {
                var id = ImageReference.NormalizeId(image.Id);
                present.Add(id);
                if (!images.TryGetValue(id, out var times))
                {
                    images[id] = times = new Times(now, null);
                    changes++;
                }

                result.Add(image with { FirstSeen = times.FirstSeen, LastUsed = Latest(times.LastUsed, image.LastUsed) });
            }

            foreach (var id in images.Keys.Where(id => !present.Contains(id)).ToList())
            {
                images.Remove(id);
                changes++;
            }

            return result;
        }
    }

    /// <summary>Bumped on every change, so a caller can tell whether there is anything new to save.</summary>
    public long Changes => Interlocked.Read(ref changes);

    /// <summary>Records that the image arrived (pulled, tagged, imported) at <paramref name="when"/>, unless Skiff saw it before.</summary>
    public void MarkSeen(string imageId, DateTimeOffset when)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(imageId);
        var id = ImageReference.NormalizeId(imageId);
        lock (gate)
        {
            if (images.TryAdd(id, new Times(when, null)))
            {
                changes++;
            }
        }
    }

    /// <summary>Records that a container was created or started from the image; times only move forward.</summary>
    public void MarkUsed(string imageId, DateTimeOffset when)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(imageId);
        var id = ImageReference.NormalizeId(imageId);
        lock (gate)
        {
            images[id] = images.TryGetValue(id, out var times)
                ? times with { LastUsed = Latest(times.LastUsed, when) }
                : new Times(when, when);
            changes++;
        }
    }

    /// <summary>The recorded times of one image, or null when Skiff has not seen it.</summary>
    public (DateTimeOffset FirstSeen, DateTimeOffset? LastUsed)? Get(string imageId)
    {
        lock (gate)
        {
            return images.TryGetValue(ImageReference.NormalizeId(imageId), out var t) ? (t.FirstSeen, t.LastUsed) : null;
        }
    }

    /// <summary>Writes the file atomically, ids in ordinal order so the file diffs cleanly.</summary>
    public Task SaveAsync(CancellationToken ct)
    {
        byte[] bytes;
        lock (gate)
        {
            var model = new FileModel
            {
                Images = images.OrderBy(kv => kv.Key, StringComparer.Ordinal)
                    .ToDictionary(kv => kv.Key, kv => (TimesModel?)new TimesModel { FirstSeen = kv.Value.FirstSeen, LastUsed = kv.Value.LastUsed }),
            };
            bytes = JsonSerializer.SerializeToUtf8Bytes(model, FileJson.Default.FileModel);
        }

        AtomicFile.Write(Path, bytes);
        return Task.CompletedTask;
    }

    private static DateTimeOffset? Latest(DateTimeOffset? a, DateTimeOffset? b) =>
        a is null ? b : b is null ? a : a > b ? a : b;

    private sealed record Times(DateTimeOffset FirstSeen, DateTimeOffset? LastUsed);

    private sealed class FileModel
    {
        [JsonPropertyName("version")]
        public int Version { get; set; } = 1;

        [JsonPropertyName("images")]
        public Dictionary<string, TimesModel?>? Images { get; set; }
    }

    /// <summary>The file's JSON, generated at compile time.</summary>
    [JsonSourceGenerationOptions(WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
    [JsonSerializable(typeof(FileModel))]
    private sealed partial class FileJson : JsonSerializerContext
    {
    }

    private sealed class TimesModel
    {
        [JsonPropertyName("firstSeen")]
        public DateTimeOffset? FirstSeen { get; set; }

        [JsonPropertyName("lastUsed")]
        public DateTimeOffset? LastUsed { get; set; }
    }
}
