using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Skiff.Proxy;

/// <summary>How a listener forwards: HTTP request by request, or TCP connection by connection.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<ProxyProtocol>))]
public enum ProxyProtocol
{
    /// <summary>HTTP/1.1 through YARP, per request, with <c>X-Forwarded-*</c> headers.</summary>
    [JsonStringEnumMemberName("http")]
    Http,

    /// <summary>Bytes both ways, per connection.</summary>
    [JsonStringEnumMemberName("tcp")]
    Tcp,
}

/// <summary>The protocols by the names the routes file and a spec's <c>ports[].protocol</c> use.</summary>
public static class ProxyProtocolNames
{
    /// <summary><c>http</c> or <c>tcp</c>.</summary>
    public static string Name(this ProxyProtocol protocol) => protocol == ProxyProtocol.Tcp ? "tcp" : "http";

    /// <summary><c>tcp</c> is TCP; anything else HTTP (the default).</summary>
    public static ProxyProtocol FromName(string name) => name == "tcp" ? ProxyProtocol.Tcp : ProxyProtocol.Http;
}

/// <summary>
/// One published port: where the proxy listens and where it forwards (the live revision's container).
/// </summary>
/// <param name="Address">The <c>hostIP:hostPort</c> to listen on: <c>127.0.0.1:3000</c>, <c>0.0.0.0:80</c>, <c>[::]:80</c>. Unique in a file.</param>
/// <param name="Protocol">HTTP or TCP.</param>
/// <param name="Stack">The stack it belongs to, <c>namespace/name</c> (for logs and status; the proxy does not route by it).</param>
/// <param name="Port">The port's name in the stack's spec (for logs and status).</param>
/// <param name="Revision">The revision <paramref name="Upstream"/> runs (for logs and status).</param>
/// <param name="Upstream">Where to forward: <c>IP:port</c> (or <c>host:port</c>) of the revision's container on the stack network.</param>
public sealed record ProxyListener(
    [property: JsonPropertyName("address")] string Address,
    [property: JsonPropertyName("protocol")] ProxyProtocol Protocol,
    [property: JsonPropertyName("stack")] string Stack,
    [property: JsonPropertyName("port")] string Port,
    [property: JsonPropertyName("revision")] long Revision,
    [property: JsonPropertyName("upstream")] string Upstream)
{
    /// <summary>The listen address, parsed.</summary>
    [JsonIgnore]
    public IPEndPoint EndPoint => IPEndPoint.Parse(Address);
}

/// <summary>
/// A domain served on the node's shared HTTP and HTTPS listeners: requests whose <c>Host</c> (and, over HTTPS, whose
/// TLS SNI) is <paramref name="Domain"/> go to <paramref name="Upstream"/>.
/// </summary>
/// <param name="Domain">The lowercase DNS name (no wildcard). Unique in a file.</param>
/// <param name="Tls">Served over HTTPS with the certificate of <c>certs/DOMAIN.crt</c>; HTTP redirects there once it exists.</param>
/// <param name="Stack">The stack it belongs to, <c>namespace/name</c>.</param>
/// <param name="Port">The port's name in the stack's spec.</param>
/// <param name="Revision">The revision <paramref name="Upstream"/> runs.</param>
/// <param name="Upstream">Where to forward: <c>IP:port</c> of the revision's container.</param>
public sealed record ProxyDomain(
    [property: JsonPropertyName("domain")] string Domain,
    [property: JsonPropertyName("tls")] bool Tls,
    [property: JsonPropertyName("stack")] string Stack,
    [property: JsonPropertyName("port")] string Port,
    [property: JsonPropertyName("revision")] long Revision,
    [property: JsonPropertyName("upstream")] string Upstream);

/// <summary>The node's shared listeners, where every domain is served by Host header and SNI.</summary>
/// <param name="Http">Plain HTTP (<c>0.0.0.0:80</c>): ACME challenges, redirects to HTTPS, domains without a certificate.</param>
/// <param name="Https">HTTPS (<c>0.0.0.0:443</c>): the certificate chosen by SNI.</param>
public sealed record ProxySharedListeners(
    [property: JsonPropertyName("http")] string Http,
    [property: JsonPropertyName("https")] string Https)
{
    /// <summary>The HTTP address, parsed.</summary>
    [JsonIgnore]
    public IPEndPoint HttpEndPoint => IPEndPoint.Parse(Http);

    /// <summary>The HTTPS address, parsed.</summary>
    [JsonIgnore]
    public IPEndPoint HttpsEndPoint => IPEndPoint.Parse(Https);
}

/// <summary>
/// The proxy's routes file (<c>routes.json</c> in the state folder): written by the operator, read by
/// <c>skiff proxy</c>. Both sides use this one definition.
/// </summary>
/// <remarks>
/// # Guarantees
/// - <see cref="Write"/> is atomic (a temporary file in the same folder, flushed, then renamed over the
///   old one): the proxy sees the old routes or the new ones, never half a file.
/// - <see cref="Read"/> and <see cref="Parse"/> accept only a complete, valid file: <c>version</c> 1 or 2, every
///   field of every listener and domain present and well formed, no address or domain twice, no listener on a shared
///   listener's port. Anything else throws
///   <see cref="ProxyRoutesException"/> naming the field; addresses come back normalized
///   (<c>127.0.0.1:3000</c>, <c>[::1]:80</c>).
/// - <see cref="Fingerprint"/> identifies the routes (the proxy exports the applied one as
///   <c>skiff_proxy_routes_version</c>), so the operator can tell when a switch is live.
///
/// - <see cref="For"/> writes version 1 (the format of proxies before domains, whose fingerprint it keeps) while no
///   domain is routed, and version 2 (with <c>shared</c> and <c>domains</c>) once one is: a proxy too old for domains
///   refuses such a file and keeps its last good routes rather than silently dropping the domains.
///
/// # Caveats
/// Unknown fields are ignored, so an older proxy can read a newer operator's file that only adds fields.
/// </remarks>
/// <param name="Version">The format version: 1 (listeners only) or <see cref="CurrentVersion"/> (with domains).</param>
/// <param name="Listeners">Every published port of the node.</param>
public sealed record ProxyRoutes(
    [property: JsonPropertyName("version")] int Version,
    [property: JsonPropertyName("listeners")] IReadOnlyList<ProxyListener> Listeners)
{
    /// <summary>The newest format version this build reads and writes (2: shared listeners and domains).</summary>
    public const int CurrentVersion = 2;

    /// <summary>The format without domains, which proxies before version 2 read.</summary>
    public const int ListenersOnlyVersion = 1;

    /// <summary>The shared HTTP and HTTPS listeners (version 2); null without domains.</summary>
    [JsonPropertyName("shared")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public ProxySharedListeners? Shared { get; init; }

    /// <summary>The domains served on <see cref="Shared"/> (version 2); null without domains.</summary>
    [JsonPropertyName("domains")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<ProxyDomain>? Domains { get; init; }

    /// <summary>
    /// The routes to write: version 1 without domains (so a proxy that predates them reads the file, and the
    /// fingerprint stays what it was), version 2 with <paramref name="shared"/> and <paramref name="domains"/> otherwise.
    /// </summary>
    public static ProxyRoutes For(IReadOnlyList<ProxyListener> listeners, ProxySharedListeners? shared, IReadOnlyList<ProxyDomain> domains) =>
        domains.Count == 0 || shared is null
            ? new ProxyRoutes(ListenersOnlyVersion, listeners)
            : new ProxyRoutes(CurrentVersion, listeners) { Shared = shared, Domains = domains };

    /// <summary>No listeners: what the proxy serves before the first good file.</summary>
    public static ProxyRoutes Empty { get; } = new(CurrentVersion, []);

    /// <summary>
    /// A 48-bit number that changes with any listener's address, protocol, upstream or metadata (exact as a
    /// Prometheus float). The proxy exports the routes it applied as <c>skiff_proxy_routes_version</c>.
    /// </summary>
    [JsonIgnore]
    public long Fingerprint
    {
        get
        {
            // Over the canonical form: the same routes give the same number whatever the listener order.
            var canonical = this with
            {
                Listeners = [.. Listeners.OrderBy(l => l.Address, StringComparer.Ordinal)],
                Domains = Domains is not { Count: > 0 } ? null : [.. Domains.OrderBy(d => d.Domain, StringComparer.Ordinal)],
            };
            var hash = SHA256.HashData(JsonSerializer.SerializeToUtf8Bytes(canonical, ProxyJsonContext.Default.ProxyRoutes));
            return (long)(BinaryPrimitives.ReadUInt64BigEndian(hash) >> 16);
        }
    }

    /// <summary>Reads and checks the file.</summary>
    /// <param name="path">The routes file.</param>
    /// <exception cref="FileNotFoundException">The file (or its folder) is not there.</exception>
    /// <exception cref="ProxyRoutesException">The file is empty or not a valid routes file.</exception>
    /// <exception cref="IOException">The file cannot be read.</exception>
    public static ProxyRoutes Read(string path)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (DirectoryNotFoundException e)
        {
            throw new FileNotFoundException($"{path}: no such file", path, e);
        }

        return Parse(bytes);
    }

    /// <summary>Checks a routes document.</summary>
    /// <param name="utf8Json">The file's bytes.</param>
    /// <exception cref="ProxyRoutesException">Empty, not JSON, or not a valid routes document; the message names the field.</exception>
    public static ProxyRoutes Parse(ReadOnlySpan<byte> utf8Json)
    {
        if (utf8Json.Trim(" \t\r\n"u8).IsEmpty)
        {
            throw new ProxyRoutesException("the file is empty");
        }

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(utf8Json.ToArray());
        }
        catch (JsonException e)
        {
            throw new ProxyRoutesException($"not JSON (at line {e.LineNumber + 1}, byte {e.BytePositionInLine + 1})");
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new ProxyRoutesException("want an object {\"version\": 1, \"listeners\": [...]}");
            }

            if (!root.TryGetProperty("version", out var version) || version.ValueKind != JsonValueKind.Number || !version.TryGetInt32(out var v))
            {
                throw new ProxyRoutesException("version: required, a whole number");
            }

            if (v is not (ListenersOnlyVersion or CurrentVersion))
            {
                throw new ProxyRoutesException($"version: {v} is not understood by this proxy (it reads versions {ListenersOnlyVersion} and {CurrentVersion}); upgrade the proxy");
            }

            if (!root.TryGetProperty("listeners", out var items) || items.ValueKind != JsonValueKind.Array)
            {
                throw new ProxyRoutesException("listeners: required, a list");
            }

            var listeners = new List<ProxyListener>();
            var seen = new Dictionary<string, int>(StringComparer.Ordinal);
            var i = 0;
            foreach (var item in items.EnumerateArray())
            {
                var listener = ParseListener(item, $"listeners[{i}]");
                if (seen.TryGetValue(listener.Address, out var first))
                {
                    throw new ProxyRoutesException($"listeners[{i}].address: {listener.Address} is already listeners[{first}]'s; each address once");
                }

                seen[listener.Address] = i;
                listeners.Add(listener);
                i++;
            }

            if (v == ListenersOnlyVersion)
            {
                return new ProxyRoutes(v, listeners);
            }

            var (shared, domains) = ParseDomains(root, listeners);
            return new ProxyRoutes(v, listeners) { Shared = shared, Domains = domains is { Count: > 0 } ? domains : null };
        }
    }

    /// <summary>Writes the file atomically: a temporary file beside it, flushed to disk, renamed over it.</summary>
    /// <param name="path">The routes file; its folder must exist.</param>
    /// <param name="routes">What to write; it is checked first, as <see cref="Parse"/> would.</param>
    /// <exception cref="ProxyRoutesException">The routes are not valid (the proxy would refuse them).</exception>
    /// <exception cref="IOException">The file cannot be written.</exception>
    public static void Write(string path, ProxyRoutes routes)
    {
        var bytes = JsonSerializer.SerializeToUtf8Bytes(routes, ProxyJsonContext.Indented.ProxyRoutes);
        Parse(bytes);
        var full = Path.GetFullPath(path);
        var temp = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                stream.Write(bytes);
                stream.Write("\n"u8);
                stream.Flush(flushToDisk: true);
            }

            File.Move(temp, full, overwrite: true);
        }
        finally
        {
            File.Delete(temp);
        }
    }

    private static (ProxySharedListeners? Shared, IReadOnlyList<ProxyDomain>? Domains) ParseDomains(JsonElement root, List<ProxyListener> listeners)
    {
        var domains = new List<ProxyDomain>();
        if (root.TryGetProperty("domains", out var items) && items.ValueKind != JsonValueKind.Null)
        {
            if (items.ValueKind != JsonValueKind.Array)
            {
                throw new ProxyRoutesException("domains: a list");
            }

            var seen = new Dictionary<string, int>(StringComparer.Ordinal);
            var i = 0;
            foreach (var item in items.EnumerateArray())
            {
                var domain = ParseDomain(item, $"domains[{i}]");
                if (seen.TryGetValue(domain.Domain, out var first))
                {
                    throw new ProxyRoutesException($"domains[{i}].domain: {domain.Domain} is already domains[{first}]'s; each domain once");
                }

                seen[domain.Domain] = i;
                domains.Add(domain);
                i++;
            }
        }

        if (!root.TryGetProperty("shared", out var sharedElement) || sharedElement.ValueKind == JsonValueKind.Null)
        {
            return domains.Count == 0 ? (null, domains) : throw new ProxyRoutesException("shared: required with domains, {\"http\": \"0.0.0.0:80\", \"https\": \"0.0.0.0:443\"}");
        }

        if (sharedElement.ValueKind != JsonValueKind.Object)
        {
            throw new ProxyRoutesException("shared: want an object {\"http\": \"0.0.0.0:80\", \"https\": \"0.0.0.0:443\"}");
        }

        var http = ParseAddress(RequiredString(sharedElement, "shared", "http"), "shared.http");
        var https = ParseAddress(RequiredString(sharedElement, "shared", "https"), "shared.https");
        if (http.Port == https.Port && Overlap(http.Address, https.Address))
        {
            throw new ProxyRoutesException($"shared.https: {https} takes the port of shared.http {http}; give HTTP and HTTPS their own ports");
        }

        for (var i = 0; i < listeners.Count; i++)
        {
            var at = listeners[i].EndPoint;
            foreach (var (name, shared) in new[] { ("http", http), ("https", https) })
            {
                if (at.Port == shared.Port && Overlap(at.Address, shared.Address))
                {
                    throw new ProxyRoutesException($"listeners[{i}].address: {at} takes the port of the shared {name} listener {shared}; a published port cannot share it");
                }
            }
        }

        return (new ProxySharedListeners(http.ToString(), https.ToString()), domains);
    }

    private static ProxyDomain ParseDomain(JsonElement item, string at)
    {
        if (item.ValueKind != JsonValueKind.Object)
        {
            throw new ProxyRoutesException($"{at}: want an object with domain, tls, stack, port, revision and upstream");
        }

        var domain = RequiredString(item, at, "domain");
        if (DomainName.Problem(domain) is { } problem)
        {
            throw new ProxyRoutesException($"{at}.domain: {problem}");
        }

        if (!item.TryGetProperty("tls", out var tls) || tls.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
        {
            throw new ProxyRoutesException($"{at}.tls: required, true or false");
        }

        var (stack, port, revision, upstream) = ParseTarget(item, at);
        return new ProxyDomain(domain, tls.GetBoolean(), stack, port, revision, upstream);
    }

    /// <summary>Whether two listen addresses on one port collide: the same address, or either is every address.</summary>
    internal static bool Overlap(IPAddress a, IPAddress b) =>
        a.Equals(b) || a.Equals(IPAddress.Any) || b.Equals(IPAddress.Any) || a.Equals(IPAddress.IPv6Any) || b.Equals(IPAddress.IPv6Any);

    private static IPEndPoint ParseAddress(string addressText, string at)
    {
        if (!IPEndPoint.TryParse(addressText, out var address) || address.Port == 0 || !addressText.Contains(':', StringComparison.Ordinal))
        {
            throw new ProxyRoutesException($"{at}: \"{addressText}\" is not IP:port (127.0.0.1:3000, 0.0.0.0:80, [::]:80) with a port from 1 to 65535");
        }

        return address;
    }

    private static (string Stack, string Port, long Revision, string Upstream) ParseTarget(JsonElement item, string at)
    {
        var stack = RequiredString(item, at, "stack");
        var port = RequiredString(item, at, "port");
        if (!item.TryGetProperty("revision", out var revisionElement) || revisionElement.ValueKind != JsonValueKind.Number
            || !revisionElement.TryGetInt64(out var revision) || revision < 0)
        {
            throw new ProxyRoutesException($"{at}.revision: required, a whole number from 0");
        }

        var upstream = RequiredString(item, at, "upstream");
        if (!IsHostPort(upstream))
        {
            throw new ProxyRoutesException($"{at}.upstream: \"{upstream}\" is not host:port (172.18.0.5:8080) with a port from 1 to 65535");
        }

        return (stack, port, revision, upstream);
    }

    private static ProxyListener ParseListener(JsonElement item, string at)
    {
        if (item.ValueKind != JsonValueKind.Object)
        {
            throw new ProxyRoutesException($"{at}: want an object with address, protocol, stack, port, revision and upstream");
        }

        var address = ParseAddress(RequiredString(item, at, "address"), $"{at}.address");

        var protocolText = RequiredString(item, at, "protocol");
        var protocol = protocolText switch
        {
            "http" => ProxyProtocol.Http,
            "tcp" => ProxyProtocol.Tcp,
            _ => throw new ProxyRoutesException($"{at}.protocol: \"{protocolText}\" is not http or tcp"),
        };

        var (stack, port, revision, upstream) = ParseTarget(item, at);
        return new ProxyListener(address.ToString(), protocol, stack, port, revision, upstream);
    }

    private static string RequiredString(JsonElement item, string at, string name)
    {
        if (!item.TryGetProperty(name, out var value) || value.ValueKind != JsonValueKind.String || value.GetString() is not { Length: > 0 } text)
        {
            throw new ProxyRoutesException($"{at}.{name}: required, a non-empty string");
        }

        return text;
    }

    /// <summary>An IP endpoint, or a DNS name with a port.</summary>
    private static bool IsHostPort(string text)
    {
        if (IPEndPoint.TryParse(text, out var ip))
        {
            return ip.Port != 0 && text.Contains(':', StringComparison.Ordinal);
        }

        var colon = text.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
        {
            return false;
        }

        return Uri.CheckHostName(text[..colon]) == UriHostNameType.Dns;
    }
}

/// <summary>A routes file that the proxy refuses; the message names the field and what is wanted.</summary>
public sealed class ProxyRoutesException(string message) : Exception(message);
