using Microsoft.Extensions.Logging;
using Skiff.Docker;
using Skiff.State;
using Skiff.Reconcile;

namespace Skiff.Hosting;

/// <summary>The checks every long-running command makes before it starts, with the same messages and exit codes.</summary>
public static class Preflight
{
    /// <summary>Takes the state folder's lock, or writes why not and returns null with the exit code.</summary>
    public static IDisposable? LockState(StateStore state, string purpose, TextWriter error, out int exitCode)
    {
        exitCode = ExitCodes.Ok;
        try
        {
            return state.Lock(purpose);
        }
        catch (StateLockedException e)
        {
            error.WriteLine($"skiff: {e.Message}");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            error.WriteLine($"--state-dir: cannot use {state.Root}: {e.Message}");
        }

        exitCode = ExitCodes.UsageOrIo;
        return null;
    }

    /// <summary>Whether the Docker engine answers; logs its version, or writes why not.</summary>
    public static async Task<bool> EngineAnswersAsync(DockerEngine engine, ILogger log, TextWriter error, CancellationToken ct)
    {
        try
        {
            var (version, api) = await engine.VersionAsync(ct);
            log.LogInformation("Docker engine {Version} (API {ApiVersion}) at {Endpoint}", version, api, engine.Endpoint);
            return true;
        }
        catch (EngineUnreachableException e)
        {
            error.WriteLine($"skiff: {e.Message}. Is dockerd running? (--docker-host or DOCKER_HOST)");
            return false;
        }
    }
}
