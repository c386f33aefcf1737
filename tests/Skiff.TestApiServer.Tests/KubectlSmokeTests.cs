namespace Skiff.TestApiServer.Tests;

public sealed class KubectlSmokeTests
{
    [Fact]
    public async Task Smoke()
    {
        await using var server = await TestApiServer.StartAsync(TestCrds.Options());
        using var kubectl = new Kubectl(server);
        var file = kubectl.WriteFile("shop.yaml", """
            apiVersion: skiff.dev/v1alpha1
            kind: AppDeployment
            metadata:
              name: shop
            spec:
              node: vps-1
              app:
                image: shop:1
            """);
        var r = await kubectl.RunAsync("apply", "-f", file, "-v=6");
        var r2 = await kubectl.RunAsync("get", "appdep");
        File.WriteAllText("/tmp/smoke/out.txt", r + "\n----\n" + r2 + "\n" + string.Join("\n", server.RequestLog));
    }
}
