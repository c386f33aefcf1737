using Skiff.Api;
using Skiff.Validation;

namespace Skiff.Yaml;

/// <summary>
/// Which documents a folder may hold besides Skiff's: another tool's kinds (a ConfigMap, a Flux
/// Kustomization) are skipped, but a kind in Skiff's API group that Skiff does not serve, or a
/// near-miss of a Skiff kind, is a typo: skipping it would make its stack "disappear" and be pruned.
/// </summary>
public static class ResourceKinds
{
    /// <summary>Skiff's API group.</summary>
    public const string Group = "skiff.dev";

    private static readonly string[] SkiffKinds = [AppDeployment.KindName, ImageGCPolicy.KindName];

    /// <summary>
    /// The problem with a document whose (kind, apiVersion) Skiff does not read, or null when the document
    /// is another tool's and may be skipped. Only for kinds other than AppDeployment, ImageGCPolicy and Secret.
    /// </summary>
    public static string? Problem(string kind, string? apiVersion)
    {
        var inSkiffGroup = apiVersion is not null
            && (apiVersion.Equals(Group, StringComparison.OrdinalIgnoreCase) || apiVersion.StartsWith(Group + "/", StringComparison.OrdinalIgnoreCase));
        // A near miss of a Skiff kind (AppDeploymnet, appdeployment) is a typo whatever its apiVersion says.
        var nearest = SkiffKinds.Select(k => (Kind: k, Distance: SchemaChecker.Distance(k.ToLowerInvariant(), kind.ToLowerInvariant())))
            .Where(k => k.Distance <= 2)
            .OrderBy(k => k.Distance)
            .Select(k => k.Kind)
            .FirstOrDefault();
        if (!inSkiffGroup && nearest is null)
        {
            return null;
        }

        var unknown = $"unknown kind {Text.Quote(kind)} for apiVersion {apiVersion ?? "(none)"}";
        if (nearest is not null)
        {
            return inSkiffGroup && apiVersion == SkiffApi.ApiVersion
                ? $"{unknown}; did you mean {nearest}?"
                : $"{unknown}; did you mean {nearest} (apiVersion {SkiffApi.ApiVersion})?";
        }

        return $"{unknown}; Skiff serves {string.Join(" and ", SkiffKinds)} in {SkiffApi.ApiVersion}";
    }
}
