using System.Text.Json.Serialization;
using k8s;
using k8s.Models;

namespace Skiff.Api;

/// <summary>
/// A custom resource with a spec and a status. KubernetesClient ships typed models only for the
/// built-in kinds, so Skiff's resources derive from this small base of its own.
/// </summary>
public abstract class CustomResource<TSpec, TStatus> : IKubernetesObject<V1ObjectMeta>, IMetadata<V1ObjectMeta>
    where TSpec : new()
{
    [JsonPropertyName("apiVersion")]
    public string ApiVersion { get; set; } = SkiffApi.ApiVersion;

    [JsonPropertyName("kind")]
    public string Kind { get; set; } = "";

    [JsonPropertyName("metadata")]
    public V1ObjectMeta Metadata { get; set; } = new();

    [JsonPropertyName("spec")]
    public TSpec Spec { get; set; } = new();

    [JsonPropertyName("status")]
    public TStatus? Status { get; set; }
}

/// <summary>Names shared by every Skiff resource.</summary>
public static class SkiffApi
{
    public const string Group = "skiff.dev";
    public const string Version = "v1alpha1";
    public const string ApiVersion = Group + "/" + Version;

    /// <summary>The finalizer that makes deletion wait for the stack's cleanup.</summary>
    public const string Finalizer = "skiff.dev/cleanup";
}
