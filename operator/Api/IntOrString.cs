using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Skiff.Api;

/// <summary>
/// A value that is either a number or a name, like Kubernetes' <c>intstr.IntOrString</c>
/// (a health check's port is a port number or the name of one of the app's ports).
/// </summary>
[JsonConverter(typeof(IntOrStringConverter))]
public readonly record struct IntOrString
{
    public IntOrString(int value)
    {
        IntValue = value;
        StringValue = null;
    }

    public IntOrString(string value)
    {
        IntValue = null;
        StringValue = value;
    }

    public int? IntValue { get; }

    public string? StringValue { get; }

    public bool IsInt => IntValue.HasValue;

    public static implicit operator IntOrString(int value) => new(value);

    public static implicit operator IntOrString(string value) => new(value);

    public override string ToString() =>
        IntValue?.ToString(CultureInfo.InvariantCulture) ?? StringValue ?? "";
}

internal sealed class IntOrStringConverter : JsonConverter<IntOrString>
{
    public override IntOrString Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        reader.TokenType switch
        {
            JsonTokenType.Number when reader.TryGetInt32(out var i) => new IntOrString(i),
            JsonTokenType.String => new IntOrString(reader.GetString()!),
            _ => throw new JsonException("must be a port number or a port name"),
        };

    public override void Write(Utf8JsonWriter writer, IntOrString value, JsonSerializerOptions options)
    {
        if (value.IntValue is { } i)
        {
            writer.WriteNumberValue(i);
        }
        else
        {
            writer.WriteStringValue(value.StringValue);
        }
    }
}
