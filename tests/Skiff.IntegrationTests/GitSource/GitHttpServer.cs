using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Skiff.IntegrationTests.Infrastructure;

namespace Skiff.IntegrationTests.GitSource;

/// <summary>
/// Git's smart HTTP protocol on a local port: <c>git http-backend</c> (the CGI program Git ships) behind a small
/// HttpListener host, as Apache or nginx would run it, serving the repositories under one folder. With a token, every
/// request must carry it as basic auth (any user), as GitHub's HTTPS does. Stopped and started again on the same port,
/// it is a remote that went away and came back.
/// </summary>
public sealed class GitHttpServer : IAsyncDisposable
{
    private const string Backend = "/usr/lib/git-core/git-http-backend";

    private readonly string projectRoot;
    private readonly string? token;
    private HttpListener? listener;
    private Task? serving;
    private int requests;
    private int refused;

    public GitHttpServer(string projectRoot, string? token = null)
    {
        _ = TestRun.Id;
        this.projectRoot = projectRoot;
        this.token = token;
        Port = FreePort();
        Start();
    }

    public int Port { get; }

    /// <summary>Requests received, for a test that must know whether the remote was asked.</summary>
    public int Requests => Volatile.Read(ref requests);

    /// <summary>Requests refused for a wrong (or missing) token.</summary>
    public int Refused => Volatile.Read(ref refused);

    public string UrlOf(string repository) => $"http://127.0.0.1:{Port}/{repository}";

    public void Start()
    {
        listener = new HttpListener();
        listener.Prefixes.Add($"http://127.0.0.1:{Port}/");
        listener.Start();
        var current = listener;
        serving = Task.Run(() => ServeAsync(current));
    }

    public async Task StopAsync()
    {
        if (listener is { } l)
        {
            listener = null;
            l.Stop();
            l.Close();
            await (serving ?? Task.CompletedTask).ContinueWith(_ => { }, TaskScheduler.Default);
        }
    }

    public async ValueTask DisposeAsync() => await StopAsync();

    private async Task ServeAsync(HttpListener l)
    {
        while (l.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await l.GetContextAsync();
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }

            _ = Task.Run(() => HandleAsync(context));
        }
    }

    private async Task HandleAsync(HttpListenerContext context)
    {
        var request = context.Request;
        var response = context.Response;
        try
        {
            Interlocked.Increment(ref requests);
            if (token is not null && (request.Headers["Authorization"] is not { } auth || !Authorized(auth)))
            {
                Interlocked.Increment(ref refused);
                response.StatusCode = 401;
                response.AddHeader("WWW-Authenticate", "Basic realm=\"git\"");
                response.Close();
                return;
            }

            var info = new ProcessStartInfo(Backend) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            info.Environment["GIT_PROJECT_ROOT"] = projectRoot;
            info.Environment["GIT_HTTP_EXPORT_ALL"] = "1";
            info.Environment["REQUEST_METHOD"] = request.HttpMethod;
            info.Environment["PATH_INFO"] = Uri.UnescapeDataString(request.Url!.AbsolutePath);
            info.Environment["QUERY_STRING"] = request.Url.Query.TrimStart('?');
            info.Environment["REMOTE_ADDR"] = request.RemoteEndPoint.Address.ToString();
            info.Environment["REMOTE_USER"] = token is null ? "" : "git";
            if (request.ContentType is { } type)
            {
                info.Environment["CONTENT_TYPE"] = type;
            }

            if (request.ContentLength64 >= 0 && request.HasEntityBody)
            {
                info.Environment["CONTENT_LENGTH"] = request.ContentLength64.ToString(System.Globalization.CultureInfo.InvariantCulture);
            }

            if (request.Headers["Content-Encoding"] is { } encoding)
            {
                info.Environment["HTTP_CONTENT_ENCODING"] = encoding;
            }

            if (request.Headers["Git-Protocol"] is { } protocol)
            {
                info.Environment["HTTP_GIT_PROTOCOL"] = protocol;
            }

            using var cgi = Process.Start(info)!;
            var feeding = Task.Run(async () =>
            {
                if (request.HasEntityBody)
                {
                    await request.InputStream.CopyToAsync(cgi.StandardInput.BaseStream);
                }

                cgi.StandardInput.Close();
            });
            var errors = cgi.StandardError.ReadToEndAsync();
            var output = cgi.StandardOutput.BaseStream;
            response.StatusCode = 200;
            foreach (var header in ReadHeaders(output))
            {
                var colon = header.IndexOf(':', StringComparison.Ordinal);
                var (name, value) = (header[..colon].Trim(), header[(colon + 1)..].Trim());
                if (name.Equals("Status", StringComparison.OrdinalIgnoreCase))
                {
                    response.StatusCode = int.Parse(value.Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
                }
                else if (name.Equals("Content-Type", StringComparison.OrdinalIgnoreCase))
                {
                    response.ContentType = value;
                }
                else if (!name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
                {
                    response.AddHeader(name, value);
                }
            }

            response.SendChunked = true;
            await output.CopyToAsync(response.OutputStream);
            await feeding;
            await cgi.WaitForExitAsync();
            await errors;
            response.Close();
        }
        catch (Exception e) when (e is IOException or HttpListenerException or ObjectDisposedException or InvalidOperationException)
        {
            try
            {
                response.Abort();
            }
            catch (ObjectDisposedException)
            {
            }
        }
    }

    private bool Authorized(string header)
    {
        if (!header.StartsWith("Basic ", StringComparison.Ordinal))
        {
            return false;
        }

        var decoded = Encoding.UTF8.GetString(Convert.FromBase64String(header["Basic ".Length..]));
        return decoded.EndsWith(":" + token, StringComparison.Ordinal);
    }

    /// <summary>The CGI header lines, up to the blank line; the stream is left at the body.</summary>
    private static IEnumerable<string> ReadHeaders(Stream output)
    {
        var line = new List<byte>();
        var lines = new List<string>();
        int b;
        while ((b = output.ReadByte()) >= 0)
        {
            if (b == '\n')
            {
                var text = Encoding.ASCII.GetString([.. line]).TrimEnd('\r');
                line.Clear();
                if (text.Length == 0)
                {
                    break;
                }

                lines.Add(text);
                continue;
            }

            line.Add((byte)b);
        }

        return lines;
    }

    public static int FreePort() => Infrastructure.DockerFixture.FreeTcpPort();
}
