using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Prometheus;
using Skiff.IntegrationTests.FolderSource;
using Skiff.IntegrationTests.GitSource;
using Skiff.Reconcile;
using Skiff.Runtime;
using Skiff.Sources.Directory;
using Skiff.Sources.Git;

namespace Skiff.Tests.Sources;

/// <summary>Secret documents whose values live in files beside them, plain or encrypted with the real <c>age</c>.</summary>
public sealed class SecretFilesTests : IDisposable
{
    private const string Token = "tok-3f9a-very-secret";

    private readonly string root = Path.Combine(Path.GetTempPath(), "skiff-ut-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4)));

    public SecretFilesTests()
    {
        Directory.CreateDirectory(Path.Combine(root, "keys"));
        Directory.CreateDirectory(Path.Combine(root, "resources", "prod"));
    }

    private string Resources => Path.Combine(root, "resources");

    public void Dispose() => Directory.Delete(root, recursive: true);

    private static string Secret(string name, string annotations, string extra = "") => $"""
        apiVersion: v1
        kind: Secret
        metadata:
          name: {name}
          annotations:
        {annotations}
        {extra}
        """;

    private void Write(string file, string text) => File.WriteAllText(Path.Combine(Resources, file), text);

    private DirectorySource Source(AgeCli? age = null)
    {
        var source = new DirectorySource(Resources, NullLogger<DirectorySource>.Instance, age: age);
        source.Rescan();
        return source;
    }

    private (AgeCli Age, string Recipient) Key(string name = "host.key")
    {
        var file = Path.Combine(root, "keys", name);
        var recipient = AgeFiles.NewKey(file);
        return (new AgeCli(file, TimeSpan.FromSeconds(30)), recipient);
    }

    private static string Value(IReadOnlyDictionary<string, byte[]> data, string key) => Encoding.UTF8.GetString(data[key]);

    private static SecretUnreadableException Unreadable(DirectorySource source, string name) =>
        Assert.Throws<SecretUnreadableException>(() => source.GetSecret("default", name));

    [Fact]
    public void An_env_file_is_read_as_kubectl_reads_one()
    {
        var text = "\uFEFF# the bot\n\ntoken=a=b\r\n  QUOTED=\"kept\"\nempty=\n";
        var values = SecretFiles.ParseEnvFile(Encoding.UTF8.GetBytes(text), out var problem);
        Assert.Null(problem);
        Assert.Equal(["QUOTED", "empty", "token"], values.Keys.Order(StringComparer.Ordinal));
        Assert.Equal("a=b", Encoding.UTF8.GetString(values["token"]));
        Assert.Equal("\"kept\"", Encoding.UTF8.GetString(values["QUOTED"]));
        Assert.Equal("", Encoding.UTF8.GetString(values["empty"]));
    }

    [Theory]
    [InlineData("ok=1\n" + Token + "\n", "line 2: expected KEY=VALUE")]
    [InlineData("ok=1\n=" + Token + "\n", "line 2: expected KEY=VALUE")]
    [InlineData("bad key " + Token + "=1\n", "line 1: the name before '=' must be letters, digits, '-', '_' and '.'")]
    [InlineData("a=1\na=" + Token + "\n", "line 2: key \"a\" is given twice")]
    public void A_malformed_env_file_names_the_line_and_never_quotes_it(string text, string expected)
    {
        SecretFiles.ParseEnvFile(Encoding.UTF8.GetBytes(text), out var problem);
        Assert.Equal(expected, problem);
        Assert.DoesNotContain(Token, problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Plain_files_beside_the_document_give_values_and_inline_data_stays()
    {
        Write("prod/bot.yaml", Secret("bot", """
                skiff.dev/from-env-file: bot.env, more.env
                skiff.dev/from-file: "tls.crt, ca=certs/ca.pem"
            """, "stringData: { inline: here }"));
        Write("prod/bot.env", "token=" + Token + "\n");
        Write("prod/more.env", "user=bot\n");
        Directory.CreateDirectory(Path.Combine(Resources, "prod", "certs"));
        Write("prod/tls.crt", "CERT");
        Write("prod/certs/ca.pem", "CA\n");

        var data = Source().GetSecret("default", "bot")!;

        Assert.Equal(["ca", "inline", "tls.crt", "token", "user"], data.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(Token, Value(data, "token"));
        Assert.Equal("CERT", Value(data, "tls.crt"));
        Assert.Equal("CA\n", Value(data, "ca"));
        Assert.Equal("here", Value(data, "inline"));
    }

    [Theory]
    [InlineData("skiff.dev/from-env-file: missing.env", "skiff.dev/from-env-file \"missing.env\": no such file: add it beside the document")]
    [InlineData("skiff.dev/from-env-file: ../outside.env", "skiff.dev/from-env-file \"../outside.env\": is outside the folder Skiff reads")]
    [InlineData("skiff.dev/from-env-file: /etc/passwd", "skiff.dev/from-env-file \"/etc/passwd\": must be a path relative to the document's file")]
    [InlineData("skiff.dev/from-file: link", "skiff.dev/from-file \"link\": is outside the folder Skiff reads")]
    [InlineData("skiff.dev/from-file: \"a.txt,\"", "skiff.dev/from-file \"\": write [KEY=]FILE")]
    [InlineData("skiff.dev/from-file: \"bad key=a.txt\"", "the key \"bad key\" must be letters, digits, '-', '_' and '.'")]
    [InlineData("skiff.dev/from-file: \"token=a.txt\"", "key \"token\" is given by the document's data/stringData already; give each key in one place")]
    public void A_file_that_is_missing_outside_the_folder_or_clashing_is_SecretNotFound_naming_document_and_file(string annotation, string expected)
    {
        File.WriteAllText(Path.Combine(root, "outside.env"), "token=" + Token);
        File.CreateSymbolicLink(Path.Combine(Resources, "link"), Path.Combine(root, "outside.env"));
        Write("a.txt", "A");
        Write("bot.yaml", Secret("bot", "    " + annotation, "stringData: { token: inline }"));
        Write("other.yaml", Secret("other", "    x: y", "stringData: { key: fine }"));

        var source = Source();
        var e = Unreadable(source, "bot");

        Assert.Equal(Reasons.SecretNotFound, e.Reason);
        Assert.StartsWith("Secret \"bot\" (bot.yaml:1): ", e.Message, StringComparison.Ordinal);
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(Token, e.Message, StringComparison.Ordinal);
        // Another Secret of the folder is not affected.
        Assert.Equal("fine", Value(source.GetSecret("default", "other")!, "key"));
    }

    [Fact]
    public void An_age_file_is_decrypted_with_the_key_and_only_ciphertext_is_in_the_folder()
    {
        var (age, recipient) = Key();
        AgeFiles.Encrypt(recipient, "token=" + Token + "\n", Path.Combine(Resources, "prod", "bot.env.age"));
        AgeFiles.Encrypt(recipient, "-----KEY-----\n", Path.Combine(Resources, "prod", "tls.key.age"));
        Write("prod/bot.yaml", Secret("bot", """
                skiff.dev/from-env-file: bot.env.age
                skiff.dev/from-file: tls.key.age
            """));

        var data = Source(age).GetSecret("default", "bot")!;

        Assert.Equal(Token, Value(data, "token"));
        Assert.Equal("-----KEY-----\n", Value(data, "tls.key"));
        Assert.DoesNotContain(Token, File.ReadAllText(Path.Combine(Resources, "prod", "bot.env.age")), StringComparison.Ordinal);
    }

    [Fact]
    public void Without_the_key_an_age_file_is_SecretNotDecrypted_naming_the_file_and_the_flag_and_other_secrets_still_read()
    {
        var (_, recipient) = Key();
        AgeFiles.Encrypt(recipient, "token=" + Token + "\n", Path.Combine(Resources, "bot.env.age"));
        Write("bot.yaml", Secret("bot", "    skiff.dev/from-env-file: bot.env.age"));
        Write("plain.yaml", Secret("plain", "    x: y", "stringData: { key: fine }"));

        var source = Source(age: null);
        var e = Unreadable(source, "bot");

        Assert.Equal(Reasons.SecretNotDecrypted, e.Reason);
        Assert.Equal(
            "Secret \"bot\" (bot.yaml:1): skiff.dev/from-env-file \"bot.env.age\": is encrypted with age and Skiff has no key: pass --age-key-file KEYFILE (or set SKIFF_AGE_KEY_FILE) to skiff run, plan, backup or restore",
            e.Message);
        Assert.Equal("fine", Value(source.GetSecret("default", "plain")!, "key"));
        Assert.Null(source.GetSecret("default", "absent"));
    }

    [Fact]
    public void A_wrong_key_and_a_damaged_file_are_SecretNotDecrypted_and_never_echo_the_file()
    {
        var (_, recipient) = Key("other.key");
        var (age, _) = Key();
        AgeFiles.Encrypt(recipient, "token=" + Token + "\n", Path.Combine(Resources, "bot.env.age"));
        // A plaintext file named *.age: age's own error would quote its first line.
        Write("leak.env.age", "token=" + Token + "\n");
        Write("bot.yaml", Secret("bot", "    skiff.dev/from-env-file: bot.env.age"));
        Write("leak.yaml", Secret("leak", "    skiff.dev/from-env-file: leak.env.age"));

        var source = Source(age);

        var wrong = Unreadable(source, "bot");
        Assert.Equal(Reasons.SecretNotDecrypted, wrong.Reason);
        Assert.Contains($"cannot be decrypted with --age-key-file {age.KeyFile}: it was not encrypted to the key in {age.KeyFile}", wrong.Message, StringComparison.Ordinal);
        var damaged = Unreadable(source, "leak");
        Assert.Equal(Reasons.SecretNotDecrypted, damaged.Reason);
        Assert.Contains("leak.env.age\": cannot be decrypted", damaged.Message, StringComparison.Ordinal);
        Assert.Contains("it is not an age-encrypted file", damaged.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(Token, damaged.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_changed_age_file_is_a_change_of_every_stack_and_a_bad_env_inside_is_SecretNotDecrypted()
    {
        var (age, recipient) = Key();
        AgeFiles.Encrypt(recipient, "token=one\n", Path.Combine(Resources, "bot.env.age"));
        Write("bot.yaml", Secret("bot", "    skiff.dev/from-env-file: bot.env.age"));
        Write("api.yaml", "apiVersion: skiff.dev/v1alpha1\nkind: AppDeployment\nmetadata: { name: api }\nspec: { node: n, app: { image: nginx:1.27 } }\n");
        var source = Source(age);
        Assert.Empty(source.Rescan());

        AgeFiles.Encrypt(recipient, "token=two\n", Path.Combine(Resources, "bot.env.age"));
        Assert.Equal([new ObjectKey("default", "api")], source.Rescan());
        Assert.Equal("two", Value(source.GetSecret("default", "bot")!, "token"));

        AgeFiles.Encrypt(recipient, Token + "\n", Path.Combine(Resources, "bot.env.age"));
        Assert.NotEmpty(source.Rescan());
        var e = Unreadable(source, "bot");
        Assert.Equal(Reasons.SecretNotDecrypted, e.Reason);
        Assert.EndsWith("\"bot.env.age\": line 1: expected KEY=VALUE", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_key_file_that_is_missing_or_not_an_age_key_is_said_with_the_fix_and_a_good_one_gives_its_recipient()
    {
        var (age, recipient) = Key();
        Assert.Equal((recipient, null), await age.RecipientAsync(CancellationToken.None));

        var missing = Path.Combine(root, "keys", "none.key");
        var (_, problem) = await new AgeCli(missing, TimeSpan.FromSeconds(30)).RecipientAsync(CancellationToken.None);
        Assert.Equal($"{missing} does not exist: create it with age-keygen -o {missing}", problem);

        var garbage = Path.Combine(root, "keys", "garbage.key");
        File.WriteAllText(garbage, "AGE-SECRET-KEY-1NOTAKEY\n");
        (_, problem) = await new AgeCli(garbage, TimeSpan.FromSeconds(30)).RecipientAsync(CancellationToken.None);
        Assert.Equal($"{garbage} is not an age identity file (AGE-SECRET-KEY-1… lines, as age-keygen writes): check the file", problem);
        Assert.DoesNotContain("NOTAKEY", problem, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_git_source_decrypts_the_commits_age_file_follows_a_new_one_and_keeps_files_inside_its_path()
    {
        using var repo = new LocalRepository(Path.Combine(root, "repo"));
        var (age, recipient) = Key();
        Directory.CreateDirectory(Path.Combine(repo.Work, "deploy"));
        AgeFiles.Encrypt(recipient, "token=one\n", Path.Combine(repo.Work, "deploy", "bot.env.age"));
        AgeFiles.Encrypt(recipient, "token=" + Token + "\n", Path.Combine(repo.Work, "other.env.age"));
        repo.Write("deploy/bot.yaml", Secret("bot", "    skiff.dev/from-env-file: bot.env.age"));
        repo.Write("deploy/escape.yaml", Secret("escape", "    skiff.dev/from-env-file: ../other.env.age"));
        repo.Commit("bot token, encrypted");
        var remote = GitRemote.Parse(repo.FileUrl, GitCredentials.None, out var problem) ?? throw new InvalidOperationException(problem);
        var git = new GitSource(new GitSourceOptions(repo.FileUrl, "main", "deploy", TimeSpan.FromHours(1)), remote, Path.Combine(root, "state"), NullLogger.Instance, new GitMetrics(Metrics.NewCustomRegistry()));
        Assert.True(await git.SyncAsync(CancellationToken.None));
        var folder = new DirectorySource(git.FolderPath, NullLogger<DirectorySource>.Instance, followLink: true, age);
        folder.Rescan();

        Assert.Equal("one", Value(folder.GetSecret("default", "bot")!, "token"));
        // The repository outside --path is not the folder: a Secret cannot reach into it.
        Assert.Contains("is outside the folder Skiff reads", Unreadable(folder, "escape").Message, StringComparison.Ordinal);

        AgeFiles.Encrypt(recipient, "token=two\n", Path.Combine(repo.Work, "deploy", "bot.env.age"));
        repo.Commit("new bot token");
        Assert.True(await git.SyncAsync(CancellationToken.None));
        folder.Rescan();
        Assert.Equal("two", Value(folder.GetSecret("default", "bot")!, "token"));
    }
}
