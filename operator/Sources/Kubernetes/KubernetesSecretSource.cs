using System.Net;
using System.Text;
using k8s;
using k8s.Autorest;
using k8s.Models;
using Skiff.Reconcile;
using Skiff.State;

namespace Skiff.Sources.Kubernetes;

/// <summary>
/// Secrets in the resource's namespace, read on demand (no cluster-wide watch on Secrets: a missing
/// one is retried by requeue). Generated database credentials live in the Secret NAME-db, with no
/// owner reference, so they live as long as the data.
/// </summary>
public sealed class KubernetesSecretSource(IKubernetes client) : ISecretSource
{
    public async Task<IReadOnlyDictionary<string, byte[]>?> GetSecretAsync(string @namespace, string name, CancellationToken ct)
    {
        var secret = await ReadAsync(@namespace, name, ct);
        return secret is null ? null : Data(secret);
    }

    /// <summary>The Secret's type; an empty one is Opaque, as the API server defaults it.</summary>
    public async Task<string?> GetSecretTypeAsync(string @namespace, string name, CancellationToken ct) =>
        (await ReadAsync(@namespace, name, ct)) is { } secret ? (string.IsNullOrEmpty(secret.Type) ? "Opaque" : secret.Type) : null;

    public async Task<DatabaseCredentials> EnsureDatabaseCredentialsAsync(StackNames names, string database, string user, CancellationToken ct)
    {
        var existing = await ReadAsync(names.Namespace, names.DatabaseSecret, ct);
        if (existing is null)
        {
            var password = Passwords.Generate();
            var creds = new DatabaseCredentials(user, password, database);
            var secret = new V1Secret
            {
                ApiVersion = "v1",
                Kind = "Secret",
                Type = "Opaque",
                Metadata = new V1ObjectMeta
                {
                    Name = names.DatabaseSecret,
                    NamespaceProperty = names.Namespace,
                    Labels = new Dictionary<string, string>
                    {
                        [SkiffLabels.ManagedBy] = SkiffLabels.ManagedByValue,
                        [SkiffLabels.App] = names.Name,
                    },
                    Annotations = new Dictionary<string, string>
                    {
                        ["skiff.dev/note"] = "Generated database credentials. Kept after the AppDeployment is deleted unless reclaimPolicy is Delete.",
                    },
                },
                Data = new Dictionary<string, byte[]>
                {
                    ["username"] = Encoding.UTF8.GetBytes(user),
                    ["password"] = Encoding.UTF8.GetBytes(password),
                    ["database"] = Encoding.UTF8.GetBytes(database),
                    ["url"] = Encoding.UTF8.GetBytes(creds.Url),
                },
            };
            try
            {
                await client.CoreV1.CreateNamespacedSecretAsync(secret, names.Namespace, cancellationToken: ct);
                return creds;
            }
            catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.Conflict)
            {
                // Created meanwhile by another reconcile: use that one.
                existing = await ReadAsync(names.Namespace, names.DatabaseSecret, ct)
                    ?? throw new InvalidOperationException($"Secret {names.DatabaseSecret} exists and cannot be read");
            }
        }

        var data = Data(existing);
        string Get(string key, string fallback) => data.TryGetValue(key, out var v) ? Encoding.UTF8.GetString(v) : fallback;
        return new DatabaseCredentials(Get("username", user), Get("password", ""), Get("database", database));
    }

    public async Task DeleteDatabaseCredentialsAsync(StackNames names, CancellationToken ct)
    {
        try
        {
            await client.CoreV1.DeleteNamespacedSecretAsync(names.DatabaseSecret, names.Namespace, cancellationToken: ct);
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
        {
        }
    }

    private async Task<V1Secret?> ReadAsync(string ns, string name, CancellationToken ct)
    {
        try
        {
            return await client.CoreV1.ReadNamespacedSecretAsync(name, ns, cancellationToken: ct);
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
    }

    private static Dictionary<string, byte[]> Data(V1Secret secret)
    {
        var data = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var (k, v) in secret.Data ?? new Dictionary<string, byte[]>())
        {
            data[k] = v;
        }

        foreach (var (k, v) in secret.StringData ?? new Dictionary<string, string>())
        {
            data[k] = Encoding.UTF8.GetBytes(v);
        }

        return data;
    }
}
