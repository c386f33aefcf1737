using Skiff.ImageGC;

namespace Skiff.Docker;

/// <summary>
/// statvfs of the filesystem holding the engine's data root (<c>docker info</c>'s DockerRootDir),
/// through <see cref="DriveInfo"/>: cheap enough to call every few seconds.
/// </summary>
/// <remarks>
/// <b>Caveats.</b> The data root must be visible to this process (the Helm chart mounts it read-only).
/// When it is not, the nearest existing parent folder is measured instead, which is right when the
/// engine runs on this host without its own filesystem for /var/lib/docker; the fallback is
/// reported once in <see cref="Warning"/>.
/// </remarks>
public sealed class DataRootDiskMeter(DockerEngine engine, string? dataRoot = null) : IDiskMeter
{
    private string? path = dataRoot;

    /// <summary>Set when the data root could not be measured directly.</summary>
    public string? Warning { get; private set; }

    /// <summary>The folder measured, once known.</summary>
    public string? MeasuredPath => path;

    public async Task<DiskUsage> MeasureAsync(CancellationToken ct)
    {
        path ??= Resolve(await engine.DataRootAsync(ct));
        var drive = new DriveInfo(path);
        var total = drive.TotalSize;
        // Used = total - available to unprivileged writers, as df reports it: the root reserve is not room PostgreSQL can use.
        return new DiskUsage(total, Math.Max(0, total - drive.AvailableFreeSpace));
    }

    private string Resolve(string dataRoot)
    {
        var candidate = string.IsNullOrEmpty(dataRoot) ? "/var/lib/docker" : dataRoot;
        var probe = candidate;
        while (!System.IO.Directory.Exists(probe) && Path.GetDirectoryName(probe) is { } parent && parent != probe)
        {
            probe = parent;
        }

        if (probe != candidate)
        {
            Warning = $"Docker's data root {candidate} is not visible here; measuring {probe} instead";
        }

        return probe;
    }
}
