using System.Text.Json;
using System.Text.Json.Serialization;

namespace Skiff.Proxy;

/// <summary>
/// The routes file's JSON and what <c>skiff status</c> shows of it, with metadata generated at compile time: the
/// proxy writes and fingerprints its routes on every change, and a NativeAOT build has no reflection to fall back
/// on for records with constructors.
/// </summary>
[JsonSerializable(typeof(ProxyRoutes))]
[JsonSerializable(typeof(List<ProxyListener>))]
[JsonSerializable(typeof(List<DomainState>))]
internal sealed partial class ProxyJsonContext : JsonSerializerContext
{
    /// <summary>The same metadata, indented: the routes file as people read it.</summary>
    public static ProxyJsonContext Indented { get; } = new(new JsonSerializerOptions { WriteIndented = true });
}
