using k8s;
using k8s.Models;

namespace Skiff.TestApiServer.Tests;

/// <summary>Stopping and restarting the server, as a kube-apiserver restart looks to its clients.</summary>
public sealed class RestartTests
{
    [Fact]
    public async Task A_stopped_server_refuses_connections_and_a_restarted_one_keeps_its_objects_port_and_resourceVersions()
    {
        await using var server = await TestApiServer.StartAsync(TestCrds.Options());
        using var client = server.CreateClient();
        var port = server.BaseUri.Port;
        var created = await client.CoordinationV1.CreateNamespacedLeaseAsync(
            new V1Lease { Metadata = new V1ObjectMeta { Name = "skiff-vps-1" }, Spec = new V1LeaseSpec { HolderIdentity = "a" } }, "default");

        await server.StopAsync();

        Assert.False(server.IsRunning);
        var refused = await Assert.ThrowsAsync<HttpRequestException>(() => client.CoordinationV1.ReadNamespacedLeaseAsync("skiff-vps-1", "default"));
        Assert.Equal(System.Net.Sockets.SocketError.ConnectionRefused, (refused.InnerException as System.Net.Sockets.SocketException)?.SocketErrorCode);

        await server.RestartAsync();

        Assert.True(server.IsRunning);
        Assert.Equal(port, server.BaseUri.Port);
        var read = await client.CoordinationV1.ReadNamespacedLeaseAsync("skiff-vps-1", "default");
        Assert.Equal((created.Metadata.Uid, created.Metadata.ResourceVersion, "a"), (read.Metadata.Uid, read.Metadata.ResourceVersion, read.Spec.HolderIdentity));
        read.Spec.HolderIdentity = "b";
        var replaced = await client.CoordinationV1.ReplaceNamespacedLeaseAsync(read, "skiff-vps-1", "default");
        Assert.True(long.Parse(replaced.Metadata.ResourceVersion) > long.Parse(created.Metadata.ResourceVersion));
    }

    [Fact]
    public async Task Open_watches_end_at_the_stop_and_a_watch_resumed_after_the_restart_gets_what_happened_since()
    {
        await using var server = await TestApiServer.StartAsync(TestCrds.Options());
        using var client = server.CreateClient();
        var list = await client.CoreV1.ListNamespacedConfigMapAsync("default");
        using var http = new HttpClient { BaseAddress = server.BaseUri };
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var path = $"/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={list.Metadata.ResourceVersion}";
        using (var open = await http.GetAsync(path, HttpCompletionOption.ResponseHeadersRead, timeout.Token))
        {
            var body = open.Content.ReadAsStringAsync(timeout.Token);

            await server.StopAsync();

            Assert.Equal("", await body);
        }

        await server.RestartAsync();
        await client.CoreV1.CreateNamespacedConfigMapAsync(new V1ConfigMap { Metadata = new V1ObjectMeta { Name = "after" } }, "default");
        using var resumed = await http.GetAsync(path, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
        using var reader = new StreamReader(await resumed.Content.ReadAsStreamAsync(timeout.Token));
        var first = System.Text.Json.Nodes.JsonNode.Parse((await reader.ReadLineAsync(timeout.Token))!)!;
        Assert.Equal(("ADDED", "after"), (first["type"]!.GetValue<string>(), first["object"]!["metadata"]!["name"]!.GetValue<string>()));
    }
}
