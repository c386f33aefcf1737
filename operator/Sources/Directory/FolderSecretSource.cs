using System.Text;
using Skiff.Reconcile;
using Skiff.State;

namespace Skiff.Sources.Directory;

/// <summary>Secrets for the folder source: Secret documents from the folder, generated credentials in the state folder.</summary>
public sealed class FolderSecretSource(
    StateStore state,
    Func<string, string, IReadOnlyDictionary<string, byte[]>?> folderSecrets,
    Func<string, string, string?>? folderSecretTypes = null) : ISecretSource
{
    /// <summary>The type of a Secret document of the folder (Opaque when it gives none); generated credentials are Opaque.</summary>
    public Task<string?> GetSecretTypeAsync(string @namespace, string name, CancellationToken ct) =>
        Task.FromResult(folderSecretTypes?.Invoke(@namespace, name) ?? (state.ReadSecret(@namespace, name) is null ? null : "Opaque"));

    public Task<IReadOnlyDictionary<string, byte[]>?> GetSecretAsync(string @namespace, string name, CancellationToken ct)
    {
        var fromFolder = folderSecrets(@namespace, name);
        if (fromFolder is not null)
        {
            return Task.FromResult<IReadOnlyDictionary<string, byte[]>?>(fromFolder);
        }

        var generated = state.ReadSecret(@namespace, name);
        return Task.FromResult<IReadOnlyDictionary<string, byte[]>?>(generated?.ToDictionary(kv => kv.Key, kv => Encoding.UTF8.GetBytes(kv.Value)));
    }

    public Task<DatabaseCredentials> EnsureDatabaseCredentialsAsync(StackNames names, string database, string user, CancellationToken ct)
    {
        // A Secret NAME-db in the folder wins: that is how a migrated stack keeps its existing password.
        if (folderSecrets(names.Namespace, names.DatabaseSecret) is { } given
            && given.TryGetValue("password", out var pw))
        {
            return Task.FromResult(new DatabaseCredentials(
                given.TryGetValue("username", out var u) ? Encoding.UTF8.GetString(u) : user,
                Encoding.UTF8.GetString(pw),
                given.TryGetValue("database", out var d) ? Encoding.UTF8.GetString(d) : database));
        }

        var stored = state.ReadSecret(names.Namespace, names.DatabaseSecret);
        if (stored is null || !stored.ContainsKey("password"))
        {
            var password = Passwords.Generate();
            var creds = new DatabaseCredentials(user, password, database);
            stored = new Dictionary<string, string>
            {
                ["username"] = user,
                ["password"] = password,
                ["database"] = database,
                ["url"] = creds.Url,
            };
            state.WriteSecret(names.Namespace, names.DatabaseSecret, stored);
        }

        return Task.FromResult(new DatabaseCredentials(stored["username"], stored["password"], stored["database"]));
    }

    public Task DeleteDatabaseCredentialsAsync(StackNames names, CancellationToken ct)
    {
        state.DeleteSecret(names.Namespace, names.DatabaseSecret);
        return Task.CompletedTask;
    }
}
