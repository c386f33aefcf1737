using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Skiff.IntegrationTests.Infrastructure;

namespace Skiff.IntegrationTests.Acme;

/// <summary>
/// Debian's <c>pebble</c> (Let's Encrypt's ACME test server) on loopback ports, with real HTTP-01 validation
/// (<c>PEBBLE_VA_ALWAYS_VALID</c> unset; <c>PEBBLE_VA_NOSLEEP=1</c> only skips its random sleeps).
/// </summary>
/// <remarks>
/// Names: pebble's validation authority resolves the domain it validates through <c>-dnsserver</c>, here Debian's
/// <c>pebble-challtestsrv</c> (same package) as a mock DNS server answering every A query with 127.0.0.1 and no AAAA,
/// so any name (<c>*.skiff.test</c>) reaches <see cref="HttpPort"/> on loopback, where a test serves the challenge
/// files as the node proxy would. No /etc/hosts edit, no real DNS.
/// TLS: Debian ships no test certificate for pebble's API, so the fixture makes a throw-away root and a
/// <c>127.0.0.1</c> certificate; <see cref="Handler"/> trusts that root only.
/// Pebble keeps its default 5 % of refused good nonces, so <c>badNonce</c> retries run too.
/// </remarks>
public sealed class Pebble : IAsyncLifetime
{
    private readonly List<Process> processes = [];
    private readonly Dictionary<Process, System.Text.StringBuilder> outputs = [];
    private readonly string root = System.IO.Directory.CreateTempSubdirectory("skiff-pebble-").FullName;
    private X509Certificate2? apiRoot;
    private int dnsManagementPort;

    public int HttpPort { get; private set; }

    public Uri Directory { get; private set; } = null!;

    public Uri Management { get; private set; } = null!;

    /// <summary>
    /// A PEM file of the root that signs pebble's API certificate: a process started with <c>SSL_CERT_FILE</c> set to it
    /// (OpenSSL's variable, which .NET on Linux reads too) trusts pebble's API, as <c>skiff run</c> must to order.
    /// </summary>
    public string ApiRootFile => Path.Combine(root, "api-root.pem");

    /// <summary>Makes the mock DNS server answer SERVFAIL for <paramref name="host"/>: pebble cannot validate its challenges.</summary>
    public async Task ServFailAsync(string host)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        using var response = await http.PostAsync(
            new Uri($"http://127.0.0.1:{dnsManagementPort}/set-servfail"),
            new StringContent($$"""{"host":"{{host}}."}""", System.Text.Encoding.UTF8, "application/json"));
        Assert.True(response.IsSuccessStatusCode, $"pebble-challtestsrv /set-servfail {host}: HTTP {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
    }

    /// <summary>An HTTP handler that trusts pebble's API certificate (and nothing else).</summary>
    public HttpMessageHandler Handler() => new SocketsHttpHandler
    {
        SslOptions =
        {
            RemoteCertificateValidationCallback = (_, certificate, _, _) =>
            {
                if (certificate is null)
                {
                    return false;
                }

                using var chain = new X509Chain();
                chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                chain.ChainPolicy.CustomTrustStore.Add(apiRoot!);
                chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                return chain.Build(X509CertificateLoader.LoadCertificate(certificate.GetRawCertData()));
            },
        },
    };

    /// <summary>Pebble's issuing root (management <c>/roots/0</c>): a fresh one per pebble process.</summary>
    public async Task<X509Certificate2> IssuingRootAsync()
    {
        using var http = new HttpClient(Handler());
        return X509Certificate2.CreateFromPem(await http.GetStringAsync(new Uri(Management, "/roots/0")));
    }

    public async Task InitializeAsync()
    {
        var (certificate, key) = ApiCertificate();
        await File.WriteAllTextAsync(Path.Combine(root, "cert.pem"), certificate);
        await File.WriteAllTextAsync(Path.Combine(root, "key.pem"), key);
        await File.WriteAllTextAsync(ApiRootFile, apiRoot!.ExportCertificatePem() + "\n");

        var (api, management, http, tls, dns, dnsManagement) = (FreePort(), FreePort(), FreePort(), FreePort(), FreePort(), FreePort());
        HttpPort = http;
        dnsManagementPort = dnsManagement;
        Directory = new Uri($"https://127.0.0.1:{api}/dir");
        Management = new Uri($"https://127.0.0.1:{management}/");
        var config = Path.Combine(root, "pebble-config.json");
        await File.WriteAllTextAsync(config, $$"""
            { "pebble": {
                "listenAddress": "127.0.0.1:{{api}}", "managementListenAddress": "127.0.0.1:{{management}}",
                "certificate": "{{root}}/cert.pem", "privateKey": "{{root}}/key.pem",
                "httpPort": {{http}}, "tlsPort": {{tls}}, "ocspResponderURL": "", "externalAccountBindingRequired": false } }
            """);

        Start("pebble-challtestsrv", ["-dns01", $"127.0.0.1:{dns}", "-http01", "", "-https01", "", "-tlsalpn01", "",
            "-management", $"127.0.0.1:{dnsManagement}", "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""], []);
        Start("pebble", ["-config", config, "-dnsserver", $"127.0.0.1:{dns}"], new() { ["PEBBLE_VA_NOSLEEP"] = "1" });

        using var client = new HttpClient(Handler()) { Timeout = TimeSpan.FromSeconds(5) };
        await Eventually.TrueAsync($"pebble answers on {Directory}", async () =>
        {
            Assert.All(processes, p => Assert.False(p.HasExited, $"{p.StartInfo.FileName} exited at start-up: {Output(p)}"));
            try
            {
                using var response = await client.GetAsync(Directory);
                return response.IsSuccessStatusCode;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                // Not listening yet, or too slow to answer on a loaded machine: ask again.
                return false;
            }
        }, TimeSpan.FromSeconds(60), () => string.Join("\n", processes.Select(Output)));
    }

    public Task DisposeAsync()
    {
        foreach (var process in processes)
        {
            if (!process.HasExited)
            {
                process.Kill();
                process.WaitForExit(5000);
            }

            process.Dispose();
        }

        System.IO.Directory.Delete(root, recursive: true);
        return Task.CompletedTask;
    }

    private void Start(string file, string[] args, Dictionary<string, string> environment)
    {
        var info = new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.Environment.Remove("PEBBLE_VA_ALWAYS_VALID");
        info.Environment[TestRun.IdVariable] = TestRun.Id;
        foreach (var (name, value) in environment)
        {
            info.Environment[name] = value;
        }

        Process process;
        try
        {
            process = Process.Start(info) ?? throw new InvalidOperationException($"{file} did not start");
        }
        catch (System.ComponentModel.Win32Exception)
        {
            throw new InvalidOperationException($"{file} is missing: install Debian's pebble (scripts/install-deps.sh does)");
        }

        var output = new System.Text.StringBuilder();
        process.OutputDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        process.ErrorDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        outputs[process] = output;
        processes.Add(process);
    }

    private string Output(Process p)
    {
        var output = outputs[p];
        lock (output)
        {
            return $"{p.StartInfo.FileName}: {output}";
        }
    }

    /// <summary>A throw-away root and, signed by it, the certificate pebble's API serves on 127.0.0.1.</summary>
    private (string Certificate, string Key) ApiCertificate()
    {
        using var rootKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var rootRequest = new CertificateRequest("CN=skiff test pebble API root", rootKey, HashAlgorithmName.SHA256);
        rootRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        rootRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        var now = DateTimeOffset.UtcNow;
        apiRoot = rootRequest.CreateSelfSigned(now.AddMinutes(-5), now.AddDays(2));

        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=127.0.0.1", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        names.AddDnsName("localhost");
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        using var leaf = request.Create(apiRoot, now.AddMinutes(-5), now.AddDays(2), RandomNumberGenerator.GetBytes(8));
        return (leaf.ExportCertificatePem(), key.ExportPkcs8PrivateKeyPem());
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
