using System.Collections;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using Skiff.Api;
using Skiff.State;

namespace Skiff.Tests.State;

/// <summary>
/// The API and state types' JSON metadata is generated at compile time (ApiJson, StateJsonContext); reflection wrote
/// it before. A stack's spec hash and the state folder's files must not change with that: every property of every
/// type, filled in, is written to the same bytes both ways.
/// </summary>
public class GeneratedJsonTests
{
    private static readonly JsonSerializerOptions ReflectionIndented = new()
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        TypeInfoResolver = new DefaultJsonTypeInfoResolver(),
    };

    private static readonly JsonSerializerOptions Reflection = new() { TypeInfoResolver = new DefaultJsonTypeInfoResolver() };

    [Fact]
    public void A_state_record_with_every_field_set_is_written_as_reflection_writes_it()
    {
        var record = Fill<StatusRecord>();
        Assert.NotNull(record.Spec?.App.Migrate);
        Assert.NotEmpty(record.Status!.Conditions!);

        var generated = System.Text.Encoding.UTF8.GetString(StateStore.Serialize(record));
        Assert.Equal(JsonSerializer.Serialize(record, ReflectionIndented), generated);
        Assert.Equal(generated, System.Text.Encoding.UTF8.GetString(StateStore.Serialize(JsonSerializer.Deserialize<StatusRecord>(generated, StateStore.Json)!)));
    }

    [Fact]
    public void A_spec_and_a_status_with_every_field_set_are_copied_and_written_as_reflection_does()
    {
        var spec = Fill<AppDeploymentSpec>();
        Assert.Equal(JsonSerializer.Serialize(spec, Reflection), JsonSerializer.Serialize(spec, ApiJson.Options));
        Assert.Equal(JsonSerializer.Serialize(spec, Reflection), JsonSerializer.Serialize(ApiJson.Clone(spec), Reflection));

        var status = Fill<AppDeploymentStatus>();
        Assert.Equal(JsonSerializer.Serialize(status, Reflection), JsonSerializer.Serialize(ApiJson.Clone(status), ApiJson.Options));
    }

    /// <summary>An instance with every settable property given a non-default value, lists with one element.</summary>
    private static T Fill<T>() => (T)Fill(typeof(T), depth: 0)!;

    private static object? Fill(Type type, int depth)
    {
        var underlying = Nullable.GetUnderlyingType(type) ?? type;
        if (underlying == typeof(string))
        {
            return "s" + depth;
        }

        if (underlying == typeof(int) || underlying == typeof(long))
        {
            return Convert.ChangeType(depth + 7, underlying, System.Globalization.CultureInfo.InvariantCulture);
        }

        if (underlying == typeof(bool))
        {
            return true;
        }

        if (underlying == typeof(DateTimeOffset))
        {
            return new DateTimeOffset(2026, 12, 5, 7, 30, 15, 123, TimeSpan.Zero);
        }

        if (underlying == typeof(IntOrString))
        {
            return (IntOrString)"http";
        }

        if (underlying.IsGenericType && underlying.GetGenericTypeDefinition() is var definition
            && (definition == typeof(List<>) || definition == typeof(IList<>) || definition == typeof(IReadOnlyList<>)))
        {
            var element = underlying.GetGenericArguments()[0];
            var list = (IList)Activator.CreateInstance(typeof(List<>).MakeGenericType(element))!;
            list.Add(Fill(element, depth + 1));
            return list;
        }

        if (underlying.IsGenericType && underlying.GetGenericTypeDefinition() == typeof(Dictionary<,>))
        {
            var dictionary = (IDictionary)Activator.CreateInstance(underlying)!;
            dictionary.Add("k" + depth, Fill(underlying.GetGenericArguments()[1], depth + 1));
            return dictionary;
        }

        if (underlying.IsClass && underlying.GetConstructor(Type.EmptyTypes) is not null && depth < 6)
        {
            var instance = Activator.CreateInstance(underlying)!;
            foreach (var property in underlying.GetProperties(BindingFlags.Public | BindingFlags.Instance))
            {
                if (property.CanWrite && property.GetIndexParameters().Length == 0 && property.GetCustomAttribute<JsonIgnoreAttribute>() is null)
                {
                    var value = Fill(property.PropertyType, depth + 1);
                    if (value is not null)
                    {
                        property.SetValue(instance, value);
                    }
                }
            }

            return instance;
        }

        return null;
    }
}
