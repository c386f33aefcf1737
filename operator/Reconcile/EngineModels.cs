namespace Skiff.Reconcile;

/// <summary>A container as the engine shows it, with the fields reconciliation needs.</summary>
public sealed record ObservedContainer(
    string Id,
    string Name,
    string Image,
    string ImageId,
    IReadOnlyDictionary<string, string> Labels,
    string State,
    string? Health,
    long ExitCode,
    long RestartCount,
    DateTimeOffset Created,
    DateTimeOffset? StartedAt,
    IReadOnlyDictionary<string, string> NetworkIps)
{
    public bool Running => State is "running" or "restarting";

    /// <summary>The kernel killed it for exceeding its memory limit.</summary>
    public bool OomKilled { get; init; }

    /// <summary>
    /// Ended by SIGTERM or SIGKILL (exit 143 or 137) that was not the memory limit: something outside stopped it,
    /// typically the engine shutting down or the host rebooting, not the program failing.
    /// </summary>
    public bool StoppedFromOutside => State is "exited" or "dead" && !OomKilled && ExitCode is 137 or 143;

    /// <summary>Which run this is of a one-off container that Skiff re-creates after an interruption (1 when not labelled).</summary>
    public int Attempt => int.TryParse(Label(SkiffLabels.Attempt), out var a) && a > 0 ? a : 1;

    public string? Label(string key) => Labels.TryGetValue(key, out var v) ? v : null;

    public long? Revision => long.TryParse(Label(SkiffLabels.Revision), out var r) ? r : null;

    public string? Component => Label(SkiffLabels.Component);

    public string? SpecHash => Label(SkiffLabels.SpecHash);
}

/// <summary>An image as the engine shows it.</summary>
public sealed record ObservedImage(string Id, IReadOnlyList<string> RepoTags, IReadOnlyList<string> RepoDigests, long Size, DateTimeOffset Created, IReadOnlyList<string> Env);

/// <summary>What a container should look like; built by the pure planner, created by the executor.</summary>
public sealed record ContainerSpec
{
    public required string Name { get; init; }

    public required string Image { get; init; }

    public IReadOnlyList<string>? Entrypoint { get; init; }

    public IReadOnlyList<string>? Cmd { get; init; }

    public IReadOnlyList<string> Env { get; init; } = [];

    public IReadOnlyDictionary<string, string> Labels { get; init; } = new Dictionary<string, string>();

    public IReadOnlyList<PortBinding> Ports { get; init; } = [];

    public HealthProbe? Healthcheck { get; init; }

    public string? StopSignal { get; init; }

    public TimeSpan? StopTimeout { get; init; }

    public long? MemoryBytes { get; init; }

    public long? NanoCpus { get; init; }

    public IReadOnlyList<VolumeMount> Mounts { get; init; } = [];

    public required string Network { get; init; }

    public IReadOnlyList<string> NetworkAliases { get; init; } = [];

    /// <summary>Restart policy; one-off containers (migrations) use "no".</summary>
    public string RestartPolicy { get; init; } = "unless-stopped";
}

/// <summary>A published port.</summary>
public sealed record PortBinding(int ContainerPort, int? HostPort, string? HostIp);

/// <summary>A named volume mounted into a container, or with <paramref name="Bind"/> a host folder (<paramref name="Volume"/> is then its path).</summary>
public sealed record VolumeMount(string Volume, string Target, bool Bind = false, bool ReadOnly = false);

/// <summary>A Docker HEALTHCHECK.</summary>
public sealed record HealthProbe(IReadOnlyList<string> Test, TimeSpan Interval, TimeSpan Timeout, int Retries, TimeSpan StartPeriod);

/// <summary>Thrown when the Docker engine cannot be reached at all (as opposed to an API error).</summary>
public sealed class EngineUnreachableException(string endpoint, Exception inner)
    : Exception($"Docker engine unreachable at {endpoint}: {inner.Message}", inner)
{
    public string Endpoint { get; } = endpoint;
}

/// <summary>
/// Thrown when an existing container cannot be started because the engine's container runtime still holds a task of
/// the same id from before the engine restarted (Docker: "task ID: already exists"), after the engine was given a
/// few seconds to clear it. The container itself is unusable then; a new one of the same spec starts.
/// </summary>
public sealed class ContainerStartStuckException(string containerId, Exception inner)
    : Exception($"container {containerId[..Math.Min(12, containerId.Length)]} cannot start: the container runtime still holds its task from before the engine restarted ({inner.Message})", inner)
{
    public string ContainerId { get; } = containerId;
}

/// <summary>
/// Thrown when a stack network cannot get a subnet: every subnet of the operator's network pool (<c>--network-pool</c>,
/// <c>--network-prefix</c>) is used by a Docker network or by the host. The message says how many and what to change.
/// </summary>
public sealed class NetworkPoolExhaustedException(string message) : Exception(message);

/// <summary>Thrown when an image cannot be found locally or pulled.</summary>
/// <param name="image">The reference that was pulled.</param>
/// <param name="message">What went wrong, with the registry's own answer.</param>
/// <param name="notFound">
/// The registry (or the engine) says the image does not exist, as opposed to a pull that was refused
/// (credentials), failed (network, registry error) or timed out.
/// </param>
public sealed class ImageUnavailableException(string image, string message, bool notFound) : Exception(message)
{
    public string Image { get; } = image;

    public bool NotFound { get; } = notFound;

    /// <summary>
    /// Whether a registry's error text says the image does not exist. Docker Hub answers a missing repository
    /// and a private one without credentials alike ("repository does not exist or may require 'docker login'"):
    /// that counts as not found, and the caller adds the credentials hint.
    /// </summary>
    public static bool SaysNotFound(string message)
    {
        string[] phrases = ["manifest unknown", "not found", "repository does not exist", "name unknown", "no such image"];
        return phrases.Any(p => message.Contains(p, StringComparison.OrdinalIgnoreCase));
    }
}

/// <summary>How far a pull has come: bytes downloaded of the layers seen so far, like <c>docker pull</c> shows.</summary>
/// <param name="Image">The reference being pulled.</param>
/// <param name="Done">Bytes downloaded.</param>
/// <param name="Total">Bytes to download, of the layers whose size is known yet (it grows as layers start).</param>
/// <param name="Layers">Layers seen.</param>
/// <param name="LayersDone">Layers downloaded or already present.</param>
public sealed record PullProgress(string Image, long Done, long Total, int Layers, int LayersDone);

/// <summary>Registry credentials for a pull.</summary>
public sealed record RegistryAuth(string? Username, string? Password, string? Auth, string? ServerAddress, string? IdentityToken);

/// <summary>
/// An <see cref="IProgress{T}"/> that reports on the caller's thread. <see cref="Progress{T}"/> posts to the thread
/// pool, so its reports could arrive out of order, or after the operation they describe has returned.
/// </summary>
public sealed class InlineProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
