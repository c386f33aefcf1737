using System.Net;
using Docker.DotNet;
using Skiff.Docker;

namespace Skiff.Tests.Docker;

/// <summary>Which engine errors mean "the engine is going away" (reported as unreachable) rather than "this request failed".</summary>
public class EngineErrorTests
{
    [Theory]
    // What dockerd 20.10 answered in CI while it shut down, between stopping containerd and closing its socket.
    [InlineData(HttpStatusCode.InternalServerError, """{"message":"transport is closing: unavailable"}""", true)]
    [InlineData(HttpStatusCode.InternalServerError, """{"message":"connection error: desc = \"transport: Error while dialing dial unix /run/containerd/containerd.sock: connect: connection refused\": unavailable"}""", true)]
    [InlineData(HttpStatusCode.ServiceUnavailable, """{"message":"grpc: the client connection is closing"}""", true)]
    // Failures of the request itself stay what they are.
    [InlineData(HttpStatusCode.InternalServerError, """{"message":"driver failed programming external connectivity on endpoint x: Bind for 0.0.0.0:8080 failed: port is already allocated"}""", false)]
    [InlineData(HttpStatusCode.Conflict, """{"message":"conflict: unable to remove repository reference (must force) - container is using its referenced image"}""", false)]
    [InlineData(HttpStatusCode.NotFound, """{"message":"No such container: x"}""", false)]
    public void Only_errors_of_the_engine_going_away_count_as_unreachable(HttpStatusCode status, string body, bool goingAway)
    {
        Assert.Equal(goingAway, DockerEngine.GoingAway(new DockerApiException(status, body)));
    }
}
