using k8s.Models;
using Skiff.Api;
using Skiff.IntegrationTests.Infrastructure;
using Skiff.Reconcile;
using Skiff.Sources.Directory;

namespace Skiff.IntegrationTests.FolderSource;

/// <summary>A Secret kept as an age-encrypted file in the folder, through the real <c>skiff run</c>, <c>age</c> and engine.</summary>
public sealed class AgeSecretTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(3);

    [Fact]
    public async Task An_age_encrypted_secret_reaches_the_app_with_the_key_and_without_it_only_its_stack_stalls()
    {
        await using var w = new FolderWorkspace();
        var keyFile = Path.Combine(w.Root, "age.key");
        var recipient = AgeFiles.NewKey(keyFile);
        AgeFiles.Encrypt(recipient, $"# the bot's token\n{Stacks.BotTokenKey}={Stacks.BotToken}\n", Path.Combine(w.Resources, "bot.env.age"));
        var bot = Stacks.Stateless("bot", w.Namespace);
        bot.Spec.App.Env =
        [
            new EnvVar { Name = "TOKEN", ValueFrom = new EnvVarSource { SecretKeyRef = new SecretKeySelector { Name = Stacks.BotSecretName, Key = Stacks.BotTokenKey } } },
        ];
        var secret = new V1Secret
        {
            ApiVersion = "v1",
            Kind = "Secret",
            Metadata = new V1ObjectMeta
            {
                Name = Stacks.BotSecretName,
                NamespaceProperty = w.Namespace,
                Annotations = new Dictionary<string, string> { [SecretFiles.EnvFileAnnotation] = "bot.env.age" },
            },
        };
        w.Write("bot.yaml", Stacks.Yaml(bot, secret));
        w.Write("web.yaml", Stacks.Yaml(Stacks.Stateless("web", w.Namespace)));
        var store = new Skiff.State.StateStore(w.StateDir);

        // No key: the bot's stack stalls, saying which file and which flag; the web stack in the same folder is Ready.
        var (exit, stdout, stderr) = await SkiffProcess.RunAsync(Timeout, w.RunOnceArgs());

        Assert.True(exit == 1, $"exit {exit}\n{stdout}\n{stderr}");
        Assert.Matches($@"{w.Namespace}\s+web\s+local\s+True\s+Ready", stdout);
        Assert.Contains("SecretNotDecrypted", stdout, StringComparison.Ordinal);
        var stalled = store.Read(w.Namespace, "bot")!.Status!.Conditions!.Single(c => c.Type == "Stalled");
        Assert.Equal(("True", Reasons.SecretNotDecrypted), (stalled.Status, stalled.Reason));
        Assert.Contains("\"bot.env.age\"", stalled.Message, StringComparison.Ordinal);
        Assert.Contains("pass --age-key-file", stalled.Message, StringComparison.Ordinal);
        Assert.Contains(store.ReadEvents(w.Namespace, "bot"), e => e is { Type: "Warning", Reason: Reasons.SecretNotDecrypted });
        Assert.Empty(await w.ContainersAsync("bot"));
        Assert.Single(await w.ContainersAsync("web"));

        // skiff plan reads the file too: blocked without the key, planned with it (the same flag).
        string[] plan = ["plan", "--path", w.Resources, "--node", "local", "--state-dir", w.StateDir];
        var blocked = await SkiffProcess.RunAsync(Timeout, plan);
        Assert.Contains("blocked: ", blocked.Stdout, StringComparison.Ordinal);
        Assert.Contains("is encrypted with age and Skiff has no key", blocked.Stdout, StringComparison.Ordinal);
        var planned = await SkiffProcess.RunAsync(Timeout, [.. plan, "--age-key-file", keyFile]);
        Assert.True(planned.Exit == 0, planned.Stdout + planned.Stderr);
        Assert.DoesNotContain("blocked", planned.Stdout, StringComparison.Ordinal);
        Assert.Contains("roll out revision 1 (", planned.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain(Stacks.BotToken, planned.Stdout + planned.Stderr, StringComparison.Ordinal);

        // With the key: decrypted, the value reaches the app's environment, and no output holds it.
        (exit, stdout, stderr) = await SkiffProcess.RunAsync(Timeout, [.. w.RunOnceArgs().Select(a => a == "warning" ? "information" : a), "--age-key-file", keyFile]);

        Assert.True(exit == 0, $"exit {exit}\n{stdout}\n{stderr}");
        Assert.Matches($@"{w.Namespace}\s+bot\s+local\s+True\s+Ready", stdout);
        Assert.Matches($@"{w.Namespace}\s+web\s+local\s+True\s+Ready", stdout);
        var app = (await w.ContainersAsync("bot")).Single(c => c.Component == StackNames.AppComponent);
        var env = (await w.Engine.Client.Containers.InspectContainerAsync(app.Id)).Config!.Env!;
        Assert.Contains($"TOKEN={Stacks.BotToken}", env);
        Assert.Contains($"with the key in {keyFile} (recipient {recipient})", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain(Stacks.BotToken, stdout + stderr, StringComparison.Ordinal);
        Assert.DoesNotContain(File.ReadAllText(keyFile).Split('\n').Single(l => l.StartsWith("AGE-SECRET-KEY-", StringComparison.Ordinal)), stdout + stderr, StringComparison.Ordinal);
        Assert.DoesNotContain(Stacks.BotToken, string.Join('\n', store.ReadEvents(w.Namespace, "bot").Select(e => e.Message)), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_key_file_that_does_not_exist_given_by_flag_or_SKIFF_AGE_KEY_FILE_is_a_usage_error_and_the_kubernetes_source_refuses_the_flag()
    {
        await using var w = new FolderWorkspace();
        var missing = Path.Combine(w.Root, "nope.key");

        var (exit, _, stderr) = await SkiffProcess.RunAsync(Timeout, [.. w.RunOnceArgs(), "--age-key-file", missing]);
        Assert.Equal(2, exit);
        Assert.Contains($"--age-key-file: {missing} does not exist: create it with age-keygen -o {missing}", stderr, StringComparison.Ordinal);

        await using (var fromEnvironment = SkiffProcess.StartWith(new Dictionary<string, string> { ["SKIFF_AGE_KEY_FILE"] = missing }, w.RunOnceArgs()))
        {
            Assert.Equal(2, await fromEnvironment.WaitAsync(Timeout));
            Assert.Contains($"--age-key-file: {missing} does not exist", fromEnvironment.Stderr, StringComparison.Ordinal);
        }

        var kube = await SkiffProcess.RunAsync(Timeout, "run", "--source", "kubernetes", "--node", "local", "--age-key-file", missing);
        Assert.Equal(2, kube.Exit);
        Assert.Contains("--age-key-file: only with the directory and git sources", kube.Stderr, StringComparison.Ordinal);
        Assert.Empty(await w.ContainersAsync());
    }
}
