using Docker.DotNet.Models;
using Skiff.Api;

namespace Skiff.IntegrationTests.FolderSource;

/// <summary>
/// A stack pruned from a folder (its document deleted) follows its reclaimPolicy like a deleted resource,
/// and the generated <c>NAME-db</c> credentials live exactly as long as the data volume they open.
/// </summary>
public sealed class PruneReclaimTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(3);

    private static string WithDatabase(FolderWorkspace w, string reclaimPolicy, string? volume = null) =>
        w.Api(edit: s => (s.Database!.Storage, s.Database.Volume) = (new StorageSpec { ReclaimPolicy = reclaimPolicy }, volume));

    private static string Credentials(FolderWorkspace w) => Path.Combine(w.StateDir, "secrets", $"{w.Namespace}_api-db.json");

    private static async Task RunOnceAsync(FolderWorkspace w)
    {
        var (exit, stdout, stderr) = await SkiffProcess.RunAsync(Timeout, w.RunOnceArgs());
        Assert.True(exit == 0, $"exit {exit}\n{stdout}\n{stderr}");
    }

    private static async Task DeployThenPruneAsync(FolderWorkspace w, string document)
    {
        w.Write("api.yaml", document);
        await RunOnceAsync(w);
        Assert.NotEmpty(await w.ContainersAsync("api"));
        Assert.True(File.Exists(Credentials(w)));

        w.Delete("api.yaml");
        await RunOnceAsync(w);
        Assert.Empty(await w.ContainersAsync("api"));
    }

    [Fact]
    public async Task Pruned_with_Retain_keeps_the_volume_and_the_credentials()
    {
        await using var w = new FolderWorkspace();
        await DeployThenPruneAsync(w, WithDatabase(w, ReclaimPolicies.Retain));

        Assert.NotNull(await w.Engine.InspectVolumeAsync($"skiff_{w.Namespace}_api_database", CancellationToken.None));
        Assert.True(File.Exists(Credentials(w)));
    }

    [Fact]
    public async Task Pruned_with_Delete_removes_the_volume_and_the_credentials()
    {
        await using var w = new FolderWorkspace();
        await DeployThenPruneAsync(w, WithDatabase(w, ReclaimPolicies.Delete));

        Assert.Null(await w.Engine.InspectVolumeAsync($"skiff_{w.Namespace}_api_database", CancellationToken.None));
        Assert.False(File.Exists(Credentials(w)));
    }

    [Fact]
    public async Task Pruned_with_Delete_and_an_adopted_volume_keeps_the_volume_and_the_credentials_that_open_it()
    {
        await using var w = new FolderWorkspace();
        // Named like the workspace's own volumes, so the workspace removes it at the end.
        var adopted = $"skiff_{w.Namespace}_adopted";
        await w.Engine.Client.Volumes.CreateAsync(new VolumesCreateParameters { Name = adopted });
        await DeployThenPruneAsync(w, WithDatabase(w, ReclaimPolicies.Delete, adopted));

        Assert.NotNull(await w.Engine.InspectVolumeAsync(adopted, CancellationToken.None));
        Assert.True(File.Exists(Credentials(w)));

        // The kept credentials still open the kept data: the stack comes back on the same volume and is Ready.
        w.Write("api.yaml", WithDatabase(w, ReclaimPolicies.Delete, adopted));
        await RunOnceAsync(w);
    }
}
