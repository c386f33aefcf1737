namespace Skiff.Cli;

/// <summary>How log lines are written.</summary>
public enum LogFormat
{
    /// <summary>JSON inside a pod (KUBERNETES_SERVICE_HOST is set), console text elsewhere.</summary>
    Auto,

    /// <summary>Human-readable lines.</summary>
    Console,

    /// <summary>One compact JSON object per line (Serilog's CLEF).</summary>
    Json,
}
