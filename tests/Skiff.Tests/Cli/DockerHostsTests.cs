using Skiff.Cli;

namespace Skiff.Tests.Cli;

public sealed class DockerHostsTests
{
    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("unix:///var/run/docker.sock")]
    [InlineData("unix:///tmp/docker.sock")]
    [InlineData("tcp://127.0.0.1:2375")]
    [InlineData("tcp://vps-1.internal:2375")]
    [InlineData("http://10.0.0.2:2375")]
    [InlineData("https://docker.example.com:2376")]
    public void Accepts_what_the_engine_client_speaks(string? uri) => Assert.Null(DockerHosts.Problem(uri));

    [Theory]
    [InlineData("bogus", "not a Docker engine URI")]
    [InlineData("/var/run/docker.sock", "not a Docker engine URI")]
    [InlineData("ssh://deploy@vps-1", "ssh:// is not supported: use a local socket, or forward one with `ssh -L /tmp/docker.sock:/var/run/docker.sock host` and pass unix:///tmp/docker.sock")]
    [InlineData("unix://var/run/docker.sock", "(three slashes)")]
    [InlineData("unix://", "an absolute path")]
    [InlineData("tcp://127.0.0.1", "give the port, e.g. tcp://127.0.0.1:2375")]
    [InlineData("npipe:////./pipe/docker_engine", "the scheme npipe:// is not supported")]
    public void Refuses_the_rest_saying_what_to_use(string uri, string expected) =>
        Assert.Contains(expected, DockerHosts.Problem(uri), StringComparison.Ordinal);
}
