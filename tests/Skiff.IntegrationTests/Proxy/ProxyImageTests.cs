using System.Globalization;
using Docker.DotNet;
using Docker.DotNet.Models;
using Skiff.IntegrationTests.Infrastructure;
using Skiff.Proxy;

namespace Skiff.IntegrationTests.Proxy;

/// <summary>
/// The operator's image (<c>skiff-test/skiff:dev</c>, built by scripts/build-test-images.sh) running
/// <c>skiff proxy</c> on the host network in front of app containers on a stack's bridge network, as the
/// operator's <c>skiff_proxy</c> container will.
/// </summary>
[Collection(DockerCollection.Name)]
public sealed class ProxyImageTests(DockerFixture docker)
{
    public const string SkiffImage = "skiff-test/skiff:dev";

    private static readonly HttpClient Client = new(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(10) };

    [Fact]
    public async Task The_image_proxies_from_the_host_network_to_a_container_on_a_bridge_and_stops_cleanly()
    {
        using var ct = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        try
        {
            await docker.Client.Images.InspectImageAsync(SkiffImage, ct.Token);
        }
        catch (DockerImageNotFoundException)
        {
            Assert.Fail($"{SkiffImage} is missing: build it with scripts/build-test-images.sh");
        }

        var network = await docker.CreateNetworkAsync("proxy", ct.Token);
        var app1 = await StartAppAsync(TestImages.App1, network, ct.Token);
        using var routes = new RoutesUnderTest();
        var port = DockerFixture.FreeTcpPort();
        var metricsPort = DockerFixture.FreeTcpPort();
        var listener = new ProxyListener($"127.0.0.1:{port}", ProxyProtocol.Http, "test/app", "http", 1, $"{app1}:{TestImages.AppPort}");
        routes.Write(listener);

        var proxy = await docker.StartContainerAsync(
            new CreateContainerParameters
            {
                Image = SkiffImage,
                Cmd = ["proxy", "--routes", "/routes/routes.json", "--metrics-bind-address", $"127.0.0.1:{metricsPort}", "--drain-seconds", "5"],
                HostConfig = new HostConfig { NetworkMode = "host", Binds = [$"{routes.Folder}:/routes:ro"] },
            },
            ct.Token);

        Assert.Contains("\"version\":\"1\"", await AnswerAsync(port, "\"version\":\"1\"", proxy, ct.Token), StringComparison.Ordinal);

        // A new revision on the same network: the route switches to it.
        var app2 = await StartAppAsync(TestImages.App2, network, ct.Token);
        routes.Write(listener with { Revision = 2, Upstream = $"{app2}:{TestImages.AppPort}" });
        Assert.Contains("\"version\":\"2\"", await AnswerAsync(port, "\"version\":\"2\"", proxy, ct.Token), StringComparison.Ordinal);
        var metrics = await Client.GetStringAsync(new Uri($"http://127.0.0.1:{metricsPort}/metrics"), ct.Token);
        Assert.Equal(1, ProxyProcess.Value(metrics, "skiff_proxy_route_switches_total", $"listener=\"127.0.0.1:{port}\""));
        Assert.Equal(routes.Current.Fingerprint, ProxyProcess.Value(metrics, "skiff_proxy_routes_version"));

        // docker stop: SIGTERM, a graceful drain, exit 0.
        await docker.Client.Containers.StopContainerAsync(proxy, new ContainerStopParameters { WaitBeforeKillSeconds = 30 }, ct.Token);
        var state = (await docker.Client.Containers.InspectContainerAsync(proxy, ct.Token)).State;
        Assert.True(state!.ExitCode == 0, $"the proxy exited {state.ExitCode}: {await docker.LogsAsync(proxy, ct.Token)}");
    }

    /// <summary>Starts the test app on <paramref name="network"/>; returns its IP address there.</summary>
    private async Task<string> StartAppAsync(string image, string network, CancellationToken ct)
    {
        var id = await docker.StartContainerAsync(
            new CreateContainerParameters { Image = image, HostConfig = new HostConfig { NetworkMode = network } },
            ct);
        var inspect = await docker.Client.Containers.InspectContainerAsync(id, ct);
        return inspect.NetworkSettings!.Networks![network].IPAddress!;
    }

    /// <summary>Polls the proxy until <c>GET /</c> answers 200 with <paramref name="expected"/> in the body.</summary>
    private async Task<string> AnswerAsync(int port, string expected, string proxy, CancellationToken ct)
    {
        var last = "nothing yet";
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                using var response = await Client.GetAsync(new Uri($"http://127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}/"), ct);
                last = $"{(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(ct)}";
                if (response.IsSuccessStatusCode && last.Contains(expected, StringComparison.Ordinal))
                {
                    return last;
                }
            }
            catch (HttpRequestException e)
            {
                last = e.Message;
            }

            await Task.Delay(200, ct);
        }

        throw new TimeoutException($"no answer with {expected} through the proxy within 60 s; last: {last}; proxy logs:\n{await docker.LogsAsync(proxy, ct)}");
    }
}
