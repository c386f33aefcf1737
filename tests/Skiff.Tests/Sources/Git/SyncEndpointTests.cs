using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging.Abstractions;
using Skiff.Hosting;
using Skiff.Sources.Git;

namespace Skiff.Tests.Sources.Git;

/// <summary><c>POST /sync</c>: what each request gets back (the integration tests show what it then does to the stacks).</summary>
public sealed class SyncEndpointTests
{
    private static readonly byte[] Secret = Encoding.UTF8.GetBytes("the-webhook-secret");

    private static GitSource Source()
    {
        var remote = GitRemote.Parse("file:///nonexistent/repo.git", GitCredentials.None, out _)!;
        var root = Path.Combine(Path.GetTempPath(), "skiff-sync-ut-" + Guid.NewGuid().ToString("N"));
        return new GitSource(new GitSourceOptions(remote.Url, "main", "", TimeSpan.FromHours(1)), remote, root, NullLogger.Instance);
    }

    private static async Task<(int Status, string Body)> PostAsync(byte[]? secret, string body, string? signature, long? contentLength = null)
    {
        var http = new DefaultHttpContext();
        http.Request.Method = "POST";
        http.Request.Body = new MemoryStream(Encoding.UTF8.GetBytes(body));
        http.Request.ContentLength = contentLength ?? body.Length;
        if (signature is not null)
        {
            http.Request.Headers[WebhookSignature.Header] = signature;
        }

        var response = new MemoryStream();
        http.Response.Body = response;
        await GitFeed.SyncEndpoint(Source(), secret, NullLogger.Instance)(http);
        return (http.Response.StatusCode, Encoding.UTF8.GetString(response.ToArray()));
    }

    [Fact]
    public async Task A_signed_body_is_accepted()
    {
        var (status, body) = await PostAsync(Secret, "{\"ref\":\"refs/heads/main\"}", WebhookSignature.Sign(Secret, Encoding.UTF8.GetBytes("{\"ref\":\"refs/heads/main\"}")));

        Assert.Equal(202, status);
        Assert.Equal("sync requested\n", body);
    }

    [Theory]
    [InlineData(null, "signature missing")]
    [InlineData("sha256=00", "signature malformed")]
    [InlineData("sha256=0000000000000000000000000000000000000000000000000000000000000000", "signature mismatch")]
    public async Task An_unsigned_or_wrongly_signed_body_gets_401(string? signature, string expected)
    {
        var (status, body) = await PostAsync(Secret, "{}", signature);

        Assert.Equal(401, status);
        Assert.StartsWith(expected, body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Without_a_secret_file_sync_is_off_and_says_which_flag_turns_it_on()
    {
        var (status, body) = await PostAsync(null, "{}", WebhookSignature.Sign(Secret, "{}"u8));

        Assert.Equal(403, status);
        Assert.Contains("--webhook-secret-file", body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_body_over_the_limit_is_refused_unread()
    {
        var (status, _) = await PostAsync(Secret, "{}", WebhookSignature.Sign(Secret, "{}"u8), contentLength: GitFeed.MaxWebhookBody + 1L);

        Assert.Equal(413, status);
    }
}
