using System.Text;
using Skiff.Api;
using Skiff.Reconcile;

namespace Skiff.Hosting;

/// <summary>
/// Reads the <c>kubernetes.io/tls</c> Secrets that a stack's ports name in <c>spec.app.ports[].tlsSecret</c>, from the
/// stack's source (a Kubernetes Secret, or a Secret document of the folder), and checks each domain's certificate with
/// <see cref="Acme.SecretCertificates.Check"/>. A Secret that cannot be used is each domain's problem, never an exception.
/// </summary>
public static class TlsSecrets
{
    /// <summary>The certificate of each domain of the ports with a <c>tlsSecret</c> (and <c>tls</c> not false) of <paramref name="spec"/>.</summary>
    public static async Task<IReadOnlyList<Acme.SecretCertificate>> ResolveAsync(
        string @namespace, AppDeploymentSpec spec, ISecretSource secrets, DateTimeOffset now, CancellationToken ct)
    {
        var found = new List<Acme.SecretCertificate>();
        var ports = spec.App?.Ports ?? [];
        for (var i = 0; i < ports.Count; i++)
        {
            if (ports[i] is not { TlsSecret: { Length: > 0 } name, Domains: { Count: > 0 } domains } port || port.Tls == false)
            {
                continue;
            }

            var field = $"spec.app.ports[{i}].tlsSecret";
            var (pem, problem) = await ReadAsync(@namespace, name, field, secrets, ct);
            foreach (var domain in domains.Where(d => !string.IsNullOrEmpty(d)).Distinct(StringComparer.Ordinal))
            {
                found.Add(problem is not null
                    ? new Acme.SecretCertificate(domain, field, name, null, null, null, problem)
                    : Acme.SecretCertificates.Check(domain, field, name, pem!.Value.Certificate, pem.Value.Key, now));
            }
        }

        return found;
    }

    /// <summary>The Secret's tls.crt and tls.key as text, or the problem naming the field and the fix.</summary>
    private static async Task<((string Certificate, string Key)? Pem, string? Problem)> ReadAsync(
        string @namespace, string name, string field, ISecretSource secrets, CancellationToken ct)
    {
        var create = $"kubectl create secret tls {name} --cert=FILE --key=FILE -n {@namespace}, or a Secret document of type {Acme.SecretCertificates.SecretType} in the folder";
        IReadOnlyDictionary<string, byte[]>? data;
        string? type;
        try
        {
            data = await secrets.GetSecretAsync(@namespace, name, ct);
            type = data is null ? null : await secrets.GetSecretTypeAsync(@namespace, name, ct);
        }
        catch (SecretUnreadableException e)
        {
            return (null, $"{field}: {e.Message}");
        }

        if (data is null)
        {
            return (null, $"{field}: Secret \"{name}\" not found in namespace \"{@namespace}\"; create it ({create}); Skiff retries by itself");
        }

        if (type is not null && type != Acme.SecretCertificates.SecretType)
        {
            return (null, $"{field}: Secret \"{name}\" is of type {type}, not {Acme.SecretCertificates.SecretType}; create it again as one ({create})");
        }

        foreach (var key in new[] { Acme.SecretCertificates.CertificateKey, Acme.SecretCertificates.PrivateKeyKey })
        {
            if (!data.TryGetValue(key, out var value) || value.Length == 0)
            {
                return (null, $"{field}: Secret \"{name}\" has no key \"{key}\"; a {Acme.SecretCertificates.SecretType} Secret holds {Acme.SecretCertificates.CertificateKey} and {Acme.SecretCertificates.PrivateKeyKey} ({create})");
            }
        }

        return ((Encoding.UTF8.GetString(data[Acme.SecretCertificates.CertificateKey]), Encoding.UTF8.GetString(data[Acme.SecretCertificates.PrivateKeyKey])), null);
    }
}
