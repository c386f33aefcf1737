using CsCheck;
using Skiff.Observability;

namespace Skiff.Tests.Observability;

public class SecretRedactorTests
{
    private const string M = SecretMasker.Mask;

    [Fact]
    public void Redact_MasksEveryOccurrenceOfEveryValue()
    {
        var redactor = new SecretRedactor();
        redactor.Register("s3cr3t-pass");
        redactor.Register("bot-token-123");

        var text = redactor.Redact("connecting with s3cr3t-pass; TOKEN=bot-token-123, again s3cr3t-pass.");

        Assert.Equal($"connecting with {M}; TOKEN={M}, again {M}.", text);
    }

    [Fact]
    public void Redact_LongestFirst_MasksAUrlHoldingAPasswordWhole()
    {
        var redactor = new SecretRedactor();
        redactor.Register("hunter22");
        redactor.Register("postgres://app:hunter22@db:5432/app");

        Assert.Equal($"DATABASE_URL={M} ok", redactor.Redact("DATABASE_URL=postgres://app:hunter22@db:5432/app ok"));
    }

    [Fact]
    public void Redact_OverlappingValues_LeaveNoEdgeBehind()
    {
        var redactor = new SecretRedactor();
        redactor.Register("abcdef");
        redactor.Register("defghi");

        Assert.Equal($"x{M}y", redactor.Redact("xabcdefghiy"));
    }

    [Fact]
    public void Redact_NothingRegisteredOrNoMatch_ReturnsTheSameString()
    {
        var redactor = new SecretRedactor();
        var text = "nothing to see";
        Assert.Same(text, redactor.Redact(text));

        redactor.Register("s3cr3t");
        Assert.Same(text, redactor.Redact(text));
    }

    [Fact]
    public void Register_IgnoresShortEmptyAndDuplicateValues()
    {
        var redactor = new SecretRedactor();
        redactor.Register(null);
        redactor.Register("");
        redactor.Register("yes");
        redactor.Register("s3cr3t");
        redactor.Register("s3cr3t");

        Assert.Equal(1, redactor.Count);
        Assert.Equal("yes", redactor.Redact("yes"));
    }

    [Fact]
    public void Redact_AnyTextAndSecrets_LeavesNoSecretBehind()
    {
        var secret = Gen.String[Gen.Char['a', 'e'], SecretRedactor.MinimumLength, 8];
        Gen.Select(secret.Array[1, 5], Gen.String[Gen.Char['a', 'f'], 0, 60]).Sample((secrets, text) =>
        {
            var redactor = new SecretRedactor();
            foreach (var s in secrets)
            {
                redactor.Register(s);
            }

            var redacted = redactor.Redact(text);
            return secrets.All(s => !redacted.Contains(s, StringComparison.Ordinal));
        });
    }

    [Fact]
    public async Task RegisterAndRedact_FromManyThreads_AreSafe()
    {
        var redactor = new SecretRedactor();
        var writers = Enumerable.Range(0, 4).Select(t => Task.Run(() =>
        {
            for (var i = 0; i < 200; i++)
            {
                redactor.Register($"secret-{t}-{i}");
            }
        }));
        var readers = Enumerable.Range(0, 4).Select(_ => Task.Run(() =>
        {
            for (var i = 0; i < 200; i++)
            {
                // Whatever has been registered so far is masked; nothing throws mid-registration.
                var known = redactor.Count;
                Assert.NotNull(redactor.Redact("x secret-1-1 y"));
                Assert.True(redactor.Count >= known);
            }
        }));

        await Task.WhenAll(writers.Concat(readers));

        Assert.Equal(800, redactor.Count);
        Assert.Equal($"x {M} y {M}", redactor.Redact("x secret-3-199 y secret-0-0"));
    }
}
