using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;

namespace Skiff.Api;

/// <summary>
/// JSON for the API types Skiff copies and hashes on every reconcile: metadata generated at compile time
/// (<see cref="ApiJsonContext"/>), so a process does not build it by reflection and compile an accessor per
/// property at run time, and a NativeAOT build needs no code it could not compile ahead of time.
/// </summary>
/// <remarks>
/// The generated metadata follows the same attributes as reflection does (every API property names its JSON
/// field), so what is written is the same bytes: the spec hash's golden test pins it. There is no reflection
/// fallback: a type missing from the context fails in the tests, not in a NativeAOT process.
/// </remarks>
public static class ApiJson
{
    /// <summary>The generated metadata, and nothing else.</summary>
    public static IJsonTypeInfoResolver Resolver => ApiJsonContext.Default;

    /// <summary>The default settings with <see cref="Resolver"/>: for copies (serialize, then deserialize).</summary>
    public static JsonSerializerOptions Options { get; } = new() { TypeInfoResolver = Resolver };

    /// <summary>A deep copy through JSON.</summary>
    public static T Clone<T>(T value)
    {
        var info = Options.Info<T>();
        return JsonSerializer.Deserialize(JsonSerializer.SerializeToUtf8Bytes(value, info), info)!;
    }

    /// <summary>
    /// The metadata of <typeparamref name="T"/> in <paramref name="options"/>: with it, a serializer call states the
    /// type it needs, and a NativeAOT build can see that nothing is left to reflection.
    /// </summary>
    /// <exception cref="NotSupportedException">The options' resolver has no metadata for the type.</exception>
    public static JsonTypeInfo<T> Info<T>(this JsonSerializerOptions options) => (JsonTypeInfo<T>)options.GetTypeInfo(typeof(T));
}

/// <summary>
/// The API types whose JSON metadata is generated at compile time (<see cref="ApiJson"/>); the whole resources too,
/// which KubernetesClient decodes from the API server with it (<c>Skiff.Sources.Kubernetes.KubeJson</c>).
/// </summary>
[JsonSerializable(typeof(AppDeployment))]
[JsonSerializable(typeof(ImageGCPolicy))]
[JsonSerializable(typeof(AppDeploymentSpec))]
[JsonSerializable(typeof(AppDeploymentStatus))]
[JsonSerializable(typeof(ImageGCPolicySpec))]
[JsonSerializable(typeof(ImageGCPolicyStatus))]
internal sealed partial class ApiJsonContext : JsonSerializerContext
{
}
