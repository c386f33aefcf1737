using System.Diagnostics;

namespace Skiff.Runtime;

/// <summary>The tracing source of the runtime; exporters subscribe to it by name.</summary>
public static class RuntimeTelemetry
{
    public const string ActivitySourceName = "Skiff";

    public static readonly ActivitySource ActivitySource = new(ActivitySourceName);
}
