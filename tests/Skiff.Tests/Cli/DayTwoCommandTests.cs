using Skiff.Api;
using Skiff.Cli;
using Skiff.Hosting;
using Skiff.Reconcile;
using Skiff.Sources.Directory;
using Skiff.State;

namespace Skiff.Tests.Cli;

/// <summary>The day-two commands' parsing, choices and formatting (issue 20); the real engine and process are in the integration tests.</summary>
public sealed class DayTwoCommandTests : IDisposable
{
    private static readonly DateTimeOffset Now = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);
    private readonly string root = Path.Combine(Path.GetTempPath(), "skiff-daytwo-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(root))
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Theory]
    [InlineData("45s", 45)]
    [InlineData("10m", 600)]
    [InlineData("1h30m", 5400)]
    [InlineData("2d", 172800)]
    public void Durations_parse_as_the_flags_take_them(string text, int seconds)
    {
        Assert.True(Durations.TryParse(text, out var d));
        Assert.Equal(TimeSpan.FromSeconds(seconds), d);
    }

    [Theory]
    [InlineData("")]
    [InlineData("10")]
    [InlineData("5 m")]
    [InlineData("-5m")]
    [InlineData("soon")]
    public void Not_a_duration_is_refused(string text) => Assert.False(Durations.TryParse(text, out _));

    [Fact]
    public void Since_is_a_duration_back_from_now_or_a_time()
    {
        Assert.Equal(Now.AddMinutes(-10).ToUnixTimeSeconds(), LogsCommand.ParseSince("10m", Now));
        Assert.Equal(new DateTimeOffset(2026, 1, 2, 15, 4, 5, TimeSpan.Zero).ToUnixTimeSeconds(), LogsCommand.ParseSince("2026-01-02T15:04:05Z", Now));
        Assert.Null(LogsCommand.ParseSince("yesterday", Now));
    }

    [Theory]
    [InlineData(new[] { "logs", "api", "-c", "web" }, "skiff logs: --component web: unknown component; use app, database, cache or migration")]
    [InlineData(new[] { "logs", "api", "--since", "yesterday" }, "skiff logs: --since yesterday: want a duration like 10m, 1h30m or 45s, or a time like 2026-01-02T15:04:05Z")]
    [InlineData(new[] { "logs", "api", "--tail", "-3" }, "skiff logs: --tail -3: want a whole number of lines, 0 or more")]
    [InlineData(new[] { "exec", "api" }, "skiff exec: COMMAND is required")]
    [InlineData(new[] { "wait", "api", "--timeout", "soon" }, "skiff wait: --timeout soon: want a duration like 90s, 5m or 1h")]
    [InlineData(new[] { "wait", "api", "--for", "Deleted" }, "skiff wait: --for Deleted: unknown condition; use Ready (or condition=Ready)")]
    [InlineData(new[] { "rollback", "api", "--to-revision", "two" }, "skiff rollback: --to-revision two: want a revision number, 1 or more (skiff status NAME lists the history)")]
    public async Task A_bad_flag_of_a_day_two_command_is_a_usage_error_naming_it(string[] args, string expected)
    {
        using var stdout = new StringWriter { NewLine = "\n" };
        using var stderr = new StringWriter { NewLine = "\n" };
        var exit = await SkiffCommandLine.InvokeAsync(SkiffCommandLine.Build().Parse(args), stdout, stderr);

        Assert.Equal(ExitCodes.UsageOrIo, exit);
        Assert.Equal(expected, stderr.ToString().Split('\n')[0]);
    }

    [Fact]
    public void The_live_revisions_app_is_picked_and_previous_the_one_before()
    {
        IReadOnlyList<ObservedContainer> containers =
        [
            Container("app", 3, running: false, "rolled back"),
            Container("app", 2, running: true, "live"),
            Container("app", 1, running: false, "old"),
            Container("database", null, running: true, "db"),
            Container("migrate", 3, running: false, "migration 3"),
        ];

        Assert.Equal("live", StackContainers.Pick(containers, "app", liveRevision: 2, previous: false, out _)!.Name);
        Assert.Equal("old", StackContainers.Pick(containers, "app", liveRevision: 2, previous: true, out _)!.Name);
        // Without a state folder: the newest running revision.
        Assert.Equal("live", StackContainers.Pick(containers, "app", liveRevision: null, previous: false, out _)!.Name);
        Assert.Equal("migration 3", StackContainers.Pick(containers, "migration", liveRevision: null, previous: false, out _)!.Name);
        Assert.Equal("db", StackContainers.Pick(containers, "database", liveRevision: 2, previous: false, out _)!.Name);

        Assert.Null(StackContainers.Pick(containers, "database", 2, previous: true, out var problem));
        Assert.Contains("--previous", problem);
        Assert.Null(StackContainers.Pick(containers, "cache", 2, previous: false, out problem));
        Assert.Equal("it has no cache container", problem);
        Assert.Null(StackContainers.Pick(containers, "app", 1, previous: true, out problem));
        Assert.Contains("no app container of a revision before 1", problem);
    }

    [Fact]
    public void The_values_to_mask_are_the_secret_variables_and_the_password_inside_a_url()
    {
        var spec = new AppDeploymentSpec
        {
            App = new AppSpec { Env = [new EnvVar { Name = "TOKEN_FROM_SECRET", ValueFrom = new EnvVarSource() }, new EnvVar { Name = "MODE", Value = "production" }] },
        };
        string[] env =
        [
            "TOKEN_FROM_SECRET=bot-token-123",
            "MODE=production",
            "PORT=8080",
            "DATABASE_URL=postgres://app:p%40ss-word@database:5432/app",
            "POSTGRES_PASSWORD=p@ss-word",
            "STRIPE_API_KEY=sk_live_abc",
            "SHORT_SECRET=abc",
        ];

        var values = StackContainers.SecretValues(env, spec);

        Assert.Contains("bot-token-123", values);
        Assert.Contains("postgres://app:p%40ss-word@database:5432/app", values);
        Assert.Contains("p%40ss-word", values);
        Assert.Contains("p@ss-word", values);
        Assert.Contains("sk_live_abc", values);
        Assert.DoesNotContain("production", values);
        Assert.DoesNotContain("8080", values);
        // Too short to mask without masking everything.
        Assert.DoesNotContain("abc", values);
    }

    [Fact]
    public void Output_is_masked_even_when_a_secret_is_split_between_two_reads()
    {
        using var stdout = new StringWriter { NewLine = "\n" };
        using var stderr = new StringWriter { NewLine = "\n" };
        var output = new MaskedOutput(stdout, stderr, ["hunter22-secret"]);

        output.Add("connecting with hunter", toErr: false);
        output.Add("22-secret now\nnext line wi", toErr: false);
        output.Add("failed: hunter22-secret\n", toErr: true);
        output.Add("thout end", toErr: false);
        output.Flush();

        Assert.Equal("connecting with ****** now\nnext line without end", stdout.ToString());
        Assert.Equal("failed: ******\n", stderr.ToString());
    }

    [Fact]
    public void Wait_answers_ready_only_for_the_current_generation_and_failed_when_stalled()
    {
        Assert.Equal(WaitState.Waiting, WaitCommand.Judge(null, null, null).State);

        var record = Record(generation: 2, observed: 2, ready: true);
        var verdict = WaitCommand.Judge(record, null, null);
        Assert.Equal(WaitState.Ready, verdict.State);
        Assert.Equal("Ready, revision 2 (app:2): Ready: revision 2 is ready", verdict.Line);

        // The folder's document changed and skiff run has not read it yet.
        Assert.Equal(WaitState.Waiting, WaitCommand.Judge(record, "another-hash", null).State);
        Assert.Equal(WaitState.Ready, WaitCommand.Judge(record, record.DocumentHash, null).State);
        // Ready for an older generation.
        Assert.Equal(WaitState.Waiting, WaitCommand.Judge(Record(generation: 3, observed: 2, ready: true), null, null).State);
        // Another image than CI pushed.
        Assert.Equal(WaitState.Waiting, WaitCommand.Judge(record, null, "app:3").State);
        Assert.Equal(WaitState.Ready, WaitCommand.Judge(record, null, "app:2").State);

        var failed = Record(generation: 3, observed: 3, ready: false);
        Conditions.Summarize(failed.Status!, Summary.Stalled, Reasons.MigrationFailed, "migration exited 1", 3, Now);
        failed.Status!.History!.Add(new RevisionRecord { Revision = 3, Image = "app:3", Outcome = Outcomes.RolledBack });
        verdict = WaitCommand.Judge(failed, null, null);
        Assert.Equal(WaitState.Failed, verdict.State);
        Assert.Contains("MigrationFailed: migration exited 1", verdict.Line);
        Assert.Equal(WaitState.Failed, WaitCommand.Judge(failed, null, "app:3").State);
    }

    [Fact]
    public async Task Wait_times_out_with_exit_1_and_says_why()
    {
        var store = new StateStore(root);
        store.EnsureCreated();
        store.Write(Record(generation: 3, observed: 2, ready: true));
        using var stderr = new StringWriter { NewLine = "\n" };

        var exit = await WaitCommand.RunAsync(store, "prod", "api", TimeSpan.FromMilliseconds(300), null, stderr, terminal: false, CancellationToken.None);

        Assert.Equal(ExitCodes.NotOk, exit);
        var lines = stderr.ToString().TrimEnd('\n').Split('\n');
        Assert.Equal(2, lines.Length);
        Assert.EndsWith("prod/api: Ready, revision 2 (app:2): Ready: revision 2 is ready", lines[0]);
        Assert.Equal("skiff wait: prod/api was not Ready within 0s; skiff status api -n prod shows why", lines[1]);
    }

    [Fact]
    public void Status_watch_prints_a_line_only_for_what_changed()
    {
        var seen = new Dictionary<string, string>();
        var api = Record(generation: 2, observed: 2, ready: true);

        Assert.Single(StatusWatch.Changes([api], seen));
        Assert.Empty(StatusWatch.Changes([api], seen));
        Conditions.Summarize(api.Status!, Summary.Progressing, Reasons.RolloutInProgress, "Rolling out revision 3 (app:3)", 3, Now);
        var change = Assert.Single(StatusWatch.Changes([api], seen));
        Assert.Equal("prod/api: Ready, revision 2 (app:2): RolloutInProgress: Rolling out revision 3 (app:3)", change);
    }

    [Fact]
    public void Rollback_goes_to_the_last_good_revision_with_another_image_or_the_one_named()
    {
        var status = new AppDeploymentStatus
        {
            Revision = 4,
            Image = "app:3",
            History =
            [
                new RevisionRecord { Revision = 1, Image = "app:1", Outcome = Outcomes.Succeeded },
                new RevisionRecord { Revision = 2, Image = "app:2", Outcome = Outcomes.Succeeded },
                new RevisionRecord { Revision = 3, Image = "app:bad", Outcome = Outcomes.RolledBack },
                new RevisionRecord { Revision = 4, Image = "app:3", Outcome = Outcomes.Succeeded },
            ],
        };

        Assert.Equal(2, RolloutRequests.Target(status, null, out _)!.Revision);
        Assert.Equal(3, RolloutRequests.Target(status, 3, out _)!.Revision);
        Assert.Null(RolloutRequests.Target(status, 9, out var problem));
        Assert.Equal("revision 9 is not in the history (it keeps revisions 1, 2, 3, 4; spec.rollout.revisionHistoryLimit keeps more)", problem);
        Assert.Null(RolloutRequests.Target(new AppDeploymentStatus { Revision = 1, Image = "app:1", History = [status.History[0]] }, null, out problem));
        Assert.Contains("--to-revision", problem);
    }

    [Fact]
    public void Restarted_at_changes_the_revision_hash_and_nothing_else_does()
    {
        var resource = new AppDeployment { Metadata = new() { Name = "api", NamespaceProperty = "prod" }, Spec = new AppDeploymentSpec { Node = "n", App = new AppSpec { Image = "app:1" } } };
        var plain = DesiredStack.Build(resource, ResolvedInputs.None, new StackContext("n", "s", "d")).Hash;
        resource.Metadata.Annotations = new Dictionary<string, string> { [RolloutRequests.RestartedAt] = "2026-03-01T12:00:00Z" };
        var restarted = DesiredStack.Build(resource, ResolvedInputs.None, new StackContext("n", "s", "d")).Hash;
        resource.Metadata.Annotations[RolloutRequests.RestartedAt] = "2026-03-01T12:05:00Z";
        var again = DesiredStack.Build(resource, ResolvedInputs.None, new StackContext("n", "s", "d")).Hash;

        Assert.Equal(SpecHash.Compute(resource.Spec), plain);
        Assert.NotEqual(plain, restarted);
        Assert.NotEqual(restarted, again);
    }

    [Fact]
    public void The_rollback_to_annotation_runs_that_revisions_image_while_it_is_there()
    {
        var resource = new AppDeployment
        {
            Metadata = new() { Name = "api", NamespaceProperty = "prod" },
            Spec = new AppDeploymentSpec { Node = "n", App = new AppSpec { Image = "app:3" } },
            Status = new AppDeploymentStatus { Revision = 3, Image = "app:3", History = [new RevisionRecord { Revision = 2, Image = "app:2", Outcome = Outcomes.Succeeded }] },
        };
        Assert.Same(resource, RolloutRequests.ApplyRollbackAnnotation(resource, out _));

        resource.Metadata.Annotations = new Dictionary<string, string> { [RolloutRequests.RollbackTo] = "2" };
        var rolledBack = RolloutRequests.ApplyRollbackAnnotation(resource, out _)!;
        Assert.Equal("app:2", rolledBack.Spec.App.Image);
        Assert.Equal("app:3", resource.Spec.App.Image);
        Assert.NotEqual(SpecHash.Compute(rolledBack.Spec), DesiredStack.Build(rolledBack, ResolvedInputs.None, new StackContext("n", "s", "d")).Hash);

        resource.Metadata.Annotations[RolloutRequests.RollbackTo] = "7";
        Assert.Null(RolloutRequests.ApplyRollbackAnnotation(resource, out var problem));
        Assert.StartsWith("revision 7 is not in the history (it keeps revisions 2;", problem);
        resource.Metadata.Annotations[RolloutRequests.RollbackTo] = "two";
        Assert.Null(RolloutRequests.ApplyRollbackAnnotation(resource, out problem));
        Assert.StartsWith("\"two\" is not a revision number", problem);
    }

    [Fact]
    public void A_rollback_request_becomes_the_records_override_until_the_document_changes()
    {
        var store = new StateStore(root);
        store.EnsureCreated();
        var record = Record(generation: 2, observed: 2, ready: true);
        record.Status!.History!.Insert(0, new RevisionRecord { Revision = 1, Image = "app:1", Outcome = Outcomes.Succeeded });
        store.Write(record);
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        Assert.Equal(ExitCodes.Ok, RolloutCommands.Request(store, "prod", "api", RolloutRequest.Rollback, null, stdout, stderr, Now));
        Assert.Contains("roll back prod/api to revision 1 (app:1)", stdout.ToString());
        Assert.Contains("no skiff run is using", stdout.ToString());
        Assert.Equal(1, store.ReadRequest("prod", "api")!.Revision);

        var document = new AppDeployment { Metadata = new() { Name = "api", NamespaceProperty = "prod" }, Spec = new AppDeploymentSpec { Node = "n", App = new AppSpec { Image = "app:2" } } };
        var effective = FolderRequests.Apply(store, record, document, "doc-hash", Now);

        Assert.Equal("app:1", effective.Spec.App.Image);
        Assert.Equal("app:2", document.Spec.App.Image);
        Assert.Equal("1", effective.Metadata.Annotations[RolloutRequests.RollbackTo]);
        Assert.True(effective.Metadata.Annotations.ContainsKey(RolloutRequests.RestartedAt));
        Assert.Equal(3, record.Generation);
        Assert.Null(store.ReadRequest("prod", "api"));
        Assert.Equal(Reasons.RollbackRequested, store.ReadEvents("prod", "api").Last().Reason);
        // Taken once: read again, the same override (no second rollout).
        Assert.Equal(effective.Metadata.Annotations[RolloutRequests.RestartedAt], FolderRequests.Apply(store, record, document, "doc-hash", Now).Metadata.Annotations[RolloutRequests.RestartedAt]);

        // A restart keeps the rolled-back-to image; an edit of the document drops both.
        RolloutCommands.Request(store, "prod", "api", RolloutRequest.Restart, null, stdout, stderr, Now.AddMinutes(1));
        Assert.Equal("app:1", FolderRequests.Apply(store, record, document, "doc-hash", Now).Spec.App.Image);
        var edited = FolderRequests.Apply(store, record, document, "edited-hash", Now);
        Assert.Same(document, edited);
        Assert.Null(store.Read("prod", "api")!.Override);
    }

    [Fact]
    public void Restart_and_rollback_refuse_a_stack_the_state_folder_does_not_have_or_the_kubernetes_source_serves()
    {
        var store = new StateStore(root);
        store.EnsureCreated();
        var mirrored = Record(generation: 1, observed: 1, ready: true);
        mirrored.Name = "kube";
        mirrored.Source = "kubernetes-0123";
        store.Write(mirrored);
        using var stdout = new StringWriter();
        using var stderr = new StringWriter { NewLine = "\n" };

        Assert.Equal(ExitCodes.NotOk, RolloutCommands.Request(store, "prod", "nope", RolloutRequest.Restart, null, stdout, stderr, Now));
        Assert.Equal(ExitCodes.NotOk, RolloutCommands.Request(store, "prod", "kube", RolloutRequest.Restart, null, stdout, stderr, Now));
        Assert.Contains("kubectl annotate appdeployment kube -n prod skiff.dev/restartedAt=", stderr.ToString());
        Assert.Equal(ExitCodes.UsageOrIo, RolloutCommands.Request(new StateStore(Path.Combine(root, "missing")), "prod", "api", RolloutRequest.Restart, null, stdout, stderr, Now));
        Assert.Equal("", stdout.ToString());
    }

    [Theory]
    [InlineData("bash", "complete -o default -F _skiff_complete skiff")]
    [InlineData("zsh", "compdef _skiff skiff")]
    public async Task Completion_prints_a_script_that_asks_skiff_what_fits(string shell, string registers)
    {
        var (exit, stdout, _) = await InvokeAsync("completion", shell);

        Assert.Equal(ExitCodes.Ok, exit);
        Assert.Contains(registers, stdout);
        Assert.Contains("skiff \"[suggest:", stdout);
    }

    [Fact]
    public async Task The_suggest_directive_completes_commands_flags_and_components()
    {
        Assert.Contains("rollback", (await InvokeAsync("[suggest:10]", "skiff roll")).Stdout.Split('\n'));
        Assert.Contains("--previous", (await InvokeAsync("[suggest:17]", "skiff logs api --")).Stdout.Split('\n'));
        var components = (await InvokeAsync("[suggest:19]", "skiff logs api -c d")).Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(["database"], components);
        Assert.Equal(ExitCodes.UsageOrIo, (await InvokeAsync("completion", "fish")).Exit);
    }

    private static async Task<(int Exit, string Stdout, string Stderr)> InvokeAsync(params string[] args)
    {
        using var stdout = new StringWriter { NewLine = "\n" };
        using var stderr = new StringWriter { NewLine = "\n" };
        var exit = await SkiffCommandLine.InvokeAsync(SkiffCommandLine.Build().Parse(args), stdout, stderr);
        return (exit, stdout.ToString(), stderr.ToString());
    }

    private static StatusRecord Record(long generation, long observed, bool ready)
    {
        var status = new AppDeploymentStatus
        {
            Phase = ready ? Phases.Ready : Phases.Degraded,
            Revision = 2,
            Image = "app:2",
            History = [new RevisionRecord { Revision = 2, Image = "app:2", Outcome = Outcomes.Succeeded }],
        };
        Conditions.Summarize(status, ready ? Summary.Ready : Summary.NotReady, Reasons.Ready, "revision 2 is ready", observed, Now);
        return new StatusRecord { Namespace = "prod", Name = "api", Generation = generation, DocumentHash = "doc-hash", Status = status, CreatedAt = Now };
    }

    private static ObservedContainer Container(string component, long? revision, bool running, string name)
    {
        var labels = new Dictionary<string, string> { [SkiffLabels.Component] = component };
        if (revision is { } r)
        {
            labels[SkiffLabels.Revision] = r.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        return new ObservedContainer("id-" + name, name, "img", "sha256:x", labels, running ? "running" : "exited", null, 0, 0, Now, Now, new Dictionary<string, string>());
    }
}
