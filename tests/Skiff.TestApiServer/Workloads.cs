using System.Globalization;
using System.Text.Json.Nodes;
using k8s.Models;

namespace Skiff.TestApiServer;

/// <summary>
/// The built-in kinds a <c>runtime: kubernetes</c> stack renders to (apps/v1 Deployment and StatefulSet, batch/v1 Job,
/// v1 Service, PersistentVolumeClaim and Pod, networking.k8s.io/v1 NetworkPolicy), with what the real registries do for them
/// on create and update: generation, status subresources, a Job's generated selector, a Service's cluster IP, and the
/// fields that are immutable. No controller runs: Deployments never roll, Jobs never run and StatefulSets create no
/// claims here; a test writes their status (and the claims) as the controller-manager would.
/// </summary>
internal static class Workloads
{
    /// <summary>
    /// The list semantics of the kinds' OpenAPI (x-kubernetes-list-type/map-keys) that server-side apply merges by: only
    /// the lists a stack's objects use; any other list is atomic, as it is for a kind the server has no schema for.
    /// </summary>
    private static JsonObject PodSpec() => Obj(new()
    {
        ["containers"] = MapList(Container(), "name"),
        ["initContainers"] = MapList(Container(), "name"),
        ["volumes"] = MapList(null, "name"),
        ["imagePullSecrets"] = MapList(null, "name"),
    });

    private static JsonObject Container() => Obj(new()
    {
        ["env"] = MapList(null, "name"),
        ["ports"] = MapList(null, "containerPort", "protocol"),
        ["volumeMounts"] = MapList(null, "mountPath"),
    });

    private static JsonObject PodTemplate() => Obj(new() { ["spec"] = PodSpec() });

    private static JsonObject Conditions() => MapList(null, "type");

    private static JsonObject Obj(Dictionary<string, JsonNode?> properties) =>
        new() { ["type"] = "object", ["properties"] = new JsonObject(properties) };

    private static JsonObject MapList(JsonObject? items, params string[] keys) => new()
    {
        ["type"] = "array",
        ["x-kubernetes-list-type"] = "map",
        ["x-kubernetes-list-map-keys"] = new JsonArray(keys.Select(k => (JsonNode?)k).ToArray()),
        ["items"] = items ?? new JsonObject { ["type"] = "object" },
    };

    public static IEnumerable<ResourceType> Types()
    {
        yield return new ResourceType
        {
            Group = "apps", Version = "v1", Kind = "Deployment", Plural = "deployments", Singular = "deployment", ShortNames = ["deploy"],
            Categories = ["all"], Namespaced = true, HasStatus = true, BuiltInGeneration = true, Model = typeof(V1Deployment),
            MergeSchema = Obj(new()
            {
                ["spec"] = Obj(new() { ["template"] = PodTemplate() }),
                ["status"] = Obj(new() { ["conditions"] = Conditions() }),
            }),
            Columns =
            [
                new("Ready", "string", "#ready", "", "Number of the pods that are ready out of the desired replicas."),
                new("Up-to-date", "integer", ".status.updatedReplicas", "", "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
                new("Available", "integer", ".status.availableReplicas", "", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
                Age(),
                new("Containers", "string", "#containers", "", "Names of each container in the template.", 1),
                new("Images", "string", "#images", "", "Images referenced by each container in the template.", 1),
            ],
        };
        yield return new ResourceType
        {
            Group = "apps", Version = "v1", Kind = "StatefulSet", Plural = "statefulsets", Singular = "statefulset", ShortNames = ["sts"],
            Categories = ["all"], Namespaced = true, HasStatus = true, BuiltInGeneration = true, Model = typeof(V1StatefulSet),
            MergeSchema = Obj(new()
            {
                ["spec"] = Obj(new() { ["template"] = PodTemplate() }),
                ["status"] = Obj(new() { ["conditions"] = Conditions() }),
            }),
            Columns =
            [
                new("Ready", "string", "#ready", "", "Number of the pods that are ready out of the desired replicas."),
                Age(),
                new("Containers", "string", "#containers", "", "Names of each container in the template.", 1),
                new("Images", "string", "#images", "", "Images referenced by each container in the template.", 1),
            ],
        };
        yield return new ResourceType
        {
            Group = "batch", Version = "v1", Kind = "Job", Plural = "jobs", Singular = "job", Categories = ["all"], Namespaced = true,
            HasStatus = true, BuiltInGeneration = true, Model = typeof(V1Job),
            MergeSchema = Obj(new()
            {
                ["spec"] = Obj(new() { ["template"] = PodTemplate() }),
                ["status"] = Obj(new() { ["conditions"] = Conditions() }),
            }),
            Columns =
            [
                new("Status", "string", "#jobStatus", "", "Status of the job."),
                new("Completions", "string", "#completions", "", "The desired number of successfully finished pods the job should be run with."),
                Age(),
            ],
        };
        yield return new ResourceType
        {
            Group = "", Version = "v1", Kind = "Service", Plural = "services", Singular = "service", ShortNames = ["svc"], Categories = ["all"],
            Namespaced = true, HasStatus = true, ReturnDeletedObject = true, Model = typeof(V1Service),
            MergeSchema = Obj(new() { ["spec"] = Obj(new() { ["ports"] = MapList(null, "port", "protocol") }) }),
            Columns =
            [
                new("Type", "string", ".spec.type", "", "The type of service."),
                new("Cluster-IP", "string", ".spec.clusterIP", "", "The cluster IP of the service."),
                new("Port(s)", "string", "#ports", "", "The ports of the service."),
                Age(),
            ],
        };
        yield return new ResourceType
        {
            Group = "", Version = "v1", Kind = "PersistentVolumeClaim", Plural = "persistentvolumeclaims", Singular = "persistentvolumeclaim",
            ShortNames = ["pvc"], Namespaced = true, HasStatus = true, ReturnDeletedObject = true, Model = typeof(V1PersistentVolumeClaim),
            Columns =
            [
                new("Status", "string", ".status.phase", "", "The phase of the claim."),
                new("Volume", "string", ".spec.volumeName", "", "The volume bound to the claim."),
                new("Capacity", "string", ".status.capacity.storage", "", "The capacity of the bound volume."),
                Age(),
            ],
        };
        // No kubelet: a test creates a Deployment's or Job's pods and writes their status (waiting reasons, restarts) as the kubelet would.
        yield return new ResourceType
        {
            Group = "", Version = "v1", Kind = "Pod", Plural = "pods", Singular = "pod", ShortNames = ["po"], Categories = ["all"],
            Namespaced = true, HasStatus = true, Model = typeof(V1Pod),
            MergeSchema = Obj(new()
            {
                ["spec"] = PodSpec(),
                ["status"] = Obj(new() { ["conditions"] = Conditions(), ["containerStatuses"] = MapList(null, "name") }),
            }),
            Columns =
            [
                new("Ready", "string", "#podReady", "", "The number of ready containers out of the pod's containers."),
                new("Status", "string", "#podStatus", "", "The pod's phase, or why a container waits or ended."),
                new("Restarts", "string", "#restarts", "", "The restarts of the pod's containers."),
                Age(),
            ],
        };
        yield return new ResourceType
        {
            Group = "networking.k8s.io", Version = "v1", Kind = "NetworkPolicy", Plural = "networkpolicies", Singular = "networkpolicy",
            ShortNames = ["netpol"], Namespaced = true, BuiltInGeneration = true, Model = typeof(V1NetworkPolicy),
            Columns = [new("Pod-Selector", "string", "#podSelector", "", "The pods the policy selects."), Age()],
        };
    }

    private static PrinterColumn Age() => new("Age", "date", ".metadata.creationTimestamp", "",
        "CreationTimestamp is a timestamp representing the server time when this object was created.");

    /// <summary>What the registries set on create: a Job's selector and pod labels from its uid, a Service's cluster IP, a claim's phase.</summary>
    public static void PrepareCreate(ResourceType type, JsonObject obj, Func<string> nextClusterIp)
    {
        switch (type.Group, type.Kind)
        {
            case ("batch", "Job"):
                if (obj["spec"] is JsonObject spec && !(spec["manualSelector"] is JsonValue manual && manual.GetValue<bool>()) && spec["selector"] is null)
                {
                    // The Job registry selects the Job's pods by its uid and labels the template to match.
                    var uid = Json.MetaStr(obj, "uid")!;
                    var name = Json.Name(obj);
                    spec["selector"] = new JsonObject { ["matchLabels"] = new JsonObject { ["batch.kubernetes.io/controller-uid"] = uid } };
                    var template = spec["template"] as JsonObject ?? new JsonObject();
                    spec["template"] = template;
                    var meta = template["metadata"] as JsonObject ?? new JsonObject();
                    template["metadata"] = meta;
                    var labels = meta["labels"] as JsonObject ?? new JsonObject();
                    meta["labels"] = labels;
                    labels["batch.kubernetes.io/controller-uid"] = uid;
                    labels["batch.kubernetes.io/job-name"] = name;
                    labels["controller-uid"] = uid;
                    labels["job-name"] = name;
                }

                break;
            case ("", "Service"):
                if (obj["spec"] is not JsonObject svc)
                {
                    svc = new JsonObject();
                    obj["spec"] = svc;
                }

                svc["type"] ??= "ClusterIP";
                if (Json.Str(svc["clusterIP"]) is not { Length: > 0 })
                {
                    var ip = nextClusterIp();
                    svc["clusterIP"] = ip;
                    svc["clusterIPs"] = new JsonArray(ip);
                }

                break;
            case ("", "PersistentVolumeClaim"):
                obj["status"] = new JsonObject { ["phase"] = "Pending" };
                break;
        }
    }

    /// <summary>The update validation of the registries for the fields that may not change.</summary>
    public static List<FieldError> ValidateUpdate(ResourceType type, JsonObject current, JsonObject updated)
    {
        var errors = new List<FieldError>();
        JsonNode? At(JsonObject o, params string[] path)
        {
            JsonNode? n = o;
            foreach (var p in path)
            {
                n = (n as JsonObject)?[p];
            }

            return n;
        }

        void Immutable(params string[] path)
        {
            if (!JsonNode.DeepEquals(At(current, path), At(updated, path)))
            {
                errors.Add(FieldError.Invalid(string.Join('.', path), At(updated, path)?.DeepClone(), "field is immutable"));
            }
        }

        switch (type.Group, type.Kind)
        {
            case ("apps", "Deployment"):
                Immutable("spec", "selector");
                break;
            case ("batch", "Job"):
                Immutable("spec", "selector");
                Immutable("spec", "template");
                break;
            case ("apps", "StatefulSet"):
                var allowed = new HashSet<string> { "replicas", "ordinals", "template", "updateStrategy", "persistentVolumeClaimRetentionPolicy", "minReadySeconds" };
                var before = (At(current, "spec") as JsonObject)?.Where(p => !allowed.Contains(p.Key)).ToDictionary(p => p.Key, p => p.Value) ?? [];
                var after = (At(updated, "spec") as JsonObject)?.Where(p => !allowed.Contains(p.Key)).ToDictionary(p => p.Key, p => p.Value) ?? [];
                if (before.Count != after.Count || before.Any(p => !after.TryGetValue(p.Key, out var v) || !JsonNode.DeepEquals(p.Value, v)))
                {
                    errors.Add(FieldError.Forbidden("spec", "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"));
                }

                break;
            case ("", "Service"):
                if (Json.Str(At(updated, "spec", "clusterIP")) is { Length: > 0 } && !JsonNode.DeepEquals(At(current, "spec", "clusterIP"), At(updated, "spec", "clusterIP")))
                {
                    errors.Add(FieldError.Invalid("spec.clusterIPs[0]", At(updated, "spec", "clusterIP")?.DeepClone(), "may not change once set"));
                }

                break;
        }

        return errors;
    }

    /// <summary>A Service keeps its allocated cluster IP when an update (an apply that does not name one) drops it.</summary>
    public static void KeepAllocated(ResourceType type, JsonObject current, JsonObject updated)
    {
        if (type is not { Group: "", Kind: "Service" } || updated["spec"] is not JsonObject spec)
        {
            return;
        }

        if (Json.Str(spec["clusterIP"]) is not { Length: > 0 } && current["spec"]?["clusterIP"] is { } ip)
        {
            spec["clusterIP"] = ip.DeepClone();
            spec["clusterIPs"] = current["spec"]?["clusterIPs"]?.DeepClone();
        }
    }

    /// <summary>The computed table cells of these kinds, as kubectl's printers show them.</summary>
    public static JsonNode? Cell(JsonObject obj, string column)
    {
        var spec = obj["spec"] as JsonObject;
        var status = obj["status"] as JsonObject;
        var containers = spec?["template"]?["spec"]?["containers"] as JsonArray ?? [];
        switch (column)
        {
            case "#ready":
                return $"{Json.Long(status?["readyReplicas"]) ?? 0}/{Json.Long(spec?["replicas"]) ?? 1}";
            case "#containers":
                return string.Join(",", containers.Select(c => Json.Str(c?["name"])));
            case "#images":
                return string.Join(",", containers.Select(c => Json.Str(c?["image"])));
            case "#jobStatus":
                var conditions = status?["conditions"] as JsonArray ?? [];
                bool Has(string t) => conditions.Any(c => Json.Str(c?["type"]) == t && Json.Str(c?["status"]) == "True");
                return Has("Complete") ? "Complete" : Has("Failed") ? "Failed" : "Running";
            case "#completions":
                return $"{Json.Long(status?["succeeded"]) ?? 0}/{Json.Long(spec?["completions"]) ?? 1}";
            case "#ports":
                var ports = spec?["ports"] as JsonArray ?? [];
                return ports.Count == 0 ? "<none>" : string.Join(",", ports.Select(p =>
                    $"{Json.Long(p?["port"])?.ToString(CultureInfo.InvariantCulture)}/{Json.Str(p?["protocol"]) ?? "TCP"}"));
            case "#podReady":
                var statuses = status?["containerStatuses"] as JsonArray ?? [];
                return $"{statuses.Count(c => c?["ready"] is JsonValue r && r.GetValue<bool>())}/{(spec?["containers"] as JsonArray ?? []).Count}";
            case "#podStatus":
                // As kubectl: a waiting or terminated container's reason wins over the phase.
                var reason = (status?["containerStatuses"] as JsonArray ?? [])
                    .Select(c => Json.Str(c?["state"]?["waiting"]?["reason"]) ?? Json.Str(c?["state"]?["terminated"]?["reason"]))
                    .FirstOrDefault(r => r is not null);
                return reason ?? Json.Str(status?["phase"]) ?? "Pending";
            case "#restarts":
                return (status?["containerStatuses"] as JsonArray ?? []).Sum(c => Json.Long(c?["restartCount"]) ?? 0).ToString(CultureInfo.InvariantCulture);
            case "#podSelector":
                var labels = spec?["podSelector"]?["matchLabels"] as JsonObject;
                return labels is null || labels.Count == 0 ? "<none>" : string.Join(",", labels.Select(l => $"{l.Key}={Json.Str(l.Value)}"));
            default:
                return null;
        }
    }
}
