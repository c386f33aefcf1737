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
    [InlineData(HttpStatusCode.InternalServerError, """{"message":"get skiff_restart_api_database: database not open"}""", true)]
    // Failures of the request itself stay what they are.
    [InlineData(HttpStatusCode.InternalServerError, """{"message":"driver failed programming external connectivity on endpoint x: Bind for 0.0.0.0:8080 failed: port is already allocated"}""", false)]
    [InlineData(HttpStatusCode.Conflict, """{"message":"conflict: unable to remove repository reference (must force) - container is using its referenced image"}""", false)]
    [InlineData(HttpStatusCode.NotFound, """{"message":"No such container: x"}""", false)]
    public void Only_errors_of_the_engine_going_away_count_as_unreachable(HttpStatusCode status, string body, bool goingAway)
    {
        Assert.Equal(goingAway, DockerEngine.GoingAway(new DockerApiException(status, body)));
    }

    [Theory]
    // What dockerd 20.10 answered in CI when a migration container that its shutdown had killed was started again
    // right after the restart.
    [InlineData(HttpStatusCode.InternalServerError, """{"message":"task d0962e54bf7537fe37965bcabc8fcace99d8cc67601699336529c7ed592af17d: already exists"}""", true)]
    [InlineData(HttpStatusCode.Conflict, """{"message":"Conflict. The container name \"/x\" is already in use by container \"abc\"."}""", false)]
    [InlineData(HttpStatusCode.InternalServerError, """{"message":"driver failed programming external connectivity on endpoint x: Bind for 0.0.0.0:8080 failed: port is already allocated"}""", false)]
    public void Only_a_task_left_over_from_before_an_engine_restart_is_started_again(HttpStatusCode status, string body, bool stale)
    {
        Assert.Equal(stale, DockerEngine.StaleTask(new DockerApiException(status, body)));
    }
}
