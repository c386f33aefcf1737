namespace Skiff.Hosting;

/// <summary>
/// The exit codes every command uses (DESIGN §5). Scripts and CI depend on them, so they live in one place.
/// </summary>
public static class ExitCodes
{
    /// <summary>Everything is fine.</summary>
    public const int Ok = 0;

    /// <summary>Invalid input, a resource that is not Ready, or a GC pass that could not free enough.</summary>
    public const int NotOk = 1;

    /// <summary>Usage error or an I/O error (a file that cannot be read, a state folder that is locked).</summary>
    public const int UsageOrIo = 2;

    /// <summary>The Docker engine or the Kubernetes API server cannot be reached.</summary>
    public const int Unreachable = 3;
}
