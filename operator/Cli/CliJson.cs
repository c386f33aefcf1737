using System.Text.Json.Serialization;

namespace Skiff.Cli;

/// <summary>One backup file in <c>skiff backups -o json</c>.</summary>
public sealed record BackupListEntry(
    [property: JsonPropertyName("time")] DateTimeOffset Time,
    [property: JsonPropertyName("file")] string File,
    [property: JsonPropertyName("bytes")] long Bytes);

/// <summary>The JSON the CLI prints of its own shapes, generated at compile time (a NativeAOT build has no reflection for it).</summary>
[JsonSourceGenerationOptions(WriteIndented = true)]
[JsonSerializable(typeof(List<BackupListEntry>))]
internal sealed partial class CliJson : JsonSerializerContext
{
}
