using Microsoft.Extensions.Logging.Abstractions;
using Skiff.Hosting;
using Skiff.Reconcile;
using Skiff.Tests.Reconcile;

namespace Skiff.Tests.Hosting;

/// <summary>
/// The operator's side of the node proxy's upgrade (DESIGN §7): a new image starts beside the running proxy, and the
/// running one is retired only once the new one listens on every route; one that never does is removed instead.
/// </summary>
public sealed class NodeProxyTests : IDisposable
{
    private const string Route = "127.0.0.1:18080";
    private readonly string state = Directory.CreateTempSubdirectory("skiff-nodeproxy-").FullName;
    private readonly InMemoryEngine engine = new(TimeProvider.System);

    public NodeProxyTests()
    {
        engine.Images.UnionWith(["skiff:1", "skiff:2"]);
    }

    public void Dispose() => Directory.Delete(state, recursive: true);

    [Fact]
    public async Task An_upgrade_retires_the_running_proxy_only_after_the_new_one_listens_and_names_it_skiff_proxy()
    {
        await StartFirstProxyAsync();
        engine.Logs = name => name == "skiff_proxy_next"
            ? $"Proxy following /routes/routes.json; metrics on 127.0.0.1:19090\n{Route}: Http for ns/web http to 10.0.0.2:8080 (revision 1)\n"
            : "";

        using var upgraded = Proxy("skiff:2");
        await upgraded.EnsureAsync(engine, CancellationToken.None);

        var proxy = Assert.Single(engine.All);
        Assert.Equal("skiff_proxy", proxy.Name);
        Assert.Equal("skiff:2", proxy.Image);
        Assert.True(proxy.Running);
        var calls = engine.Calls.ToList();
        Assert.True(calls.IndexOf("container_start skiff_proxy_next") < calls.IndexOf("container_stop skiff_proxy"), string.Join(", ", calls));
    }

    [Fact]
    public async Task A_new_proxy_that_exits_before_listening_is_removed_and_the_running_one_keeps_serving()
    {
        await StartFirstProxyAsync();
        engine.Logs = name =>
        {
            if (name == "skiff_proxy_next")
            {
                engine.Exit(name, 1);
            }

            return "Proxy following /routes/routes.json\n";
        };

        using var upgraded = Proxy("skiff:2");
        await upgraded.EnsureAsync(engine, CancellationToken.None);

        var proxy = Assert.Single(engine.All);
        Assert.Equal("skiff_proxy", proxy.Name);
        Assert.Equal("skiff:1", proxy.Image);
        Assert.True(proxy.Running);
        Assert.DoesNotContain("container_stop skiff_proxy", engine.Calls);
    }

    private async Task StartFirstProxyAsync()
    {
        using var first = Proxy("skiff:1");
        await first.EnsureAsync(engine, CancellationToken.None);
        await first.SetAsync("ns/web", [new StackRoute(Route, "http", "http", 1, "10.0.0.2:8080")], CancellationToken.None);
        Assert.Equal("skiff_proxy", Assert.Single(engine.All).Name);
    }

    private NodeProxy Proxy(string image) => new(image, "127.0.0.1:19090", state, "node-a", NullLogger.Instance);
}
