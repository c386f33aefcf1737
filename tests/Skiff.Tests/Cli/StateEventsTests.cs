using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Skiff.Api;
using Skiff.Observability;
using Skiff.Reconcile;
using Skiff.Sources.Directory;
using Skiff.State;

namespace Skiff.Tests.Cli;

/// <summary>The folder source's Events in the state folder: what <c>skiff status NAME</c> shows.</summary>
public sealed class StateEventsTests : IDisposable
{
    private static readonly DateTimeOffset T0 = new(2025, 3, 1, 12, 0, 0, TimeSpan.Zero);
    private readonly string root = Path.Combine(Path.GetTempPath(), "skiff-events-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(root))
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public void The_same_type_reason_and_message_again_counts_up_as_kube_aggregates_events()
    {
        var store = new StateStore(root);
        store.AppendEvent("prod", "api", "Normal", "RolloutStarted", "revision 1", T0);
        store.AppendEvent("prod", "api", "Warning", "HealthCheckFailed", "GET /healthz: 500", T0.AddMinutes(1));
        store.AppendEvent("prod", "api", "Warning", "HealthCheckFailed", "GET /healthz: 500", T0.AddMinutes(3));
        store.AppendEvent("prod", "api", "Normal", "RolloutStarted", "revision 2", T0.AddMinutes(4));

        var events = store.ReadEvents("prod", "api");
        Assert.Equal(["revision 1", "GET /healthz: 500", "revision 2"], events.Select(e => e.Message));
        var health = events[1];
        Assert.Equal((2, T0.AddMinutes(1), T0.AddMinutes(3)), (health.Count, health.FirstTimestamp, health.LastTimestamp));
        Assert.Empty(store.ReadEvents("prod", "other"));

        // Happening again moves it last (ordered by lastTimestamp), as describe lists them.
        store.AppendEvent("prod", "api", "Normal", "RolloutStarted", "revision 1", T0.AddMinutes(5));
        Assert.Equal(["GET /healthz: 500", "revision 2", "revision 1"], store.ReadEvents("prod", "api").Select(e => e.Message));
    }

    [Fact]
    public void Only_the_last_events_are_kept_written_atomically_and_forgotten_with_the_resource()
    {
        var store = new StateStore(root);
        for (var i = 0; i < StateStore.MaxEvents + 5; i++)
        {
            store.AppendEvent("prod", "api", "Normal", "Reason", $"message {i}", T0.AddSeconds(i));
        }

        var events = store.ReadEvents("prod", "api");
        Assert.Equal(StateStore.MaxEvents, events.Count);
        Assert.Equal("message 5", events[0].Message);
        Assert.Equal($"message {StateStore.MaxEvents + 4}", events[^1].Message);
        Assert.Equal(["prod_api.json"], Directory.GetFiles(Path.Combine(root, "events")).Select(Path.GetFileName));

        store.Delete("prod", "api");
        Assert.Empty(store.ReadEvents("prod", "api"));
    }

    [Fact]
    public void A_known_secret_value_never_reaches_the_events_file()
    {
        SecretRedactor.Shared.Register("s3cr3t-events-value");
        var store = new StateStore(root);
        store.AppendEvent("prod", "api", "Warning", "MigrationFailed", "psql: password s3cr3t-events-value rejected", T0);

        Assert.DoesNotContain("s3cr3t-events-value", File.ReadAllText(Path.Combine(root, "events", "prod_api.json")), StringComparison.Ordinal);
    }

    [Fact]
    public void The_folder_sources_event_sink_logs_and_keeps_each_event()
    {
        var store = new StateStore(root);
        var sink = new LoggingEventSink(NullLogger<LoggingEventSink>.Instance, store, new FakeTimeProvider(T0));
        var resource = new AppDeployment { Metadata = new() { Name = "bot", NamespaceProperty = "chat" } };

        sink.Record(resource, EventKind.Normal, "RolloutSucceeded", "revision 1 is live");
        sink.Record(resource, EventKind.Warning, "HealthCheckFailed", "unhealthy");

        var events = store.ReadEvents("chat", "bot");
        Assert.Equal([("Normal", "RolloutSucceeded"), ("Warning", "HealthCheckFailed")], events.Select(e => (e.Type, e.Reason)));
        Assert.All(events, e => Assert.Equal(T0, e.LastTimestamp));
    }
}
