using System.Diagnostics;
using System.Runtime;

namespace Skiff.Observability;

/// <summary>
/// Start-up phases on stderr when <c>SKIFF_STARTUP_TRACE=1</c> (bench/startup/phases.sh): one line per phase with the
/// milliseconds since the process was spawned (<c>SKIFF_STARTUP_T0</c>, Unix time in ns taken by the spawner, else the
/// kernel's start time, 10 ms steps), the methods the JIT compiled so far and its time, and the assemblies loaded.
/// Off, a mark costs one static bool test.
/// </summary>
internal static class StartupTrace
{
    public static readonly bool Enabled = Environment.GetEnvironmentVariable("SKIFF_STARTUP_TRACE") == "1";

    private static readonly DateTime Spawned = Enabled ? SpawnTime() : default;
    private static int readyMarked;

    /// <summary>Writes one phase line (when enabled).</summary>
    public static void Mark(string phase)
    {
        if (!Enabled)
        {
            return;
        }

        var ms = (DateTime.UtcNow - Spawned).TotalMilliseconds;
        Console.Error.WriteLine(FormattableString.Invariant(
            $"startup {ms,8:F1} ms  jit {JitInfo.GetCompiledMethodCount(),6} methods {JitInfo.GetCompilationTime().TotalMilliseconds,7:F1} ms  asm {AppDomain.CurrentDomain.GetAssemblies().Length,3}  gc {GC.CollectionCount(0)}  {phase}"));
    }

    /// <summary>Marks the first healthy <c>/readyz</c> only.</summary>
    public static void MarkReady()
    {
        if (Enabled && Interlocked.Exchange(ref readyMarked, 1) == 0)
        {
            Mark("readyz 200");
        }
    }

    private static DateTime SpawnTime()
    {
        if (long.TryParse(Environment.GetEnvironmentVariable("SKIFF_STARTUP_T0"), out var ns))
        {
            return DateTime.UnixEpoch.AddTicks(ns / 100);
        }

        return Process.GetCurrentProcess().StartTime.ToUniversalTime();
    }
}
