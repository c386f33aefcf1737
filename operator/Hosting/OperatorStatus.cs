using System.Text.Json;
using System.Text.Json.Serialization;
using Skiff.Api;
using Skiff.ImageGC;
using Skiff.Sources.Git;
using Skiff.State;

namespace Skiff.Hosting;

/// <summary><c>GET /status</c> of <c>skiff run</c> on a folder or a Git repository.</summary>
/// <param name="Source">The folder, or the Git remote and commit being served.</param>
/// <param name="Node">The node this operator runs.</param>
/// <param name="Resources">Every AppDeployment's status record.</param>
/// <param name="Problems">The folder's documents that could not be used, and why.</param>
/// <param name="ImageGc">The last image GC pass, once one ran.</param>
public sealed record FolderOperatorStatus(
    string Source,
    string Node,
    IReadOnlyList<StatusRecord> Resources,
    IReadOnlyList<string> Problems,
    GcNodeReport? ImageGc)
{
    /// <summary>The Git source's fetches (absent for a folder).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public GitSourceStatus? Git { get; init; }
}

/// <summary><c>GET /status</c> of <c>skiff run --source kubernetes</c>.</summary>
/// <param name="Node">The node this operator runs.</param>
/// <param name="Resources">The AppDeployments of this node.</param>
/// <param name="ImageGc">The last image GC pass, once one ran.</param>
public sealed record ClusterOperatorStatus(string Node, IReadOnlyList<ClusterResourceStatus> Resources, GcNodeReport? ImageGc);

/// <summary>One AppDeployment in <see cref="ClusterOperatorStatus"/>.</summary>
public sealed record ClusterResourceStatus(string? Namespace, string? Name, AppDeploymentStatus? Status);

/// <summary>
/// The JSON of <c>/status</c> (web defaults: camelCase names), generated at compile time so that a NativeAOT build
/// serves it without reflection.
/// </summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, WriteIndented = true)]
[JsonSerializable(typeof(FolderOperatorStatus))]
[JsonSerializable(typeof(ClusterOperatorStatus))]
internal sealed partial class OperatorStatusJson : JsonSerializerContext
{
}
