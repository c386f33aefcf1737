using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;

namespace Skiff.TestApiServer;

/// <summary>
/// OpenAPI v3 documents per group/version, built from the CRD schemas, so that kubectl explain works and kubectl sees that
/// PATCH supports fieldValidation (it then validates on the server, as against a real apiserver). OpenAPI v2 is not
/// served (404): kubectl asks for it as protobuf and carries on without it, falling back to JSON merge patch for custom
/// resources as it does against a real server.
/// </summary>
internal sealed class OpenApi
{
    private const string ObjectMetaRef = "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
    private readonly Dictionary<string, string> _documents = [];
    private readonly Dictionary<string, string> _hashes = [];

    public OpenApi(ResourceCatalog catalog)
    {
        foreach (var gv in catalog.All.GroupBy(t => t.Group.Length == 0 ? "api/v1" : $"apis/{t.Group}/{t.Version}"))
        {
            var doc = Json.Serialize(Document(gv.ToList()));
            _documents[gv.Key] = doc;
            _hashes[gv.Key] = Convert.ToHexString(SHA512.HashData(Encoding.UTF8.GetBytes(doc)));
        }
    }

    public string Index()
    {
        var paths = new JsonObject();
        foreach (var (key, hash) in _hashes)
        {
            paths[key] = new JsonObject { ["serverRelativeURL"] = $"/openapi/v3/{key}?hash={hash}" };
        }

        return Json.Serialize(new JsonObject { ["paths"] = paths });
    }

    /// <summary>The document for "api/v1" or "apis/group/version".</summary>
    public string? Document(string key) => _documents.GetValueOrDefault(key);

    private static JsonObject Document(List<ResourceType> types)
    {
        var paths = new JsonObject();
        var schemas = new JsonObject
        {
            ["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"] = ObjectMeta(),
            ["io.k8s.apimachinery.pkg.apis.meta.v1.Patch"] = new JsonObject
            {
                ["description"] = "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.",
                ["type"] = "object",
            },
        };
        foreach (var t in types)
        {
            var prefix = t.Group.Length == 0 ? "/api/v1" : $"/apis/{t.Group}/{t.Version}";
            var item = t.Namespaced ? $"{prefix}/namespaces/{{namespace}}/{t.Plural}/{{name}}" : $"{prefix}/{t.Plural}/{{name}}";
            var collection = t.Namespaced ? $"{prefix}/namespaces/{{namespace}}/{t.Plural}" : $"{prefix}/{t.Plural}";
            paths[item] = new JsonObject
            {
                ["get"] = Operation(t, "get", "read"),
                ["put"] = Operation(t, "put", "replace"),
                ["delete"] = Operation(t, "delete", "delete"),
                ["patch"] = PatchOperation(t, "patch"),
            };
            paths[collection] = new JsonObject
            {
                ["get"] = Operation(t, "list", "list"),
                ["post"] = Operation(t, "post", "create"),
            };
            if (t.HasStatus)
            {
                paths[item + "/status"] = new JsonObject
                {
                    ["get"] = Operation(t, "get", "read", "Status"),
                    ["put"] = Operation(t, "put", "replace", "Status"),
                    ["patch"] = PatchOperation(t, "patch", "Status"),
                };
            }

            schemas[t.OpenApiName] = KindSchema(t);
        }

        return new JsonObject
        {
            ["openapi"] = "3.0.0",
            ["info"] = new JsonObject { ["title"] = "Kubernetes", ["version"] = "v1.32.0" },
            ["paths"] = paths,
            ["components"] = new JsonObject { ["schemas"] = schemas },
        };
    }

    private static JsonObject Gvk(ResourceType t) => new() { ["group"] = t.Group, ["kind"] = t.Kind, ["version"] = t.Version };

    private static JsonObject Ref(ResourceType t) => new() { ["$ref"] = $"#/components/schemas/{t.OpenApiName}" };

    private static JsonObject Operation(ResourceType t, string action, string verb, string suffix = "") => new()
    {
        ["operationId"] = $"{verb}{t.Kind}{suffix}",
        ["responses"] = new JsonObject
        {
            ["200"] = new JsonObject
            {
                ["description"] = "OK",
                ["content"] = new JsonObject { ["application/json"] = new JsonObject { ["schema"] = Ref(t) } },
            },
        },
        ["x-kubernetes-action"] = action,
        ["x-kubernetes-group-version-kind"] = Gvk(t),
    };

    private static JsonObject PatchOperation(ResourceType t, string action, string suffix = "")
    {
        var op = Operation(t, action, "patch", suffix);
        var patchSchema = new JsonObject { ["schema"] = new JsonObject { ["$ref"] = "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Patch" } };
        // No strategic-merge-patch+json: kubectl then sends JSON merge patches, which is what the server implements.
        op["requestBody"] = new JsonObject
        {
            ["content"] = new JsonObject
            {
                ["application/apply-patch+yaml"] = patchSchema.DeepClone(),
                ["application/json-patch+json"] = patchSchema.DeepClone(),
                ["application/merge-patch+json"] = patchSchema.DeepClone(),
            },
            ["required"] = true,
        };
        var parameters = new JsonArray();
        foreach (var (name, type) in new[] { ("dryRun", "string"), ("fieldManager", "string"), ("fieldValidation", "string"), ("force", "boolean") })
        {
            parameters.Add(new JsonObject
            {
                ["name"] = name,
                ["in"] = "query",
                ["schema"] = new JsonObject { ["type"] = type, ["uniqueItems"] = true },
            });
        }

        op["parameters"] = parameters;
        return op;
    }

    private static JsonObject KindSchema(ResourceType t)
    {
        var schema = t.Schema is null
            ? new JsonObject { ["description"] = $"{t.Kind} (served by the test API server without a detailed schema).", ["type"] = "object", ["x-kubernetes-preserve-unknown-fields"] = true }
            : (JsonObject)t.Schema.DeepClone();
        if (schema["properties"] is not JsonObject props)
        {
            props = new JsonObject();
            schema["properties"] = props;
        }

        props["apiVersion"] = new JsonObject
        {
            ["description"] = "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources",
            ["type"] = "string",
        };
        props["kind"] = new JsonObject
        {
            ["description"] = "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
            ["type"] = "string",
        };
        props["metadata"] = new JsonObject
        {
            ["allOf"] = new JsonArray(new JsonObject { ["$ref"] = ObjectMetaRef }),
            ["description"] = "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
        };
        schema["x-kubernetes-group-version-kind"] = new JsonArray(Gvk(t));
        return schema;
    }

    private static JsonObject ObjectMeta()
    {
        JsonObject Str(string d) => new() { ["type"] = "string", ["description"] = d };
        JsonObject Map(string d) => new() { ["type"] = "object", ["additionalProperties"] = new JsonObject { ["type"] = "string", ["default"] = "" }, ["description"] = d };
        return new JsonObject
        {
            ["description"] = "ObjectMeta is metadata that all persisted resources must have, which includes all objects users must create.",
            ["type"] = "object",
            ["properties"] = new JsonObject
            {
                ["annotations"] = Map("Annotations is an unstructured key value map stored with a resource that may be set by external tools to store and retrieve arbitrary metadata."),
                ["creationTimestamp"] = Str("CreationTimestamp is a timestamp representing the server time when this object was created."),
                ["deletionTimestamp"] = Str("DeletionTimestamp is RFC 3339 date and time at which this resource will be deleted."),
                ["finalizers"] = new JsonObject
                {
                    ["type"] = "array",
                    ["items"] = new JsonObject { ["type"] = "string", ["default"] = "" },
                    ["x-kubernetes-list-type"] = "set",
                    ["x-kubernetes-patch-strategy"] = "merge",
                    ["description"] = "Must be empty before the object is deleted from the registry.",
                },
                ["generateName"] = Str("GenerateName is an optional prefix, used by the server, to generate a unique name ONLY IF the Name field has not been provided."),
                ["generation"] = new JsonObject { ["type"] = "integer", ["format"] = "int64", ["description"] = "A sequence number representing a specific generation of the desired state." },
                ["labels"] = Map("Map of string keys and values that can be used to organize and categorize (scope and select) objects."),
                ["name"] = Str("Name must be unique within a namespace."),
                ["namespace"] = Str("Namespace defines the space within which each name must be unique."),
                ["resourceVersion"] = Str("An opaque value that represents the internal version of this object."),
                ["uid"] = Str("UID is the unique in time and space value for this object."),
            },
        };
    }
}
