using System.Net;

namespace Skiff.IntegrationTests.Acme;

/// <summary>
/// Stands in for the node proxy's port 80: answers <c>GET /.well-known/acme-challenge/TOKEN</c> with the file
/// <c>STATE/proxy/acme/TOKEN</c> (the contract between the operator and the proxy), 404 when there is none.
/// Counts the challenge requests it answered.
/// </summary>
public sealed class ChallengeServer : IDisposable
{
    private const string Prefix = "/.well-known/acme-challenge/";
    private readonly HttpListener listener = new();
    private readonly string challenges;
    private int answered;

    public ChallengeServer(int port, string stateDir)
    {
        challenges = Path.Combine(stateDir, "proxy", "acme");
        // Any Host header (the CA asks for the domain): HttpListener matches prefixes by host.
        listener.Prefixes.Add($"http://*:{port}/");
        listener.Start();
        _ = ServeAsync();
    }

    public int Answered => Volatile.Read(ref answered);

    public void Dispose() => listener.Close();

    private async Task ServeAsync()
    {
        while (listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await listener.GetContextAsync();
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }

            using var response = context.Response;
            var path = context.Request.Url!.AbsolutePath;
            var file = path.StartsWith(Prefix, StringComparison.Ordinal) ? Path.Combine(challenges, path[Prefix.Length..]) : null;
            if (file is null || path[Prefix.Length..].Contains('/') || !File.Exists(file))
            {
                response.StatusCode = 404;
                continue;
            }

            var body = await File.ReadAllBytesAsync(file);
            response.ContentType = "application/octet-stream";
            await response.OutputStream.WriteAsync(body);
            Interlocked.Increment(ref answered);
        }
    }
}
