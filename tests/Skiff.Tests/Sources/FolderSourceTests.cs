using System.Security.Cryptography;
using Microsoft.Extensions.Logging.Abstractions;
using Skiff.Runtime;
using Skiff.Sources.Directory;
using Skiff.State;
using Skiff.Yaml;

namespace Skiff.Tests.Sources;

/// <summary>The folder source's identity and what a typo'd kind does to the folder's snapshot.</summary>
public sealed class FolderSourceTests : IDisposable
{
    private readonly string root = Path.Combine(Path.GetTempPath(), "skiff-ut-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4)));

    public FolderSourceTests()
    {
        Directory.CreateDirectory(Path.Combine(root, "real", "resources"));
        // Identities compare real paths: the temporary folder itself may be behind a link.
        root = FolderIdentity.CanonicalPath(root);
    }

    private string Real => Path.Combine(root, "real", "resources");

    public void Dispose() => Directory.Delete(root, recursive: true);

    [Fact]
    public void A_canonical_absolute_path_keeps_the_id_every_earlier_version_gave_it()
    {
        // Pinned: sha256("/srv/skiff/resources"); a change here makes every installation's stacks foreign.
        Assert.Equal("folder-0349156864c469a8", FolderIdentity.SourceId("/srv/skiff/resources", null));
        Assert.Equal("/srv/skiff/resources", FolderIdentity.CanonicalPath("/srv/skiff/resources"));
        Assert.Equal(StateStore.SourceId("folder", Real), FolderIdentity.SourceId(FolderIdentity.CanonicalPath(Real), null));
    }

    [Fact]
    public void A_trailing_slash_a_relative_path_dots_and_links_are_the_same_folder()
    {
        Directory.CreateSymbolicLink(Path.Combine(root, "absolute-link"), Real);
        Directory.CreateSymbolicLink(Path.Combine(root, "relative-link"), Path.Combine("real", "resources"));
        Directory.CreateSymbolicLink(Path.Combine(root, "chain"), Path.Combine(root, "relative-link"));
        Directory.CreateSymbolicLink(Path.Combine(root, "real-dir-link"), Path.Combine(root, "real"));

        string[] spellings =
        [
            Real + "/",
            Real + "//",
            Path.Combine(root, "real", ".", "resources", "."),
            Path.Combine(root, "real", "resources", "..", "resources"),
            Path.GetRelativePath(Environment.CurrentDirectory, Real),
            Path.Combine(root, "absolute-link"),
            Path.Combine(root, "relative-link") + "/",
            Path.Combine(root, "chain"),
            Path.Combine(root, "real-dir-link", "resources"),
            // ".." after a link goes up from the link's target, as realpath(3) does.
            Path.Combine(root, "chain", "..", "resources"),
        ];
        Assert.All(spellings, s => Assert.Equal(Real, FolderIdentity.CanonicalPath(s)));
    }

    [Fact]
    public void A_missing_folder_keeps_its_path_as_written_and_a_loop_of_links_is_an_error()
    {
        Assert.Equal(Path.Combine(Real, "not", "yet"), FolderIdentity.CanonicalPath(Path.Combine(Real, "not", "yet") + "/"));
        File.CreateSymbolicLink(Path.Combine(root, "a"), Path.Combine(root, "b"));
        File.CreateSymbolicLink(Path.Combine(root, "b"), Path.Combine(root, "a"));
        var e = Assert.Throws<IOException>(() => FolderIdentity.CanonicalPath(Path.Combine(root, "a")));
        Assert.Contains("too many levels of symbolic links", e.Message);
    }

    [Fact]
    public void A_source_name_is_hashed_as_a_path_is_so_the_old_path_as_a_name_is_the_old_source()
    {
        Assert.Equal(FolderIdentity.SourceId("/srv/old", null), FolderIdentity.SourceId("/srv/new", "/srv/old"));
        Assert.NotEqual(FolderIdentity.SourceId("/srv/new", null), FolderIdentity.SourceId("/srv/new", "prod-vps1"));
        Assert.Equal(FolderIdentity.SourceId("/a", "prod-vps1"), FolderIdentity.SourceId("/b", "prod-vps1"));
        Assert.Null(FolderIdentity.CheckName("prod-vps1"));
        Assert.Null(FolderIdentity.CheckName("/srv/skiff/resources/"));
        Assert.NotNull(FolderIdentity.CheckName(""));
        Assert.NotNull(FolderIdentity.CheckName(" prod"));
        Assert.NotNull(FolderIdentity.CheckName("prod\n"));
    }

    [Theory]
    [InlineData("AppDeploymnet", "skiff.dev/v1alpha1", "unknown kind \"AppDeploymnet\" for apiVersion skiff.dev/v1alpha1; did you mean AppDeployment?")]
    [InlineData("appdeployment", "skiff.dev/v1alpha1", "unknown kind \"appdeployment\" for apiVersion skiff.dev/v1alpha1; did you mean AppDeployment?")]
    [InlineData("ImageGcPolicy", "skiff.dev/v1alpha1", "unknown kind \"ImageGcPolicy\" for apiVersion skiff.dev/v1alpha1; did you mean ImageGCPolicy?")]
    [InlineData("AppDeploymnet", "skiff.dev/v1", "unknown kind \"AppDeploymnet\" for apiVersion skiff.dev/v1; did you mean AppDeployment (apiVersion skiff.dev/v1alpha1)?")]
    [InlineData("AppDeployments", "apps/v1", "unknown kind \"AppDeployments\" for apiVersion apps/v1; did you mean AppDeployment (apiVersion skiff.dev/v1alpha1)?")]
    [InlineData("Backup", "skiff.dev/v1alpha1", "unknown kind \"Backup\" for apiVersion skiff.dev/v1alpha1; Skiff serves AppDeployment and ImageGCPolicy in skiff.dev/v1alpha1")]
    [InlineData("ConfigMap", "v1", null)]
    [InlineData("Kustomization", "kustomize.toolkit.fluxcd.io/v1", null)]
    [InlineData("Deployment", "apps/v1", null)]
    [InlineData("Application", "argoproj.io/v1alpha1", null)]
    public void A_skiff_dev_kind_Skiff_does_not_serve_or_a_near_miss_is_an_error_other_tools_kinds_are_not(string kind, string apiVersion, string? problem) =>
        Assert.Equal(problem, ResourceKinds.Problem(kind, apiVersion));

    private const string Api = """
        apiVersion: skiff.dev/v1alpha1
        kind: AppDeployment
        metadata:
          name: api
        spec:
          node: vps-1
          app:
            image: nginx:1.27
        """;

    [Fact]
    public void A_typo_in_kind_keeps_the_stack_of_its_file_and_reports_where_and_the_fix()
    {
        File.WriteAllText(Path.Combine(Real, "api.yaml"), Api);
        File.WriteAllText(Path.Combine(Real, "other.yaml"), "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n");
        var source = new DirectorySource(Real, NullLogger<DirectorySource>.Instance);
        source.Rescan();
        var key = new ObjectKey("default", "api");
        Assert.NotNull(source.Get(key)?.Resource);
        Assert.Empty(source.Problems);
        Assert.False(source.IsBroken(Path.Combine(Real, "other.yaml")));

        File.WriteAllText(Path.Combine(Real, "api.yaml"), Api.Replace("kind: AppDeployment", "kind: AppDeploymnet", StringComparison.Ordinal));
        source.Rescan();

        // The stack is kept with its last good spec (nothing to prune), and the problem names file, document and fix.
        Assert.NotNull(source.Get(key)?.Resource);
        Assert.True(source.IsBroken(Path.Combine(Real, "api.yaml")));
        Assert.Equal(
            ["api.yaml:1: kind: unknown kind \"AppDeploymnet\" for apiVersion skiff.dev/v1alpha1; did you mean AppDeployment?"],
            source.Problems);

        // A fresh process (nothing kept in memory) sees the file as broken too: the reconciler then keeps the stack.
        var fresh = new DirectorySource(Real, NullLogger<DirectorySource>.Instance);
        fresh.Rescan();
        Assert.Null(fresh.Get(key));
        Assert.True(fresh.IsBroken(Path.Combine(Real, "api.yaml")));

        File.Delete(Path.Combine(Real, "api.yaml"));
        source.Rescan();
        Assert.Null(source.Get(key)); // a deleted file is a deleted document: pruned
    }

    [Fact]
    public void A_file_emptied_just_now_keeps_its_stacks_until_its_grace_is_over()
    {
        var file = Path.Combine(Real, "api.yaml");
        File.WriteAllText(file, Api);
        var source = new DirectorySource(Real, NullLogger<DirectorySource>.Instance);
        source.Rescan();
        var key = new ObjectKey("default", "api");

        // A writer that truncates first (`cat new > api.yaml`, a slow copy): the folder is read while the file is empty.
        File.WriteAllText(file, "");
        Assert.Empty(source.Rescan());
        Assert.NotNull(source.Get(key)?.Resource);
        Assert.True(source.IsBroken(file));

        // Still empty once the grace is over: read as it is, and its stack is pruned.
        File.SetLastWriteTimeUtc(file, DateTime.UtcNow - DirectorySource.EmptyGrace - TimeSpan.FromSeconds(1));
        Assert.Equal([key], source.Rescan());
        Assert.Null(source.Get(key));
        Assert.False(source.IsBroken(file));
    }

    private static string Named(string name, string image = "nginx:1.27") =>
        Api.Replace("name: api", $"name: {name}", StringComparison.Ordinal).Replace("nginx:1.27", image, StringComparison.Ordinal);

    /// <summary>Writes <paramref name="text"/> beside <paramref name="file"/> and renames it over it, as editors and tools save atomically.</summary>
    private static void Replace(string file, string text)
    {
        var temporary = Path.Combine(Path.GetDirectoryName(file)!, "." + Path.GetFileName(file) + ".tmp");
        File.WriteAllText(temporary, text);
        File.Move(temporary, file, overwrite: true);
    }

    [Fact]
    public void A_file_renamed_into_place_gives_its_new_and_changed_stacks_and_leaves_the_rest_to_the_full_read()
    {
        var api = Path.Combine(Real, "api.yaml");
        var other = Path.Combine(Real, "other.yaml");
        File.WriteAllText(api, Named("api") + "\n---\n" + Named("worker"));
        File.WriteAllText(other, Named("bot"));
        var source = new DirectorySource(Real, NullLogger<DirectorySource>.Instance);
        source.Rescan();
        ObjectKey Key(string name) => new("default", name);

        // api changes, worker is gone from the file, cron is new, and bot (held by other.yaml) is written here too.
        Replace(api, Named("api", "nginx:1.28") + "\n---\n" + Named("cron") + "\n---\n" + Named("bot", "evil:1"));
        File.Delete(other);
        Assert.Equal([Key("api"), Key("cron")], source.ReadReplaced(api));
        Assert.Equal("nginx:1.28", source.Get(Key("api"))!.Resource!.Spec.App.Image);
        Assert.NotNull(source.Get(Key("cron"))?.Resource);
        // A removal waits for the full read: the file may be one of a burst that moves the document to another file.
        Assert.NotNull(source.Get(Key("worker"))?.Resource);
        Assert.Equal("nginx:1.27", source.Get(Key("bot"))!.Resource!.Spec.App.Image);
        Assert.Equal(other, source.Get(Key("bot"))!.File);

        // Read again unchanged: nothing new. The full read then takes only what the fast path left.
        Assert.Empty(source.ReadReplaced(api));
        Assert.Equal([Key("bot"), Key("worker")], source.Rescan().OrderBy(k => k.Name, StringComparer.Ordinal));
        Assert.Equal(api, source.Get(Key("bot"))!.File);
        Assert.Null(source.Get(Key("worker")));

        // An invalid document in a replaced file is not taken: the full read reports it and keeps what it must.
        Replace(api, Named("api", "nginx:1.28").Replace("image: nginx:1.28", "imgae: nginx:1.29", StringComparison.Ordinal));
        Assert.Empty(source.ReadReplaced(api));
        Assert.Equal("nginx:1.28", source.Get(Key("api"))!.Resource!.Spec.App.Image);
    }

    [Fact]
    public async Task The_watch_takes_a_file_renamed_into_place_at_once_and_a_removal_in_the_same_burst_after_the_quiet_window()
    {
        var api = Path.Combine(Real, "api.yaml");
        var bot = Path.Combine(Real, "bot.yaml");
        File.WriteAllText(api, Named("api"));
        File.WriteAllText(bot, Named("bot"));
        var source = new DirectorySource(Real, NullLogger<DirectorySource>.Instance);
        source.Rescan();
        var reports = new System.Collections.Concurrent.BlockingCollection<IReadOnlyCollection<ObjectKey>>();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var watch = source.WatchAsync(reports.Add, TimeSpan.FromMinutes(10), cts.Token);
        await Task.Delay(200); // the watcher is set up before the writes

        // One burst: the save of api.yaml, then bot.yaml deleted a moment later. Without the fast path both are one
        // report after the quiet window; with it, the saved file is its own report, first.
        Replace(api, Named("api", "nginx:1.28"));
        File.Delete(bot);
        Assert.True(reports.TryTake(out var first, TimeSpan.FromSeconds(30)));
        Assert.Equal([new ObjectKey("default", "api")], first);
        Assert.True(reports.TryTake(out var second, TimeSpan.FromSeconds(30)));
        Assert.Equal([new ObjectKey("default", "bot")], second);
        Assert.Null(source.Get(new ObjectKey("default", "bot")));
        await cts.CancelAsync();
        await watch;
    }

    [Fact]
    public void The_source_reads_through_a_link_under_its_real_path()
    {
        File.WriteAllText(Path.Combine(Real, "api.yaml"), Api);
        Directory.CreateSymbolicLink(Path.Combine(root, "current"), Real);
        var source = new DirectorySource(Path.Combine(root, "current") + "/", NullLogger<DirectorySource>.Instance);
        source.Rescan();
        Assert.Equal(Real, source.Path);
        Assert.Equal(Path.Combine(Real, "api.yaml"), source.Get(new ObjectKey("default", "api"))!.File);
    }
}
