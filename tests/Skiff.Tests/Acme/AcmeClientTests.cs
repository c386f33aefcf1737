using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Skiff.Acme;

namespace Skiff.Tests.Acme;

public sealed class AcmeClientTests
{
    [Fact]
    public void JwkThumbprint_of_RFC_7638s_example_key_is_the_RFCs()
    {
        // RFC 7638 §3.1: the RSA key of RFC 7517 appendix A.1 (kid and alg are not required members and do not count).
        var jwk = new JsonObject
        {
            ["kty"] = "RSA",
            ["n"] = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn6" +
                "4tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n9" +
                "1CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            ["e"] = "AQAB",
        };

        Assert.Equal("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs", AcmeClient.JwkThumbprint(jwk));
    }

    [Fact]
    public void Jwk_of_a_P256_key_has_the_required_members_and_its_thumbprint_is_the_canonical_one()
    {
        // A P-256 public key with a published thumbprint (panva/jose's calculateJwkThumbprint example).
        using var key = ECDsa.Create(new ECParameters
        {
            Curve = ECCurve.NamedCurves.nistP256,
            Q = new ECPoint
            {
                X = FromBase64Url("jJ6Flys3zK9jUhnOHf6G49Dyp5hah6CNP84-gY-n9eo"),
                Y = FromBase64Url("nhI6iD5eFXgBTLt_1p3aip-5VbZeMhxeFSpjfEAf7Ww"),
            },
        });

        var jwk = AcmeClient.Jwk(key);

        Assert.Equal("""{"crv":"P-256","kty":"EC","x":"jJ6Flys3zK9jUhnOHf6G49Dyp5hah6CNP84-gY-n9eo","y":"nhI6iD5eFXgBTLt_1p3aip-5VbZeMhxeFSpjfEAf7Ww"}""", jwk.ToJsonString());
        Assert.Equal("w9eYdC6_s_tLQ8lH6PUpc0mddazaqtPgeC2IgWDiqY8", AcmeClient.JwkThumbprint(jwk));
    }

    [Fact]
    public void KeyAuthorization_is_the_token_a_dot_and_the_account_keys_thumbprint()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var http = new HttpClient();
        var client = new AcmeClient(http, new Uri("https://ca.invalid/dir"), key);

        Assert.Equal("tok-EN_1." + AcmeClient.JwkThumbprint(AcmeClient.Jwk(key)), client.KeyAuthorization("tok-EN_1"));
        Assert.Matches("^[A-Za-z0-9_-]{43}$", client.Thumbprint);
    }

    [Fact]
    public void An_account_key_that_is_not_P256_is_refused()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP384);
        using var http = new HttpClient();
        Assert.Throws<ArgumentException>(() => new AcmeClient(http, new Uri("https://ca.invalid/dir"), key));
    }

    [Fact]
    public void Sign_makes_a_flattened_ES256_JWS_over_the_protected_header_and_payload()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var url = new Uri("https://ca.example/acme/new-order");

        var withJwk = JsonNode.Parse(AcmeClient.Sign(key, new JsonObject { ["jwk"] = AcmeClient.Jwk(key) }, "n0nce", url, new JsonObject { ["a"] = 1 }))!;
        var header = JsonNode.Parse(Encoding.UTF8.GetString(FromBase64Url(withJwk["protected"]!.GetValue<string>())))!;
        Assert.Equal("ES256", header["alg"]!.GetValue<string>());
        Assert.Equal("n0nce", header["nonce"]!.GetValue<string>());
        Assert.Equal(url.AbsoluteUri, header["url"]!.GetValue<string>());
        Assert.Equal(AcmeClient.Jwk(key).ToJsonString(), header["jwk"]!.ToJsonString());
        Assert.Null(header["kid"]);
        Assert.Equal("""{"a":1}""", Encoding.UTF8.GetString(FromBase64Url(withJwk["payload"]!.GetValue<string>())));
        Assert.True(Verifies(key, withJwk));

        // POST-as-GET: an empty payload, and the account URL as kid instead of the key.
        var asGet = JsonNode.Parse(AcmeClient.Sign(key, new JsonObject { ["kid"] = "https://ca.example/acct/1" }, "n2", url, payload: null))!;
        var getHeader = JsonNode.Parse(Encoding.UTF8.GetString(FromBase64Url(asGet["protected"]!.GetValue<string>())))!;
        Assert.Equal("https://ca.example/acct/1", getHeader["kid"]!.GetValue<string>());
        Assert.Null(getHeader["jwk"]);
        Assert.Equal("", asGet["payload"]!.GetValue<string>());
        Assert.True(Verifies(key, asGet));

        // A signature of 64 bytes (r||s, RFC 7518 §3.4), not DER; a changed payload no longer verifies.
        Assert.Equal(64, FromBase64Url(asGet["signature"]!.GetValue<string>()).Length);
        asGet["payload"] = "e30";
        Assert.False(Verifies(key, asGet));
    }

    [Theory]
    [InlineData(null, 1.0)]
    [InlineData(0.0, 1.0)]
    [InlineData(3.0, 3.0)]
    [InlineData(600.0, 30.0)]
    public void PollDelay_follows_Retry_After_within_bounds(double? retryAfterSeconds, double expectedSeconds) =>
        Assert.Equal(TimeSpan.FromSeconds(expectedSeconds), AcmeClient.PollDelay(retryAfterSeconds is { } s ? TimeSpan.FromSeconds(s) : null));

    [Fact]
    public async Task A_badNonce_refusal_is_retried_with_the_nonce_it_carried()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var ca = new ScriptedCa();
        ca.Answers.Enqueue(_ => ca.Problem(HttpStatusCode.BadRequest, "urn:ietf:params:acme:error:badNonce", "JWS has an invalid anti-replay nonce", nonce: "fresh-1"));
        ca.Answers.Enqueue(_ => ca.Json(HttpStatusCode.Created, """{"status":"valid"}""", nonce: "fresh-2", location: "https://ca.test/acct/7"));
        using var http = new HttpClient(ca);
        var client = new AcmeClient(http, new Uri("https://ca.test/dir"), key);

        var account = await client.NewAccountAsync("ops@example.com", CancellationToken.None);

        Assert.Equal(new Uri("https://ca.test/acct/7"), account);
        Assert.Equal(["from-newNonce", "fresh-1"], ca.SignedNonces);
        var payload = JsonNode.Parse(ca.LastPayload!)!;
        Assert.True(payload["termsOfServiceAgreed"]!.GetValue<bool>());
        Assert.Equal("mailto:ops@example.com", payload["contact"]![0]!.GetValue<string>());
    }

    [Fact]
    public async Task A_refusal_carries_the_CAs_problem_type_and_detail()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var ca = new ScriptedCa();
        ca.Answers.Enqueue(_ => ca.Json(HttpStatusCode.OK, "{}", nonce: "n1", location: "https://ca.test/acct/7"));
        ca.Answers.Enqueue(_ => ca.Problem(HttpStatusCode.BadRequest, "urn:ietf:params:acme:error:rejectedIdentifier", "Policy forbids issuing for name"));
        using var http = new HttpClient(ca);
        var client = new AcmeClient(http, new Uri("https://ca.test/dir"), key);
        await client.NewAccountAsync(null, CancellationToken.None);
        Assert.Null(JsonNode.Parse(ca.LastPayload!)!["contact"]);

        var refused = await Assert.ThrowsAsync<AcmeException>(() => client.NewOrderAsync(["bad.example"], CancellationToken.None));

        Assert.Equal("ACME newOrder: the CA refused: Policy forbids issuing for name [urn:ietf:params:acme:error:rejectedIdentifier, HTTP 400]", refused.Message);
        Assert.Equal("urn:ietf:params:acme:error:rejectedIdentifier", refused.Problem!.Type);
    }

    private static bool Verifies(ECDsa key, JsonNode jws) =>
        key.VerifyData(
            Encoding.ASCII.GetBytes(jws["protected"]!.GetValue<string>() + "." + jws["payload"]!.GetValue<string>()),
            FromBase64Url(jws["signature"]!.GetValue<string>()),
            HashAlgorithmName.SHA256);

    private static byte[] FromBase64Url(string text)
    {
        var s = text.Replace('-', '+').Replace('_', '/');
        return Convert.FromBase64String(s + new string('=', (4 - s.Length % 4) % 4));
    }

    /// <summary>A CA that answers the directory and newNonce itself, and every POST from <see cref="Answers"/>, recording the nonces signed.</summary>
    private sealed class ScriptedCa : HttpMessageHandler
    {
        public Queue<Func<HttpRequestMessage, HttpResponseMessage>> Answers { get; } = new();

        public List<string> SignedNonces { get; } = [];

        public string? LastPayload { get; private set; }

        public HttpResponseMessage Json(HttpStatusCode status, string body, string? nonce = null, string? location = null)
        {
            var response = new HttpResponseMessage(status) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
            if (nonce is not null)
            {
                response.Headers.Add("Replay-Nonce", nonce);
            }

            if (location is not null)
            {
                response.Headers.Location = new Uri(location);
            }

            return response;
        }

        public HttpResponseMessage Problem(HttpStatusCode status, string type, string detail, string? nonce = null) =>
            Json(status, new JsonObject { ["type"] = type, ["detail"] = detail, ["status"] = (int)status }.ToJsonString(), nonce);

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            if (request.Method == HttpMethod.Get)
            {
                return Json(HttpStatusCode.OK, """{"newNonce":"https://ca.test/nonce","newAccount":"https://ca.test/acct","newOrder":"https://ca.test/order"}""");
            }

            if (request.Method == HttpMethod.Head)
            {
                return Json(HttpStatusCode.OK, "", nonce: "from-newNonce");
            }

            Assert.Equal("application/jose+json", request.Content!.Headers.ContentType!.MediaType);
            var jws = JsonNode.Parse(await request.Content.ReadAsStringAsync(cancellationToken))!;
            var header = JsonNode.Parse(Encoding.UTF8.GetString(FromBase64Url(jws["protected"]!.GetValue<string>())))!;
            SignedNonces.Add(header["nonce"]!.GetValue<string>());
            var payload = jws["payload"]!.GetValue<string>();
            LastPayload = payload.Length == 0 ? null : Encoding.UTF8.GetString(FromBase64Url(payload));
            return Answers.Dequeue()(request);
        }
    }
}
