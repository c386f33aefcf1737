using System.Text.Json.Nodes;
using k8s.Models;

namespace Skiff.TestApiServer;

/// <summary>Every resource the server serves: the built-in kinds and those of the CRDs it was started with.</summary>
internal sealed class ResourceCatalog
{
    private readonly List<ResourceType> _types = [];

    public ResourceCatalog(IEnumerable<string> crdPaths)
    {
        _types.AddRange(BuiltIns());
        foreach (var path in crdPaths)
        {
            foreach (var doc in Yaml.ParseAll(File.ReadAllText(path)))
            {
                if (doc is JsonObject crd && Json.Str(crd["kind"]) == "CustomResourceDefinition")
                {
                    _types.AddRange(FromCrd(crd));
                }
            }
        }
    }

    public IReadOnlyList<ResourceType> All => _types;

    public ResourceType? Find(string group, string version, string plural) =>
        _types.FirstOrDefault(t => t.Group == group && t.Version == version && t.Plural == plural);

    public IEnumerable<IGrouping<string, ResourceType>> Groups() =>
        _types.Where(t => t.Group.Length > 0).GroupBy(t => t.Group);

    /// <summary>Reads a CustomResourceDefinition: one ResourceType per served version.</summary>
    internal static IEnumerable<ResourceType> FromCrd(JsonObject crd)
    {
        var spec = crd["spec"]!.AsObject();
        var group = Json.Str(spec["group"])!;
        var names = spec["names"]!.AsObject();
        var kind = Json.Str(names["kind"])!;
        var plural = Json.Str(names["plural"])!;
        var singular = Json.Str(names["singular"]) ?? kind.ToLowerInvariant();
        var shortNames = (names["shortNames"] as JsonArray)?.Select(n => Json.Str(n)!).ToList() ?? [];
        var categories = (names["categories"] as JsonArray)?.Select(n => Json.Str(n)!).ToList() ?? [];
        var namespaced = Json.Str(spec["scope"]) != "Cluster";
        foreach (var v in spec["versions"]!.AsArray().OfType<JsonObject>())
        {
            if (v["served"] is JsonValue served && !served.GetValue<bool>())
            {
                continue;
            }

            var columns = new List<PrinterColumn>();
            if (v["additionalPrinterColumns"] is JsonArray apc)
            {
                foreach (var c in apc.OfType<JsonObject>())
                {
                    var jsonPath = Json.Str(c["jsonPath"]) ?? "";
                    columns.Add(new PrinterColumn(
                        Json.Str(c["name"])!,
                        Json.Str(c["type"]) ?? "string",
                        jsonPath,
                        Json.Str(c["format"]) ?? "",
                        Json.Str(c["description"]) ?? $"Custom resource definition column (in JSONPath format): {jsonPath}",
                        Json.Int(c["priority"]) ?? 0));
                }
            }
            else
            {
                columns.Add(new PrinterColumn("Age", "date", ".metadata.creationTimestamp", "",
                    "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"));
            }

            var subresources = v["subresources"] as JsonObject ?? spec["subresources"] as JsonObject;
            var schema = (v["schema"]?["openAPIV3Schema"] ?? spec["validation"]?["openAPIV3Schema"]) as JsonObject;
            var selectable = (v["selectableFields"] as JsonArray)?.OfType<JsonObject>()
                .Select(f => Json.Str(f["jsonPath"])!.TrimStart('.')).ToList() ?? [];
            yield return new ResourceType
            {
                Group = group,
                Version = Json.Str(v["name"])!,
                Kind = kind,
                Plural = plural,
                Singular = singular,
                ShortNames = shortNames,
                Categories = categories,
                Namespaced = namespaced,
                HasStatus = subresources?["status"] is not null,
                IsCustom = true,
                Schema = schema is null ? null : (JsonObject)schema.DeepClone(),
                Columns = columns,
                SelectableFields = selectable,
            };
        }
    }

    private static IEnumerable<ResourceType> BuiltIns()
    {
        yield return new ResourceType
        {
            Group = "", Version = "v1", Kind = "Namespace", Plural = "namespaces", Singular = "namespace",
            ShortNames = ["ns"], Namespaced = false, HasStatus = true, Model = typeof(V1Namespace),
            Columns = [new("Status", "string", ".status.phase", "", "The status of the namespace"), Age()],
            SelectableFields = ["status.phase"],
        };
        yield return new ResourceType
        {
            Group = "", Version = "v1", Kind = "Secret", Plural = "secrets", Singular = "secret", Namespaced = true, Model = typeof(V1Secret),
            Columns = [new("Type", "string", ".type", "", "The type of the secret"), new("Data", "string", "#data", "", "The number of entries in the data"), Age()],
            SelectableFields = ["type"],
        };
        yield return new ResourceType
        {
            Group = "", Version = "v1", Kind = "ConfigMap", Plural = "configmaps", Singular = "configmap", ShortNames = ["cm"], Namespaced = true, Model = typeof(V1ConfigMap),
            Columns = [new("Data", "string", "#data", "", "The number of entries in the data"), Age()],
        };
        yield return new ResourceType
        {
            Group = "", Version = "v1", Kind = "Event", Plural = "events", Singular = "event", ShortNames = ["ev"], Namespaced = true,
            Columns =
            [
                new("Last Seen", "string", "#lastSeen", "", "Time when last event from this group was observed."),
                new("Type", "string", ".type", "", "Type of this event."),
                new("Reason", "string", ".reason", "", "Short, machine understandable string that describes the reason for the transition into the object's current status."),
                new("Object", "string", "#object", "", "The object that this event is about."),
                new("Subobject", "string", ".involvedObject.fieldPath", "", "The subobject that this event is about.", 1),
                new("Source", "string", "#source", "", "The component reporting this event.", 1),
                new("Message", "string", ".message", "", "A human-readable description of the status of this operation."),
                new("First Seen", "string", "#firstSeen", "", "The time at which the event was first recorded.", 1),
                new("Count", "string", "#count", "", "The number of times this event has occurred.", 1),
                new("Name", "string", ".metadata.name", "name", "Name of the event.", 1),
            ],
            SelectableFields =
            [
                "involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
                "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
                "reason", "reportingComponent", "source", "type",
            ],
        };
        foreach (var workload in Workloads.Types())
        {
            yield return workload;
        }

        // Cluster-scoped, no controller: a test writes a node's conditions (DiskPressure) as a kubelet would.
        yield return new ResourceType
        {
            Group = "", Version = "v1", Kind = "Node", Plural = "nodes", Singular = "node", ShortNames = ["no"], Namespaced = false, HasStatus = true, Model = typeof(V1Node),
            Columns = [Age()],
        };
        yield return new ResourceType
        {
            Group = "coordination.k8s.io", Version = "v1", Kind = "Lease", Plural = "leases", Singular = "lease", Namespaced = true,
            Columns = [new("Holder", "string", ".spec.holderIdentity", "", "The holder of the lease"), Age()],
        };
    }

    private static PrinterColumn Age() => new("Age", "date", ".metadata.creationTimestamp", "",
        "CreationTimestamp is a timestamp representing the server time when this object was created.");
}
