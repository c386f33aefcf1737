using System.Text;
using System.Text.Json;

using Skiff.Validation;

namespace Skiff.Reconcile;

/// <summary>Reads registry credentials from a kubernetes.io/dockerconfigjson Secret (what <c>imagePullSecret</c> names).</summary>
public static class DockerConfigJson
{
    public static RegistryAuth? FindAuth(IReadOnlyDictionary<string, byte[]> secret, string image, out string? error)
    {
        error = null;
        if (!secret.TryGetValue(".dockerconfigjson", out var bytes))
        {
            error = "the Secret has no .dockerconfigjson key; create it with kubectl create secret docker-registry";
            return null;
        }

        try
        {
            using var doc = JsonDocument.Parse(bytes);
            if (!doc.RootElement.TryGetProperty("auths", out var auths) || auths.ValueKind != JsonValueKind.Object)
            {
                error = ".dockerconfigjson has no \"auths\" object";
                return null;
            }

            var registry = ImageReference.Registry(image);
            foreach (var entry in auths.EnumerateObject())
            {
                var host = entry.Name.Replace("https://", "", StringComparison.Ordinal).Replace("http://", "", StringComparison.Ordinal).Split('/')[0];
                if (!string.Equals(host, registry, StringComparison.OrdinalIgnoreCase)
                    && !(registry == "docker.io" && host is "index.docker.io" or "registry-1.docker.io"))
                {
                    continue;
                }

                string? Get(string name) => entry.Value.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
                var username = Get("username");
                var password = Get("password");
                if (username is null && Get("auth") is { } auth)
                {
                    var decoded = Encoding.UTF8.GetString(Convert.FromBase64String(auth));
                    var colon = decoded.IndexOf(':');
                    if (colon > 0)
                    {
                        username = decoded[..colon];
                        password = decoded[(colon + 1)..];
                    }
                }

                return new RegistryAuth(username, password, null, entry.Name, Get("identitytoken"));
            }

            return null;
        }
        catch (Exception e) when (e is JsonException or FormatException)
        {
            error = ".dockerconfigjson is not valid JSON with base64 auth entries";
            return null;
        }
    }
}
