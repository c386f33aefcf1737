using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using k8s;
using k8s.Models;

namespace Skiff.TestApiServer.Tests;

/// <summary>A loosely typed AppDeployment for KubernetesClient calls (the operator's own types live elsewhere).</summary>
public sealed class AppDep : IKubernetesObject<V1ObjectMeta>
{
    [JsonPropertyName("apiVersion")]
    public string ApiVersion { get; set; } = "skiff.dev/v1alpha1";

    [JsonPropertyName("kind")]
    public string Kind { get; set; } = "AppDeployment";

    [JsonPropertyName("metadata")]
    public V1ObjectMeta Metadata { get; set; } = new();

    [JsonPropertyName("spec")]
    public JsonObject? Spec { get; set; }

    [JsonPropertyName("status")]
    public JsonObject? Status { get; set; }

    public static AppDep New(string name, string image = "shop:1") => new()
    {
        Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = "default" },
        Spec = new JsonObject { ["node"] = "vps-1", ["app"] = new JsonObject { ["image"] = image } },
    };
}

public static class Crd
{
    public const string Group = "skiff.dev";
    public const string Version = "v1alpha1";
    public const string Plural = "appdeployments";
}
