using System.Text;
using Skiff.Sources.Git;

namespace Skiff.Tests.Sources.Git;

/// <summary>GitHub's webhook signature, checked as GitHub documents it.</summary>
public sealed class WebhookSignatureTests
{
    private static readonly byte[] Secret = Encoding.UTF8.GetBytes("It's a Secret to Everybody");
    private static readonly byte[] Body = Encoding.UTF8.GetBytes("Hello, World!");

    [Fact]
    public void GitHubs_documented_example_is_valid()
    {
        // docs.github.com, "Validating webhook deliveries": this secret and payload give this signature.
        const string header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

        Assert.Equal(SignatureCheck.Valid, WebhookSignature.Check(Secret, Body, header));
        Assert.Equal(SignatureCheck.Valid, WebhookSignature.Check(Secret, Body, header.ToUpperInvariant().Replace("SHA256=", "sha256=", StringComparison.Ordinal)));
        Assert.Equal(header, WebhookSignature.Sign(Secret, Body));
    }

    [Theory]
    [InlineData(null, SignatureCheck.Missing)]
    [InlineData("", SignatureCheck.Missing)]
    [InlineData("sha1=0a4d55a8d778e5022fab701977c5d840bbc486d0", SignatureCheck.Malformed)]
    [InlineData("sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1", SignatureCheck.Malformed)]
    [InlineData("sha256=zz7107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", SignatureCheck.Malformed)]
    [InlineData("757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", SignatureCheck.Malformed)]
    [InlineData("sha256=857107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", SignatureCheck.Mismatch)]
    public void Anything_but_the_bodys_signature_is_refused(string? header, SignatureCheck expected) =>
        Assert.Equal(expected, WebhookSignature.Check(Secret, Body, header));

    [Fact]
    public void A_changed_body_or_another_secret_does_not_match()
    {
        var header = WebhookSignature.Sign(Secret, Body);

        Assert.Equal(SignatureCheck.Mismatch, WebhookSignature.Check(Secret, Encoding.UTF8.GetBytes("Hello, World?"), header));
        Assert.Equal(SignatureCheck.Mismatch, WebhookSignature.Check(Encoding.UTF8.GetBytes("another secret"), Body, header));
    }

    [Fact]
    public void The_secret_file_loses_its_trailing_newline_only()
    {
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllText(file, " s3cret \n");
            Assert.Equal(" s3cret ", Encoding.UTF8.GetString(WebhookSignature.ReadSecret(file)));
        }
        finally
        {
            File.Delete(file);
        }
    }
}
