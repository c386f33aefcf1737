namespace Skiff.Reconcile;

/// <summary>
/// What reconciliation needs from a node's container engine, in Skiff's own models. <c>Docker/</c> implements it
/// with Docker.DotNet; the tests of the rollout use an in-memory engine.
/// </summary>
/// <remarks>
/// # Guarantees expected of an implementation
/// - Transport failures (the engine down, going away) throw <see cref="EngineUnreachableException"/>; the engine
///   saying no throws something else, so callers can tell "retry later" from "this request is wrong".
/// - Removing or stopping what does not exist is not an error (a crashed reconcile may repeat an action).
/// - No call waits for a container to change state: one call, one answer.
/// </remarks>
public interface IContainerEngine
{
    /// <summary>Where the engine is, for messages.</summary>
    string Endpoint { get; }

    /// <summary>Engine and API version; the cheapest reachability check.</summary>
    Task<(string Version, string ApiVersion)> VersionAsync(CancellationToken ct);

    /// <summary>Every container (running or not) carrying all the given labels, inspected.</summary>
    Task<IReadOnlyList<ObservedContainer>> ListContainersAsync(IReadOnlyDictionary<string, string> labels, CancellationToken ct);

    /// <summary>The labels of every container carrying the given labels: one call, no inspect per container.</summary>
    Task<IReadOnlyList<IReadOnlyDictionary<string, string>>> ListContainerLabelsAsync(IReadOnlyDictionary<string, string> labels, CancellationToken ct);

    Task<ObservedContainer?> InspectContainerAsync(string idOrName, CancellationToken ct);

    /// <summary>Creates a container (not started); returns its id.</summary>
    Task<string> CreateContainerAsync(ContainerSpec spec, CancellationToken ct);

    Task StartContainerAsync(string id, CancellationToken ct);

    /// <summary>Stops a container, killing it after <paramref name="timeout"/>.</summary>
    Task StopContainerAsync(string id, TimeSpan timeout, CancellationToken ct);

    /// <summary>Removes a container (with force) and its anonymous volumes.</summary>
    Task RemoveContainerAsync(string id, CancellationToken ct);

    /// <summary>Gives a container another name (the node proxy takes back <c>skiff_proxy</c> after an upgrade).</summary>
    Task RenameContainerAsync(string id, string name, CancellationToken ct);

    /// <summary>The last lines of a container's output (stdout and stderr).</summary>
    Task<string> LogsAsync(string id, int tail, CancellationToken ct);

    /// <summary>One small file from a container's filesystem (its volumes included); null when absent.</summary>
    Task<string?> ReadFileAsync(string id, string path, CancellationToken ct);

    /// <summary>
    /// Runs a command inside a running container and waits for it (the one call that waits: backups verify a dump this
    /// way); its exit code and output, stdout and stderr apart.
    /// </summary>
    Task<ExecResult> ExecAsync(string id, IReadOnlyList<string> command, CancellationToken ct);

    /// <summary>The labels of the network named exactly <paramref name="name"/>, or null when there is none.</summary>
    Task<IReadOnlyDictionary<string, string>?> InspectNetworkAsync(string name, CancellationToken ct);

    /// <summary>
    /// Creates a bridge network on a subnet of the node's network pool; one that exists already is what was wanted.
    /// Throws <see cref="NetworkPoolExhaustedException"/> when the pool has no subnet left.
    /// </summary>
    Task CreateNetworkAsync(string name, IReadOnlyDictionary<string, string> labels, CancellationToken ct);

    Task RemoveNetworkAsync(string name, CancellationToken ct);

    /// <summary>The networks carrying all the given labels.</summary>
    Task<IReadOnlyList<(string Name, IReadOnlyDictionary<string, string> Labels)>> ListNetworksAsync(IReadOnlyDictionary<string, string> labels, CancellationToken ct);

    /// <summary>The volume's labels, or null when it does not exist.</summary>
    Task<IReadOnlyDictionary<string, string>?> InspectVolumeAsync(string name, CancellationToken ct);

    /// <summary>The volumes carrying all the given labels, with their labels.</summary>
    Task<IReadOnlyList<(string Name, IReadOnlyDictionary<string, string> Labels)>> ListVolumesAsync(IReadOnlyDictionary<string, string> labels, CancellationToken ct);

    Task CreateVolumeAsync(string name, IReadOnlyDictionary<string, string> labels, CancellationToken ct);

    Task RemoveVolumeAsync(string name, CancellationToken ct);

    /// <summary>An image by reference or id, or null when the engine does not have it.</summary>
    Task<ObservedImage?> InspectImageAsync(string reference, CancellationToken ct);

    /// <summary>
    /// Pulls an image; a failure is an <see cref="ImageUnavailableException"/> that says whether the image does not exist.
    /// Returns the bytes downloaded.
    /// </summary>
    Task<long> PullImageAsync(string reference, RegistryAuth? auth, IProgress<PullProgress>? progress, CancellationToken ct);
}

/// <summary>What every engine answers the same way from its other calls.</summary>
public static class ContainerEngineExtensions
{
    /// <summary>Whether a network named exactly <paramref name="name"/> exists.</summary>
    public static async Task<bool> NetworkExistsAsync(this IContainerEngine engine, string name, CancellationToken ct) =>
        await engine.InspectNetworkAsync(name, ct) is not null;
}

/// <summary>The operator's HTTP health check of an app container, over the stack's network.</summary>
public interface IAppProbe
{
    /// <summary>One GET; true for 2xx and 3xx.</summary>
    Task<bool> ProbeAsync(ObservedContainer container, int port, string path, CancellationToken ct);
}

/// <summary>What a command run inside a container answered.</summary>
public sealed record ExecResult(long ExitCode, string Stdout, string Stderr);
