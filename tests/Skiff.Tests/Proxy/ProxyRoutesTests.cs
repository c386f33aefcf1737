using System.Text;
using Microsoft.Extensions.Logging;
using Skiff.Proxy;
using Skiff.Tests.Runtime;

namespace Skiff.Tests.Proxy;

public sealed class ProxyRoutesTests : IDisposable
{
    private const string Valid = """
        {"version": 1, "listeners": [
          {"address": "127.0.0.1:3000", "protocol": "http", "stack": "prod/api", "port": "http", "revision": 4, "upstream": "172.18.0.5:3000"},
          {"address": "[::]:6379", "protocol": "tcp", "stack": "prod/bot", "port": "redis", "revision": 1, "upstream": "bot-r1:6379", "later": "ignored"}
        ]}
        """;

    private readonly string folder = Directory.CreateTempSubdirectory("skiff-routes-").FullName;

    private string RoutesPath => Path.Combine(folder, "routes.json");

    public void Dispose() => Directory.Delete(folder, recursive: true);

    [Fact]
    public void Parse_a_valid_file_reads_every_field_and_ignores_unknown_ones()
    {
        var routes = ProxyRoutes.Parse(Encoding.UTF8.GetBytes(Valid));

        Assert.Equal(1, routes.Version);
        Assert.Equal(
            [
                new ProxyListener("127.0.0.1:3000", ProxyProtocol.Http, "prod/api", "http", 4, "172.18.0.5:3000"),
                new ProxyListener("[::]:6379", ProxyProtocol.Tcp, "prod/bot", "redis", 1, "bot-r1:6379"),
            ],
            routes.Listeners);
    }

    [Theory]
    [InlineData("", "the file is empty")]
    [InlineData("  \n", "the file is empty")]
    [InlineData("{\"version\": 1, \"listeners\": [", "not JSON")]
    [InlineData("[]", "want an object")]
    [InlineData("{\"listeners\": []}", "version: required")]
    [InlineData("{\"version\": 3, \"listeners\": []}", "version: 3 is not understood")]
    [InlineData("{\"version\": 1}", "listeners: required")]
    [InlineData("{\"version\": 1, \"listeners\": [1]}", "listeners[0]: want an object")]
    [InlineData("{\"version\": 1, \"listeners\": [{\"protocol\": \"http\", \"stack\": \"a/b\", \"port\": \"http\", \"revision\": 1, \"upstream\": \"10.0.0.2:80\"}]}", "listeners[0].address: required")]
    [InlineData("{\"version\": 1, \"listeners\": [{\"address\": \"3000\", \"protocol\": \"http\", \"stack\": \"a/b\", \"port\": \"http\", \"revision\": 1, \"upstream\": \"10.0.0.2:80\"}]}", "listeners[0].address: \"3000\" is not IP:port")]
    [InlineData("{\"version\": 1, \"listeners\": [{\"address\": \"localhost:3000\", \"protocol\": \"http\", \"stack\": \"a/b\", \"port\": \"http\", \"revision\": 1, \"upstream\": \"10.0.0.2:80\"}]}", "listeners[0].address: \"localhost:3000\" is not IP:port")]
    [InlineData("{\"version\": 1, \"listeners\": [{\"address\": \"127.0.0.1:0\", \"protocol\": \"http\", \"stack\": \"a/b\", \"port\": \"http\", \"revision\": 1, \"upstream\": \"10.0.0.2:80\"}]}", "listeners[0].address: \"127.0.0.1:0\" is not IP:port")]
    [InlineData("{\"version\": 1, \"listeners\": [{\"address\": \"127.0.0.1:3000\", \"protocol\": \"udp\", \"stack\": \"a/b\", \"port\": \"http\", \"revision\": 1, \"upstream\": \"10.0.0.2:80\"}]}", "listeners[0].protocol: \"udp\" is not http or tcp")]
    [InlineData("{\"version\": 1, \"listeners\": [{\"address\": \"127.0.0.1:3000\", \"protocol\": \"http\", \"port\": \"http\", \"revision\": 1, \"upstream\": \"10.0.0.2:80\"}]}", "listeners[0].stack: required")]
    [InlineData("{\"version\": 1, \"listeners\": [{\"address\": \"127.0.0.1:3000\", \"protocol\": \"http\", \"stack\": \"a/b\", \"revision\": 1, \"upstream\": \"10.0.0.2:80\"}]}", "listeners[0].port: required")]
    [InlineData("{\"version\": 1, \"listeners\": [{\"address\": \"127.0.0.1:3000\", \"protocol\": \"http\", \"stack\": \"a/b\", \"port\": \"http\", \"revision\": \"4\", \"upstream\": \"10.0.0.2:80\"}]}", "listeners[0].revision: required, a whole number")]
    [InlineData("{\"version\": 1, \"listeners\": [{\"address\": \"127.0.0.1:3000\", \"protocol\": \"http\", \"stack\": \"a/b\", \"port\": \"http\", \"revision\": 1}]}", "listeners[0].upstream: required")]
    [InlineData("{\"version\": 1, \"listeners\": [{\"address\": \"127.0.0.1:3000\", \"protocol\": \"http\", \"stack\": \"a/b\", \"port\": \"http\", \"revision\": 1, \"upstream\": \"10.0.0.2\"}]}", "listeners[0].upstream: \"10.0.0.2\" is not host:port")]
    [InlineData("{\"version\": 1, \"listeners\": [{\"address\": \"127.0.0.1:3000\", \"protocol\": \"http\", \"stack\": \"a/b\", \"port\": \"http\", \"revision\": 1, \"upstream\": \"web:99999\"}]}", "listeners[0].upstream: \"web:99999\" is not host:port")]
    [InlineData("{\"version\": 1, \"listeners\": [{\"address\": \"127.0.0.1:3000\", \"protocol\": \"http\", \"stack\": \"a/b\", \"port\": \"http\", \"revision\": 1, \"upstream\": \"10.0.0.2:80\"}, {\"address\": \"127.0.0.1:3000\", \"protocol\": \"tcp\", \"stack\": \"a/c\", \"port\": \"x\", \"revision\": 1, \"upstream\": \"10.0.0.3:80\"}]}", "listeners[1].address: 127.0.0.1:3000 is already listeners[0]'s")]
    public void Parse_an_invalid_file_names_the_field(string json, string message)
    {
        var e = Assert.Throws<ProxyRoutesException>(() => ProxyRoutes.Parse(Encoding.UTF8.GetBytes(json)));

        Assert.StartsWith(message, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Write_then_Read_gives_the_same_routes_and_leaves_no_temporary_file()
    {
        var routes = ProxyRoutes.Parse(Encoding.UTF8.GetBytes(Valid));

        ProxyRoutes.Write(RoutesPath, routes);
        ProxyRoutes.Write(RoutesPath, routes with { Listeners = [routes.Listeners[0] with { Upstream = "172.18.0.6:3000", Revision = 5 }] });
        var read = ProxyRoutes.Read(RoutesPath);

        Assert.Equal([routes.Listeners[0] with { Upstream = "172.18.0.6:3000", Revision = 5 }], read.Listeners);
        Assert.Equal(["routes.json"], Directory.GetFiles(folder).Select(Path.GetFileName));
        Assert.Contains("\"protocol\": \"http\"", File.ReadAllText(RoutesPath), StringComparison.Ordinal);
    }

    [Fact]
    public void Write_refuses_routes_the_proxy_would_refuse()
    {
        var bad = new ProxyRoutes(1, [new ProxyListener("127.0.0.1:3000", ProxyProtocol.Http, "a/b", "http", 1, "nowhere")]);

        Assert.Throws<ProxyRoutesException>(() => ProxyRoutes.Write(RoutesPath, bad));
        Assert.False(File.Exists(RoutesPath));
    }

    [Fact]
    public void Read_of_a_missing_file_or_folder_is_FileNotFound()
    {
        Assert.Throws<FileNotFoundException>(() => ProxyRoutes.Read(RoutesPath));
        Assert.Throws<FileNotFoundException>(() => ProxyRoutes.Read(Path.Combine(folder, "gone", "routes.json")));
    }

    [Fact]
    public void Fingerprint_ignores_listener_order_and_changes_with_an_upstream()
    {
        var routes = ProxyRoutes.Parse(Encoding.UTF8.GetBytes(Valid));
        var reversed = routes with { Listeners = [.. routes.Listeners.Reverse()] };
        var switched = routes with { Listeners = [routes.Listeners[0] with { Upstream = "172.18.0.6:3000" }, routes.Listeners[1]] };

        Assert.Equal(routes.Fingerprint, reversed.Fingerprint);
        Assert.NotEqual(routes.Fingerprint, switched.Fingerprint);
        Assert.InRange(routes.Fingerprint, 1, (1L << 48) - 1);
    }

    [Fact]
    public void RoutesFile_keeps_the_last_good_routes_and_warns_once_per_change()
    {
        var logger = new RecordingLogger<ProxyRoutesTests>();
        using var file = new RoutesFile(RoutesPath, logger);

        // No file yet: nothing to serve, said once and not as a warning.
        Assert.Null(file.ReadGood());
        Assert.Null(file.ReadGood());
        Assert.Single(logger.Entries);
        Assert.Empty(logger.At(LogLevel.Warning));

        File.WriteAllText(RoutesPath, Valid);
        Assert.Equal(2, file.ReadGood()!.Listeners.Count);

        // Invalid, twice: one warning. Other invalid content: one more. Empty, then gone: one each.
        File.WriteAllText(RoutesPath, "{\"version\": 1, \"listeners\": [{}]}");
        Assert.Null(file.ReadGood());
        Assert.Null(file.ReadGood());
        File.WriteAllText(RoutesPath, "{\"version\": 3, \"listeners\": []}");
        Assert.Null(file.ReadGood());
        File.WriteAllText(RoutesPath, "");
        Assert.Null(file.ReadGood());
        File.Delete(RoutesPath);
        Assert.Null(file.ReadGood());
        Assert.Null(file.ReadGood());

        var warnings = logger.At(LogLevel.Warning).Select(e => e.Message).ToList();
        Assert.Equal(4, warnings.Count);
        Assert.Contains("listeners[0].address: required", warnings[0], StringComparison.Ordinal);
        Assert.Contains("version: 3", warnings[1], StringComparison.Ordinal);
        Assert.Contains("the file is empty", warnings[2], StringComparison.Ordinal);
        Assert.Contains("is gone; keeping the last good routes", warnings[3], StringComparison.Ordinal);

        // Back: read again, said once.
        File.WriteAllText(RoutesPath, Valid);
        Assert.NotNull(file.ReadGood());
        Assert.Contains(logger.Entries, e => e.Message.Contains("readable again", StringComparison.Ordinal));
    }
}
