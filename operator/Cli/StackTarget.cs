using Skiff.Docker;
using Skiff.Hosting;
using Skiff.Reconcile;

namespace Skiff.Cli;

/// <summary>One container of a stack a day-two command works on, with the secrets to mask in its output; or the exit code why not.</summary>
public sealed record StackTarget(ObservedContainer? Container, IReadOnlyList<string> Secrets, int Exit)
{
    /// <summary>Asks the engine for the stack's containers and picks one (<see cref="StackContainers.Pick"/>), or says why not.</summary>
    public static async Task<StackTarget> FindAsync(
        DockerEngine engine, string command, string ns, string name, string component, bool previous, string stateDir, TextWriter stderr, CancellationToken ct)
    {
        if (!await Preflight.EngineAnswersAsync(engine, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance, stderr, ct, command))
        {
            return new StackTarget(null, [], ExitCodes.Unreachable);
        }

        try
        {
            var containers = await StackContainers.ListAsync(engine, ns, name, ct);
            if (containers.Count == 0)
            {
                stderr.WriteLine($"{command}: no stack {ns}/{name} on the engine at {engine.Endpoint}" +
                    (ns == "default" ? " (another namespace? -n NAMESPACE)" : "") + "; skiff status lists the stacks");
                return new StackTarget(null, [], ExitCodes.NotOk);
            }

            var container = StackContainers.Pick(containers, component, StackContainers.LiveRevision(stateDir, ns, name), previous, out var problem);
            if (container is null)
            {
                stderr.WriteLine($"{command}: stack {ns}/{name}: {problem}");
                return new StackTarget(null, [], ExitCodes.NotOk);
            }

            var env = await StackContainers.EnvironmentAsync(engine, containers, ct);
            return new StackTarget(container, StackContainers.SecretValues(env, StackContainers.RecordedSpec(stateDir, ns, name)), ExitCodes.Ok);
        }
        catch (EngineUnreachableException e)
        {
            stderr.WriteLine(Preflight.Unreachable(command, e));
            return new StackTarget(null, [], ExitCodes.Unreachable);
        }
    }
}
