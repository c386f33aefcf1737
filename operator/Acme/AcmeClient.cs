using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Skiff.Acme;

/// <summary>
/// The subset of ACME (RFC 8555) that issuing a certificate over HTTP-01 needs: the directory, nonces (with
/// the <c>badNonce</c> retry of §6.5), an ES256 account (§7.3), an order (§7.4), its authorizations and their
/// HTTP-01 challenges (§8.3), finalization with a CSR and the PEM chain's download (§7.4.2).
/// </summary>
/// <remarks>
/// Why hand-written: NuGet (the only package registry the build uses) serves no ACME client, and the protocol
/// subset is small: JWS with one ECDSA key, JSON, polling. Debian 12 does package the <c>lego</c> binary
/// (<c>apt-cache policy lego</c>: 4.9.1-1 in bookworm main, from 2022; <c>golang-github-go-acme-lego-dev</c>, the
/// library, has no candidate), but driving it would add a second
/// program to the operator's image, a file layout of its own to translate into the proxy's
/// (<c>certificates/DOMAIN.crt</c>, accounts per e-mail) and the CA's errors only as the text of its stderr;
/// here the CA's problem documents, the renewal decisions and the metrics stay in one process.
///
/// # Guarantees
/// - Every failure the CA reports is an <see cref="AcmeException"/> carrying its problem document
///   (<c>type</c>, <c>detail</c>, HTTP status) in its message; transport failures stay <see cref="HttpRequestException"/>.
/// - A <c>badNonce</c> refusal is retried with the fresh nonce the refusal carries (a few times, then it is an error).
///
/// # Caveats
/// Not thread-safe: one client serves one issuance at a time (it keeps the last nonce and the account URL).
/// </remarks>
public sealed class AcmeClient
{
    private const string PemChain = "application/pem-certificate-chain";
    private const int BadNonceRetries = 5;
    private static readonly TimeSpan DefaultPoll = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan LongestPoll = TimeSpan.FromSeconds(30);

    private readonly HttpClient http;
    private readonly Uri directoryUrl;
    private readonly ECDsa accountKey;
    private readonly JsonObject jwk;
    private AcmeDirectory? directory;
    private string? nonce;

    /// <param name="http">The HTTP client (its handler decides which CA roots are trusted).</param>
    /// <param name="directoryUrl">The CA's directory, e.g. Let's Encrypt's <c>https://acme-v02.api.letsencrypt.org/directory</c>.</param>
    /// <param name="accountKey">The account's P-256 key (ES256).</param>
    public AcmeClient(HttpClient http, Uri directoryUrl, ECDsa accountKey)
    {
        if (accountKey.KeySize != 256)
        {
            throw new ArgumentException("The ACME account key must be an ECDSA P-256 key (ES256).", nameof(accountKey));
        }

        this.http = http;
        this.directoryUrl = directoryUrl;
        this.accountKey = accountKey;
        jwk = Jwk(accountKey);
        Thumbprint = JwkThumbprint(jwk);
    }

    /// <summary>The account key's JWK thumbprint (RFC 7638, SHA-256, base64url), the second half of every key authorization.</summary>
    public string Thumbprint { get; }

    /// <summary>The account's URL (the JWS <c>kid</c>) once <see cref="NewAccountAsync"/> ran.</summary>
    public Uri? AccountUrl { get; private set; }

    /// <summary>What the CA answers at <c>/.well-known/acme-challenge/TOKEN</c> for an HTTP-01 challenge (§8.1).</summary>
    public string KeyAuthorization(string token) => token + "." + Thumbprint;

    /// <summary>Reads the directory (once).</summary>
    public async Task<AcmeDirectory> GetDirectoryAsync(CancellationToken ct)
    {
        if (directory is not null)
        {
            return directory;
        }

        using var response = await http.GetAsync(directoryUrl, ct);
        var body = await ReadJsonAsync(response, "GET " + directoryUrl, ct);
        directory = new AcmeDirectory(
            RequiredUrl(body, "newNonce", directoryUrl),
            RequiredUrl(body, "newAccount", directoryUrl),
            RequiredUrl(body, "newOrder", directoryUrl),
            body["meta"]?["termsOfService"]?.GetValue<string>());
        return directory;
    }

    /// <summary>
    /// Creates the account for the key, or finds the one it already has (the CA answers 200 with its URL), agreeing
    /// to the CA's terms of service; <paramref name="email"/> becomes the <c>mailto:</c> contact the CA warns about expiry.
    /// </summary>
    public async Task<Uri> NewAccountAsync(string? email, CancellationToken ct)
    {
        var dir = await GetDirectoryAsync(ct);
        var payload = new JsonObject { ["termsOfServiceAgreed"] = true };
        if (!string.IsNullOrEmpty(email))
        {
            payload["contact"] = new JsonArray("mailto:" + email);
        }

        using var response = await PostAsync(dir.NewAccount, payload, useKid: false, ct);
        await ReadJsonAsync(response, "newAccount", ct);
        AccountUrl = response.Headers.Location ?? throw new AcmeException("newAccount", "the CA's answer has no Location header (the account URL)");
        return AccountUrl;
    }

    /// <summary>Asks for a certificate for <paramref name="domains"/> (DNS identifiers).</summary>
    public async Task<AcmeOrder> NewOrderAsync(IEnumerable<string> domains, CancellationToken ct)
    {
        var dir = await GetDirectoryAsync(ct);
        var identifiers = new JsonArray([.. domains.Select(d => (JsonNode)new JsonObject { ["type"] = "dns", ["value"] = d })]);
        using var response = await PostAsync(dir.NewOrder, new JsonObject { ["identifiers"] = identifiers }, useKid: true, ct);
        var body = await ReadJsonAsync(response, "newOrder", ct);
        var url = response.Headers.Location ?? throw new AcmeException("newOrder", "the CA's answer has no Location header (the order URL)");
        return ParseOrder(url, body);
    }

    /// <summary>Reads an order again (POST-as-GET).</summary>
    public async Task<AcmeOrder> GetOrderAsync(Uri orderUrl, CancellationToken ct)
    {
        var (body, _) = await PostAsGetAsync(orderUrl, "order", ct);
        return ParseOrder(orderUrl, body);
    }

    /// <summary>Reads an authorization (POST-as-GET).</summary>
    public async Task<AcmeAuthorization> GetAuthorizationAsync(Uri url, CancellationToken ct)
    {
        var (body, retryAfter) = await PostAsGetAsync(url, "authorization", ct);
        return ParseAuthorization(url, body, retryAfter);
    }

    /// <summary>Tells the CA the challenge is ready to be validated (§7.5.1: an empty JSON object).</summary>
    public async Task RespondToChallengeAsync(Uri challengeUrl, CancellationToken ct)
    {
        using var response = await PostAsync(challengeUrl, new JsonObject(), useKid: true, ct);
        await ReadJsonAsync(response, "challenge", ct);
    }

    /// <summary>
    /// Polls an authorization until it is no longer pending (honouring Retry-After); an invalid one is an
    /// <see cref="AcmeException"/> with its challenge's error (why the CA could not validate).
    /// </summary>
    public async Task<AcmeAuthorization> WaitForAuthorizationAsync(Uri url, CancellationToken ct)
    {
        while (true)
        {
            var authz = await GetAuthorizationAsync(url, ct);
            switch (authz.Status)
            {
                case "valid":
                    return authz;
                case "pending" or "processing":
                    await Task.Delay(PollDelay(authz.RetryAfter), ct);
                    continue;
                default:
                    var error = authz.Challenges.Select(c => c.Error).FirstOrDefault(e => e is not null);
                    throw error is not null
                        ? new AcmeException($"authorization of {authz.Domain}", error)
                        : new AcmeException($"authorization of {authz.Domain}", $"the authorization is {authz.Status}");
            }
        }
    }

    /// <summary>Sends the CSR (DER) of a <c>ready</c> order and polls until the certificate is issued.</summary>
    public async Task<AcmeOrder> FinalizeAsync(AcmeOrder order, byte[] csrDer, CancellationToken ct)
    {
        using (var response = await PostAsync(order.Finalize, new JsonObject { ["csr"] = Base64Url(csrDer) }, useKid: true, ct))
        {
            await ReadJsonAsync(response, "finalize", ct);
        }

        return await WaitForOrderAsync(order.Url, "valid", ct);
    }

    /// <summary>Polls an order until it reaches <paramref name="wanted"/> (<c>ready</c> or <c>valid</c>); <c>invalid</c> is an error.</summary>
    public async Task<AcmeOrder> WaitForOrderAsync(Uri orderUrl, string wanted, CancellationToken ct)
    {
        while (true)
        {
            var (body, retryAfter) = await PostAsGetAsync(orderUrl, "order", ct);
            var order = ParseOrder(orderUrl, body);
            if (order.Status == wanted || (wanted == "ready" && order.Status == "valid"))
            {
                return order;
            }

            if (order.Status is "pending" or "processing" or "ready")
            {
                await Task.Delay(PollDelay(retryAfter), ct);
                continue;
            }

            throw order.Error is { } error
                ? new AcmeException("order", error)
                : new AcmeException("order", $"the order is {order.Status}, expected {wanted}");
        }
    }

    /// <summary>Downloads the issued certificate: PEM, the leaf first, then the chain.</summary>
    public async Task<string> DownloadCertificateAsync(Uri certificateUrl, CancellationToken ct)
    {
        for (var attempt = 0; ; attempt++)
        {
            using var request = await SignedRequestAsync(certificateUrl, payload: null, useKid: true, ct);
            request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(PemChain));
            using var response = await http.SendAsync(request, ct);
            RememberNonce(response);
            if (!response.IsSuccessStatusCode)
            {
                var problem = await ProblemAsync(response, ct);
                if (problem.IsBadNonce && attempt < BadNonceRetries)
                {
                    continue;
                }

                throw new AcmeException("certificate download", problem);
            }

            return await response.Content.ReadAsStringAsync(ct);
        }
    }

    /// <summary>A P-256 public key as a JWK with only its required members (RFC 7518 §6.2.1).</summary>
    public static JsonObject Jwk(ECDsa key)
    {
        var p = key.ExportParameters(includePrivateParameters: false);
        return new JsonObject
        {
            ["crv"] = "P-256",
            ["kty"] = "EC",
            ["x"] = Base64Url(p.Q.X!),
            ["y"] = Base64Url(p.Q.Y!),
        };
    }

    /// <summary>
    /// RFC 7638: SHA-256 over the JWK's required members, sorted by name, as JSON without whitespace; base64url.
    /// The members must be strings (true of EC's crv/kty/x/y and RSA's e/kty/n).
    /// </summary>
    public static string JwkThumbprint(JsonObject requiredMembers)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            foreach (var member in requiredMembers.OrderBy(m => m.Key, StringComparer.Ordinal))
            {
                writer.WriteString(member.Key, member.Value!.GetValue<string>());
            }

            writer.WriteEndObject();
        }

        return Base64Url(SHA256.HashData(buffer.ToArray()));
    }

    /// <summary>
    /// A flattened JWS (RFC 7515 §7.2.2) signed with ES256: the protected header carries alg, nonce, url and either
    /// the JWK (newAccount) or the account URL as kid; <paramref name="payload"/> null is POST-as-GET's empty payload.
    /// </summary>
    internal static string Sign(ECDsa key, JsonObject keyIdentity, string nonce, Uri url, JsonNode? payload)
    {
        var header = new JsonObject { ["alg"] = "ES256", ["nonce"] = nonce, ["url"] = url.AbsoluteUri };
        foreach (var member in keyIdentity)
        {
            header[member.Key] = member.Value?.DeepClone();
        }

        var protectedPart = Base64Url(Encoding.UTF8.GetBytes(header.ToJsonString()));
        var payloadPart = payload is null ? "" : Base64Url(Encoding.UTF8.GetBytes(payload.ToJsonString()));
        // ES256 is the IEEE P1363 r||s form (RFC 7518 §3.4), .NET's default for ECDsa.SignData.
        var signature = key.SignData(Encoding.ASCII.GetBytes(protectedPart + "." + payloadPart), HashAlgorithmName.SHA256,
            DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
        return new JsonObject
        {
            ["protected"] = protectedPart,
            ["payload"] = payloadPart,
            ["signature"] = Base64Url(signature),
        }.ToJsonString();
    }

    internal static string Base64Url(ReadOnlySpan<byte> bytes) =>
        Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    /// <summary>How long to wait before polling again: the CA's Retry-After, else a second; never more than 30 s.</summary>
    internal static TimeSpan PollDelay(TimeSpan? retryAfter) =>
        retryAfter is { } r && r > TimeSpan.Zero ? (r < LongestPoll ? r : LongestPoll) : DefaultPoll;

    private async Task<(JsonObject Body, TimeSpan? RetryAfter)> PostAsGetAsync(Uri url, string what, CancellationToken ct)
    {
        using var response = await PostAsync(url, payload: null, useKid: true, ct);
        var body = await ReadJsonAsync(response, what, ct);
        return (body, RetryAfter(response));
    }

    /// <summary>Sends a signed POST, retrying a <c>badNonce</c> refusal with the nonce it carried.</summary>
    private async Task<HttpResponseMessage> PostAsync(Uri url, JsonNode? payload, bool useKid, CancellationToken ct)
    {
        for (var attempt = 0; ; attempt++)
        {
            using var request = await SignedRequestAsync(url, payload, useKid, ct);
            var response = await http.SendAsync(request, ct);
            RememberNonce(response);
            if (response.StatusCode == HttpStatusCode.BadRequest && attempt < BadNonceRetries)
            {
                await response.Content.LoadIntoBufferAsync(ct);
                var problem = await ProblemAsync(response, ct);
                if (problem.IsBadNonce)
                {
                    response.Dispose();
                    continue;
                }
            }

            return response;
        }
    }

    private async Task<HttpRequestMessage> SignedRequestAsync(Uri url, JsonNode? payload, bool useKid, CancellationToken ct)
    {
        var keyIdentity = useKid
            ? new JsonObject { ["kid"] = (AccountUrl ?? throw new InvalidOperationException("NewAccountAsync must run first.")).AbsoluteUri }
            : new JsonObject { ["jwk"] = jwk.DeepClone() };
        var body = Sign(accountKey, keyIdentity, await TakeNonceAsync(ct), url, payload);
        return new HttpRequestMessage(HttpMethod.Post, url)
        {
            Content = new StringContent(body, new MediaTypeHeaderValue("application/jose+json")),
        };
    }

    private async Task<string> TakeNonceAsync(CancellationToken ct)
    {
        if (nonce is { } fresh)
        {
            nonce = null;
            return fresh;
        }

        var dir = await GetDirectoryAsync(ct);
        using var request = new HttpRequestMessage(HttpMethod.Head, dir.NewNonce);
        using var response = await http.SendAsync(request, ct);
        if (!response.IsSuccessStatusCode || !response.Headers.TryGetValues("Replay-Nonce", out var values))
        {
            throw new AcmeException("newNonce", $"the CA gave no nonce (HTTP {(int)response.StatusCode})");
        }

        return values.First();
    }

    private void RememberNonce(HttpResponseMessage response)
    {
        if (response.Headers.TryGetValues("Replay-Nonce", out var values))
        {
            nonce = values.First();
        }
    }

    private static async Task<JsonObject> ReadJsonAsync(HttpResponseMessage response, string what, CancellationToken ct)
    {
        if (!response.IsSuccessStatusCode)
        {
            throw new AcmeException(what, await ProblemAsync(response, ct));
        }

        var text = await response.Content.ReadAsStringAsync(ct);
        try
        {
            return JsonNode.Parse(text) as JsonObject ?? throw new AcmeException(what, "the CA's answer is not a JSON object");
        }
        catch (JsonException)
        {
            throw new AcmeException(what, $"the CA's answer is not JSON (HTTP {(int)response.StatusCode})");
        }
    }

    private static async Task<AcmeProblem> ProblemAsync(HttpResponseMessage response, CancellationToken ct)
    {
        var text = await response.Content.ReadAsStringAsync(ct);
        try
        {
            if (JsonNode.Parse(text) is JsonObject problem)
            {
                return AcmeProblem.From(problem, (int)response.StatusCode);
            }
        }
        catch (JsonException)
        {
        }

        return new AcmeProblem("about:blank", $"HTTP {(int)response.StatusCode} {response.ReasonPhrase}", (int)response.StatusCode);
    }

    private static TimeSpan? RetryAfter(HttpResponseMessage response)
    {
        if (response.Headers.RetryAfter is { } retry)
        {
            if (retry.Delta is { } delta)
            {
                return delta;
            }

            if (retry.Date is { } date)
            {
                return date - DateTimeOffset.UtcNow;
            }
        }

        return null;
    }

    private static AcmeOrder ParseOrder(Uri url, JsonObject body) => new(
        url,
        Text(body, "status"),
        [.. (body["authorizations"] as JsonArray ?? []).Select(a => new Uri(url, a!.GetValue<string>()))],
        new Uri(url, Text(body, "finalize")),
        body["certificate"]?.GetValue<string>() is { } cert ? new Uri(url, cert) : null,
        body["error"] is JsonObject error ? AcmeProblem.From(error, null) : null);

    private static AcmeAuthorization ParseAuthorization(Uri url, JsonObject body, TimeSpan? retryAfter) => new(
        url,
        Text(body, "status"),
        body["identifier"]?["value"]?.GetValue<string>() ?? "",
        [.. (body["challenges"] as JsonArray ?? []).OfType<JsonObject>().Select(c => new AcmeChallenge(
            Text(c, "type"),
            new Uri(url, Text(c, "url")),
            c["token"]?.GetValue<string>() ?? "",
            Text(c, "status"),
            c["error"] is JsonObject error ? AcmeProblem.From(error, null) : null))],
        retryAfter);

    private static string Text(JsonObject body, string name) =>
        body[name]?.GetValue<string>() ?? throw new AcmeException("reading the CA's answer", $"the member \"{name}\" is missing");

    private static Uri RequiredUrl(JsonObject body, string name, Uri baseUrl) => new(baseUrl, Text(body, name));
}

/// <summary>The directory's URLs (RFC 8555 §7.1.1).</summary>
public sealed record AcmeDirectory(Uri NewNonce, Uri NewAccount, Uri NewOrder, string? TermsOfService);

/// <summary>An order (§7.1.3): its status, authorizations, finalize URL, the certificate's URL once valid and an error once invalid.</summary>
public sealed record AcmeOrder(Uri Url, string Status, IReadOnlyList<Uri> Authorizations, Uri Finalize, Uri? Certificate, AcmeProblem? Error);

/// <summary>An authorization (§7.1.4) of one identifier.</summary>
public sealed record AcmeAuthorization(Uri Url, string Status, string Domain, IReadOnlyList<AcmeChallenge> Challenges, TimeSpan? RetryAfter);

/// <summary>A challenge (§7.1.5); <see cref="Error"/> says why validation failed.</summary>
public sealed record AcmeChallenge(string Type, Uri Url, string Token, string Status, AcmeProblem? Error);

/// <summary>A problem document (RFC 7807, §6.7): the CA's error <c>type</c> and human-readable <c>detail</c>.</summary>
public sealed record AcmeProblem(string Type, string Detail, int? Status)
{
    public bool IsBadNonce => Type == "urn:ietf:params:acme:error:badNonce";

    public static AcmeProblem From(JsonObject problem, int? status)
    {
        var subproblems = (problem["subproblems"] as JsonArray ?? []).OfType<JsonObject>()
            .Select(s => s["detail"]?.GetValue<string>()).Where(d => !string.IsNullOrEmpty(d)).ToList();
        var detail = problem["detail"]?.GetValue<string>() ?? "";
        if (subproblems.Count > 0)
        {
            detail = $"{detail} ({string.Join("; ", subproblems)})";
        }

        var code = problem["status"] is JsonValue v && v.TryGetValue<int>(out var s) ? s : status;
        return new AcmeProblem(problem["type"]?.GetValue<string>() ?? "about:blank", detail, code);
    }

    public override string ToString() =>
        Status is { } s ? $"{Detail} [{Type}, HTTP {s.ToString(CultureInfo.InvariantCulture)}]" : $"{Detail} [{Type}]";
}

/// <summary>The CA refused a step, or answered something this client cannot use; the message says which step and why.</summary>
public sealed class AcmeException : Exception
{
    public AcmeException(string step, AcmeProblem problem)
        : base($"ACME {step}: the CA refused: {problem}") => Problem = problem;

    public AcmeException(string step, string message)
        : base($"ACME {step}: {message}")
    {
    }

    /// <summary>The CA's problem document, when it sent one.</summary>
    public AcmeProblem? Problem { get; }
}
