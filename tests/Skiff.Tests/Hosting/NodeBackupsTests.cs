using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Skiff.Api;
using Skiff.Hosting;
using Skiff.IntegrationTests.Infrastructure;
using Skiff.Reconcile;
using Skiff.Tests.Reconcile;

namespace Skiff.Tests.Hosting;

/// <summary>The annotation skiff.dev/backup-now (Kubernetes source): each new value takes one backup, an unchanged one none.</summary>
public sealed class NodeBackupsTests
{
    [Fact]
    public async Task A_new_backup_now_value_triggers_one_backup_and_the_same_value_again_does_not()
    {
        await using var services = new OperatorServices(NullLoggerFactory.Instance);
        var engine = new InMemoryEngine(new FakeTimeProvider());
        var events = new List<string>();
        var backups = new NodeBackups();
        var plain = Resource(null);
        var runnable = backups.Runnable(() => [plain], new Secrets(), new StackContext("local", "src", "kubernetes"), engine,
            new Sink(events), _ => { }, services, () => 85);
        using var stop = new CancellationTokenSource();
        var running = runnable.RunAsync(stop.Token);

        backups.OnUpdate(plain, Resource("1"));
        await Eventually.TrueAsync("one backup attempt", () => { lock (events) { return events.Count == 1; } }, TimeSpan.FromSeconds(10));
        // The in-memory engine has no database: the attempt fails and says so (Warning BackupFailed).
        Assert.StartsWith(Reasons.BackupFailed + ": the database container skiff_prod_api_database is not running", events[0], StringComparison.Ordinal);

        backups.OnUpdate(Resource("1"), Resource("1"));
        backups.OnUpdate(Resource("1"), Resource(null));
        backups.OnUpdate(Resource(null), Resource("2"));
        await Eventually.TrueAsync("a second attempt for the new value", () => { lock (events) { return events.Count == 2; } }, TimeSpan.FromSeconds(10));
        await stop.CancelAsync();
        await running;
        Assert.Equal(2, events.Count);
    }

    private static AppDeployment Resource(string? backupNow) => new()
    {
        Metadata = new k8s.Models.V1ObjectMeta
        {
            Name = "api",
            NamespaceProperty = "prod",
            Annotations = backupNow is null ? null : new Dictionary<string, string> { [NodeBackups.BackupNowAnnotation] = backupNow },
        },
        Spec = new AppDeploymentSpec { Node = "local", App = new AppSpec { Image = "x" }, Database = new DatabaseSpec() },
    };

    private sealed class Sink(List<string> events) : IEventSink
    {
        public void Record(AppDeployment resource, EventKind kind, string reason, string message)
        {
            lock (events)
            {
                events.Add($"{reason}: {message}");
            }
        }
    }

    private sealed class Secrets : ISecretSource
    {
        public Task<IReadOnlyDictionary<string, byte[]>?> GetSecretAsync(string @namespace, string name, CancellationToken ct) =>
            Task.FromResult<IReadOnlyDictionary<string, byte[]>?>(null);

        public Task<DatabaseCredentials> EnsureDatabaseCredentialsAsync(StackNames names, string database, string user, CancellationToken ct) =>
            Task.FromResult(new DatabaseCredentials(user, "pw", database));

        public Task DeleteDatabaseCredentialsAsync(StackNames names, CancellationToken ct) => Task.CompletedTask;
    }
}
