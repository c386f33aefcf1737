using System.Text.Json.Nodes;

namespace Skiff.TestApiServer;

/// <summary>A printer column of a CRD (additionalPrinterColumns) or of a built-in kind's table.</summary>
internal sealed record PrinterColumn(string Name, string Type, string JsonPath, string Format = "", string Description = "", int Priority = 0);

/// <summary>One served resource at one group/version: what discovery, OpenAPI, validation and tables need to know.</summary>
internal sealed class ResourceType
{
    public required string Group { get; init; }

    public required string Version { get; init; }

    public required string Kind { get; init; }

    public required string Plural { get; init; }

    public required string Singular { get; init; }

    public string ListKind => Kind + "List";

    public IReadOnlyList<string> ShortNames { get; init; } = [];

    public IReadOnlyList<string> Categories { get; init; } = [];

    public required bool Namespaced { get; init; }

    public bool HasStatus { get; init; }

    public bool IsCustom { get; init; }

    /// <summary>A built-in kind whose registry keeps metadata.generation (Deployment, StatefulSet, Job, NetworkPolicy).</summary>
    public bool BuiltInGeneration { get; init; }

    /// <summary>True for kinds whose changes outside metadata and status bump metadata.generation (custom resources and <see cref="BuiltInGeneration"/> kinds).</summary>
    public bool TracksGeneration => IsCustom || BuiltInGeneration;

    /// <summary>The structural openAPIV3Schema of a custom resource; null for built-in kinds (see <see cref="Model"/>).</summary>
    public JsonObject? Schema { get; init; }

    /// <summary>
    /// For a built-in kind: the KubernetesClient model whose fields are the kind's (generated from the upstream OpenAPI), by
    /// which the server decodes writes as the apiserver decodes into the Go type: unknown fields dropped and reported,
    /// mistyped values refused. Null: stored as given.
    /// </summary>
    public Type? Model { get; init; }

    /// <summary>A delete answers with the deleted object instead of a Status (the registries of Services and claims do).</summary>
    public bool ReturnDeletedObject { get; init; }

    /// <summary>For a built-in kind: the list semantics server-side apply merges by (the kind's x-kubernetes-list-type/map-keys), with no validation.</summary>
    public JsonObject? MergeSchema { get; init; }

    /// <summary>The schema field ownership and server-side apply follow: the structural schema, else the built-in kind's merge semantics.</summary>
    public JsonObject? ApplySchema => Schema ?? MergeSchema;

    public IReadOnlyList<PrinterColumn> Columns { get; init; } = [];

    /// <summary>Extra field selector labels beyond metadata.name and metadata.namespace.</summary>
    public IReadOnlyList<string> SelectableFields { get; init; } = [];

    public string ApiVersion => Group.Length == 0 ? Version : $"{Group}/{Version}";

    public string GroupVersion => ApiVersion;

    /// <summary>"appdeployments.skiff.dev", or "secrets" for the core group, as error messages spell it.</summary>
    public string QualifiedResource => Group.Length == 0 ? Plural : $"{Plural}.{Group}";

    /// <summary>"AppDeployment.skiff.dev", or "Secret", as 422 messages spell it.</summary>
    public string QualifiedKind => Group.Length == 0 ? Kind : $"{Kind}.{Group}";

    /// <summary>Objects of every version of one resource live in one store.</summary>
    public string StorageKey => $"{Group}/{Plural}";

    /// <summary>The schema key in OpenAPI documents, e.g. dev.skiff.v1alpha1.AppDeployment or io.k8s.api.core.v1.Secret.</summary>
    public string OpenApiName
    {
        get
        {
            if (Group.Length == 0)
            {
                return $"io.k8s.api.core.v1.{Kind}";
            }

            if (Group.EndsWith(".k8s.io", StringComparison.Ordinal))
            {
                return $"io.k8s.api.{Group[..^".k8s.io".Length]}.{Version}.{Kind}";
            }

            return string.Join('.', Group.Split('.').Reverse()) + $".{Version}.{Kind}";
        }
    }
}
