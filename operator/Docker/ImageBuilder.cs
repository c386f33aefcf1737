using System.Net.Sockets;
using System.Text;
using Docker.DotNet;
using Docker.DotNet.Models;
using Skiff.Reconcile;

namespace Skiff.Docker;

/// <summary>
/// <see cref="IImageBuilder"/> on the engine's build API (<c>POST /build</c>, the classic builder, which every engine
/// from API 1.41 has): the context goes up as a tar, the output comes back line by line.
/// </summary>
/// <remarks>
/// # Caveats
/// The classic builder reports a failed step inside the stream (an <c>error</c> message), not as an HTTP error: the
/// build is failed when either says so. The image is never pulled: a built tag exists only on this node.
/// </remarks>
public sealed class ImageBuilder(DockerEngine engine) : IImageBuilder
{
    /// <summary>How many lines of a build's output a failure keeps (the tail the status shows).</summary>
    public const int LogLines = 40;

    public async Task<IReadOnlyList<string>> FindTaggedAsync(string repository, string key, string value, CancellationToken ct)
    {
        try
        {
            var images = await engine.Client.Images.ListImagesAsync(
                new ImagesListParameters
                {
                    Filters = new Dictionary<string, IDictionary<string, bool>>
                    {
                        ["label"] = new Dictionary<string, bool> { [$"{key}={value}"] = true },
                        ["reference"] = new Dictionary<string, bool> { [repository] = true },
                    },
                },
                ct);
            return [.. images
                .OrderByDescending(i => i.Created)
                .SelectMany(i => i.RepoTags ?? [])
                .Where(t => t.StartsWith(repository + ":", StringComparison.Ordinal))];
        }
        catch (Exception e) when (IsTransport(e))
        {
            throw new EngineUnreachableException(engine.Endpoint, e);
        }
    }

    public async Task BuildAsync(ImageBuildRequest request, Stream context, Action<string> progress, CancellationToken ct)
    {
        var log = new Queue<string>();
        string? error = null;
        var lines = new LineSplitter(line =>
        {
            log.Enqueue(line);
            if (log.Count > LogLines)
            {
                log.Dequeue();
            }

            progress(line);
        });
        var parameters = new ImageBuildParameters
        {
            Tags = [request.Tag],
            Dockerfile = request.Dockerfile,
            BuildArgs = request.Args.ToDictionary(),
            Labels = request.Labels.ToDictionary(),
            // Intermediate containers go, also after a failed step: a build leaves only its image and its cache.
            Remove = true,
            ForceRemove = true,
        };
        try
        {
            await engine.Client.Images.BuildImageFromDockerfileAsync(
                parameters,
                context,
                authConfigs: null,
                headers: null,
                new Progress(message =>
                {
                    if (message.Stream is { Length: > 0 } text)
                    {
                        lines.Add(text);
                    }
                    else if (message.Status is { Length: > 0 } status)
                    {
                        lines.Add(status + "\n");
                    }

                    if (message.Error?.Message is { Length: > 0 } failed)
                    {
                        error = failed;
                    }
                }),
                ct);
        }
        catch (DockerApiException e) when (!DockerEngine.GoingAway(e))
        {
            lines.Flush();
            throw new ImageBuildException($"the engine refused the build: {EngineMessage(e)}", string.Join("\n", log));
        }
        catch (Exception e) when (e is not OperationCanceledException && e is not ImageBuildException && IsTransport(e))
        {
            throw new EngineUnreachableException(engine.Endpoint, e);
        }

        lines.Flush();
        if (error is not null)
        {
            throw new ImageBuildException(error.Trim(), string.Join("\n", log));
        }
    }

    private static string EngineMessage(DockerApiException e)
    {
        var body = e.ResponseBody ?? "";
        try
        {
            using var json = System.Text.Json.JsonDocument.Parse(body);
            if (json.RootElement.TryGetProperty("message", out var message) && message.GetString() is { } text)
            {
                return text;
            }
        }
        catch (System.Text.Json.JsonException)
        {
            // Not JSON: the body as it is.
        }

        return body.Trim();
    }

    private static bool IsTransport(Exception e) =>
        e is HttpRequestException or SocketException or IOException or TimeoutException or DockerApiException { StatusCode: >= System.Net.HttpStatusCode.InternalServerError }
        || (e.InnerException is { } inner && IsTransport(inner));

    /// <summary>Called on the stream's own thread, in order (Progress&lt;T&gt; would post to the thread pool and reorder lines).</summary>
    private sealed class Progress(Action<JSONMessage> report) : IProgress<JSONMessage>
    {
        public void Report(JSONMessage value) => report(value);
    }

    /// <summary>The build's output arrives in chunks that need not end at a line: whole lines out, blank ones dropped.</summary>
    private sealed class LineSplitter(Action<string> line)
    {
        private readonly StringBuilder pending = new();

        public void Add(string text)
        {
            pending.Append(text);
            var all = pending.ToString();
            var end = all.LastIndexOf('\n');
            if (end < 0)
            {
                return;
            }

            foreach (var l in all[..end].Split('\n'))
            {
                Emit(l);
            }

            pending.Clear().Append(all[(end + 1)..]);
        }

        public void Flush()
        {
            Emit(pending.ToString());
            pending.Clear();
        }

        private void Emit(string text)
        {
            var trimmed = text.TrimEnd('\r', ' ');
            if (trimmed.Length > 0)
            {
                line(trimmed);
            }
        }
    }
}
