using System.Text.Json.Serialization;
using k8s;
using Skiff.Api;
using Skiff.Runtime;

namespace Skiff.Sources.Kubernetes;

/// <summary>
/// KubernetesClient decodes every response with one process-wide set of options (<see cref="KubernetesJson"/>): its
/// own models from metadata generated at compile time, any other type by reflection. Skiff's resources get theirs
/// from <see cref="ApiJsonContext"/> instead, registered once when the process starts, before the client's first
/// request: reflection would build the same metadata at run time, and a NativeAOT build cannot (it would need code
/// over value types it never compiled).
/// </summary>
public static class KubeJson
{
    private static int registered;

    /// <summary>Puts Skiff's generated metadata first in KubernetesClient's options; a second call does nothing.</summary>
    /// <returns>False when the options were in use already (they cannot change then): reflection stays the fallback.</returns>
    public static bool Register()
    {
        if (Interlocked.Exchange(ref registered, 1) == 1)
        {
            return true;
        }

        try
        {
            KubernetesJson.AddJsonOptions(o =>
            {
                o.TypeInfoResolverChain.Insert(0, ApiJsonContext.Default);
                o.TypeInfoResolverChain.Insert(1, ResourceListJson.Default);

                // KubernetesClient adds the non-generic JsonStringEnumConverter for every enum. Options' converters
                // win over an enum's own [JsonConverter], and that one builds its converter with MakeGenericType,
                // which a NativeAOT build cannot do for an enum: every watch event (WatchEventType) failed to decode.
                // The enums Skiff meets carry their own generic converter (WatchEventType, Skiff's API enums).
                foreach (var converter in o.Converters.Where(c => c.GetType() == typeof(JsonStringEnumConverter)).ToList())
                {
                    o.Converters.Remove(converter);
                }
            });
            return true;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }
}

/// <summary>
/// What KubernetesClient decodes for Skiff beyond its own models, generated at compile time: the list envelopes of
/// Skiff's resources, and the watch events of the untyped (custom resource) and typed watches Skiff runs.
/// </summary>
[JsonSerializable(typeof(ResourceList<AppDeployment>))]
[JsonSerializable(typeof(ResourceList<ImageGCPolicy>))]
[JsonSerializable(typeof(Watcher<object>.WatchEvent))]
[JsonSerializable(typeof(Watcher<KubernetesObject>.WatchEvent))]
[JsonSerializable(typeof(Watcher<k8s.Models.V1Status>.WatchEvent))]
[JsonSerializable(typeof(Watcher<k8s.Models.V1Secret>.WatchEvent))]
internal sealed partial class ResourceListJson : JsonSerializerContext
{
}

/// <summary>The untyped answers of KubernetesClient's CustomObjects API.</summary>
public static class KubernetesResponses
{
    /// <summary>
    /// The answer as JSON: KubernetesClient decodes an untyped body to a <see cref="System.Text.Json.JsonElement"/>;
    /// anything else is written back with the client's own options.
    /// </summary>
    public static System.Text.Json.JsonElement Element(object response)
    {
        if (response is System.Text.Json.JsonElement element)
        {
            return element;
        }

        using var document = System.Text.Json.JsonDocument.Parse(KubernetesJson.Serialize(response));
        return document.RootElement.Clone();
    }
}
