using System.Text.Json.Serialization;

namespace Skiff.State;

/// <summary>
/// The state folder's records, whose JSON metadata is generated at compile time (<see cref="StateStore.Json"/>):
/// a restart reads and writes one status record per stack, and reflection would build the same metadata and
/// compile an accessor per property first. No reflection fallback: a type missing here fails in the tests, not in a
/// NativeAOT process.
/// </summary>
[JsonSerializable(typeof(StatusRecord))]
[JsonSerializable(typeof(List<StatusRecord>))]
[JsonSerializable(typeof(List<StoredEvent>))]
[JsonSerializable(typeof(IReadOnlyList<StoredEvent>))]
[JsonSerializable(typeof(RolloutRequest))]
[JsonSerializable(typeof(Dictionary<string, string>))]
internal sealed partial class StateJsonContext : JsonSerializerContext
{
}
