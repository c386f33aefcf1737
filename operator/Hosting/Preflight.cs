using Microsoft.Extensions.Logging;
using Skiff.Docker;
using Skiff.State;
using Skiff.Reconcile;

namespace Skiff.Hosting;

/// <summary>
/// The checks every command that changes the node makes before it starts (<c>skiff run</c> in both sources, <c>skiff gc</c>),
/// with the same messages and exit codes.
/// </summary>
public static class Preflight
{
    /// <summary>Takes the state folder's lock, or writes why not and returns null with the exit code.</summary>
    /// <param name="state">The state folder.</param>
    /// <param name="purpose">Who holds the lock, as another process will be told.</param>
    /// <param name="error">Where the reason goes.</param>
    /// <param name="exitCode"><see cref="ExitCodes.Ok"/>, or <see cref="ExitCodes.UsageOrIo"/> when the lock was not taken.</param>
    /// <param name="command">What the message starts with.</param>
    /// <param name="whenLocked">What to add when another process holds the lock (the way around it), if anything.</param>
    public static IDisposable? LockState(StateStore state, string purpose, TextWriter error, out int exitCode, string command = "skiff", string? whenLocked = null)
    {
        exitCode = ExitCodes.Ok;
        try
        {
            return state.Lock(purpose);
        }
        catch (StateLockedException e)
        {
            error.WriteLine(whenLocked is null ? $"{command}: {e.Message}" : $"{command}: {e.Message}. {whenLocked}");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            error.WriteLine($"--state-dir: cannot use {state.Root}: {e.Message}");
        }

        exitCode = ExitCodes.UsageOrIo;
        return null;
    }

    /// <summary>Whether the Docker engine answers; logs its version, or writes why not.</summary>
    /// <param name="engine">The engine.</param>
    /// <param name="log">Where its version is told.</param>
    /// <param name="error">Where the reason goes when it does not answer.</param>
    /// <param name="ct">Ends the check.</param>
    /// <param name="command">What the message starts with.</param>
    public static async Task<bool> EngineAnswersAsync(DockerEngine engine, ILogger log, TextWriter error, CancellationToken ct, string command = "skiff")
    {
        try
        {
            var (version, api) = await engine.VersionAsync(ct);
            log.LogInformation("Docker engine {Version} (API {ApiVersion}) at {Endpoint}", version, api, engine.Endpoint);
            return true;
        }
        catch (EngineUnreachableException e)
        {
            error.WriteLine(Unreachable(command, e));
            return false;
        }
    }

    /// <summary>What a command says when the engine does not answer, at its start or later on.</summary>
    public static string Unreachable(string command, EngineUnreachableException e) =>
        $"{command}: {e.Message}. Is dockerd running? (--docker-host or DOCKER_HOST)";
}
