namespace Skiff.Api;

// Attributes that carry what the CRD generator cannot learn from the CLR type alone.
// They are read by Crds/CrdGenerator and by Validation, so the schema and the operator's own
// checks stay in one place.

/// <summary>The value the API server fills in when the field is absent.</summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class SchemaDefaultAttribute(object value) : Attribute
{
    public object Value { get; } = value;
}

/// <summary>The allowed values of a string field.</summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class SchemaEnumAttribute(params string[] values) : Attribute
{
    public IReadOnlyList<string> Values { get; } = values;
}

/// <summary>Inclusive numeric bounds.</summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class SchemaRangeAttribute(long minimum, long maximum) : Attribute
{
    public long Minimum { get; } = minimum;
    public long Maximum { get; } = maximum;
}

/// <summary>The most items a list may hold (the API server needs a bound to cost CEL rules).</summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class SchemaMaxItemsAttribute(int maxItems) : Attribute
{
    public int MaxItems { get; } = maxItems;
}

/// <summary>The fewest items a list must hold.</summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class SchemaMinItemsAttribute(int minItems) : Attribute
{
    public int MinItems { get; } = minItems;
}

/// <summary>
/// A regular expression a string must match. <see cref="Description"/> says what it means in words,
/// so a validation error can name the fix instead of quoting the regex.
/// </summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class SchemaPatternAttribute(string pattern, string description) : Attribute
{
    public string Pattern { get; } = pattern;
    public string Description { get; } = description;
}

/// <summary>The longest a string may be.</summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class SchemaMaxLengthAttribute(int maxLength) : Attribute
{
    public int MaxLength { get; } = maxLength;
}

/// <summary>A field required by the schema.</summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class SchemaRequiredAttribute : Attribute;

/// <summary>The field holds a quantity such as <c>512Mi</c> or <c>500m</c>.</summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class QuantityAttribute : Attribute;

/// <summary>The field holds a Go-style duration such as <c>30s</c>, <c>10m</c>, <c>1h</c>.</summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class DurationAttribute : Attribute;

/// <summary>The list is a map keyed by the given fields (<c>x-kubernetes-list-type: map</c>).</summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class ListMapAttribute(params string[] keys) : Attribute
{
    public IReadOnlyList<string> Keys { get; } = keys;
}

/// <summary>A CEL rule on the object that declares it (<c>x-kubernetes-validations</c>).</summary>
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Property, AllowMultiple = true)]
public sealed class CelRuleAttribute(string rule, string message) : Attribute
{
    public string Rule { get; } = rule;
    public string Message { get; } = message;

    /// <summary>Optional field path the error is reported against, e.g. <c>.node</c>.</summary>
    public string? FieldPath { get; init; }

    /// <summary>Optional machine-readable reason (FieldValueInvalid, FieldValueForbidden, ...).</summary>
    public string? Reason { get; init; }

    /// <summary>
    /// The name of the rule's C# twin in <c>Validation.ResourceValidator</c> (CEL cannot run on the
    /// operator's hosts, so every rule is mirrored there; a test checks each rule has a twin).
    /// </summary>
    public string? Twin { get; init; }
}

/// <summary>The list holds unique scalars (<c>x-kubernetes-list-type: set</c>).</summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class ListSetAttribute : Attribute;

/// <summary>The longest each string item of a list may be.</summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class SchemaItemsMaxLengthAttribute(int maxLength) : Attribute
{
    public int MaxLength { get; } = maxLength;
}
