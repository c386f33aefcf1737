namespace Skiff.Observability;

/// <summary>
/// Counts Docker requests (skiff_docker_requests_total{operation,result}): the hook <c>Docker/</c>'s engine
/// reports into; <see cref="SkiffMetrics.Docker"/> is the exported implementation.
/// </summary>
public interface IDockerMetrics
{
    void Request(string operation, string result);
}
