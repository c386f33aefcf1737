using System.Text.Json.Nodes;

namespace Skiff.TestApiServer;

/// <summary>An error answered as a metav1.Status body, shaped like the real apiserver's.</summary>
internal sealed class ApiError(int code, JsonObject status) : Exception(status["message"]?.GetValue<string>())
{
    public int Code { get; } = code;

    public JsonObject Status { get; } = status;

    public static JsonObject StatusBody(int code, string reason, string message, JsonObject? details = null)
    {
        var body = new JsonObject
        {
            ["kind"] = "Status",
            ["apiVersion"] = "v1",
            ["metadata"] = new JsonObject(),
            ["status"] = "Failure",
            ["message"] = message,
        };
        if (reason.Length > 0)
        {
            body["reason"] = reason;
        }

        if (details is not null)
        {
            body["details"] = details;
        }

        body["code"] = code;
        return body;
    }

    private static JsonObject Details(string name, ResourceType type, string? kind = null)
    {
        var d = new JsonObject { ["name"] = name };
        if (type.Group.Length > 0)
        {
            d["group"] = type.Group;
        }

        d["kind"] = kind ?? type.Plural;
        return d;
    }

    public static ApiError NotFound(ResourceType type, string name) =>
        new(404, StatusBody(404, "NotFound", $"{type.QualifiedResource} \"{name}\" not found", Details(name, type)));

    public static ApiError NamespaceNotFound(string ns) =>
        new(404, StatusBody(404, "NotFound", $"namespaces \"{ns}\" not found", new JsonObject { ["name"] = ns, ["kind"] = "namespaces" }));

    public static ApiError AlreadyExists(ResourceType type, string name) =>
        new(409, StatusBody(409, "AlreadyExists", $"{type.QualifiedResource} \"{name}\" already exists", Details(name, type)));

    public static ApiError Conflict(ResourceType type, string name, string why = "the object has been modified; please apply your changes to the latest version and try again") =>
        new(409, StatusBody(409, "Conflict", $"Operation cannot be fulfilled on {type.QualifiedResource} \"{name}\": {why}", Details(name, type)));

    public static ApiError BadRequest(string message) => new(400, StatusBody(400, "BadRequest", message));

    public static ApiError MethodNotAllowed(string message) => new(405, StatusBody(405, "MethodNotAllowed", message));

    public static ApiError PathNotFound() => new(404, StatusBody(404, "NotFound", "the server could not find the requested resource", new JsonObject()));

    public static ApiError UnsupportedMediaType(string contentType) =>
        new(415, StatusBody(415, "UnsupportedMediaType", $"the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {contentType})"));

    public static ApiError Invalid(ResourceType type, string name, IReadOnlyList<FieldError> errors)
    {
        var causes = new JsonArray();
        foreach (var e in errors)
        {
            causes.Add(new JsonObject { ["reason"] = e.Reason, ["message"] = e.Body, ["field"] = e.Field });
        }

        var details = new JsonObject { ["name"] = name };
        if (type.Group.Length > 0)
        {
            details["group"] = type.Group;
        }

        details["kind"] = type.Kind;
        details["causes"] = causes;
        var aggregate = errors.Count == 1 ? errors[0].ToString() : "[" + string.Join(", ", errors) + "]";
        return new(422, StatusBody(422, "Invalid", $"{type.QualifiedKind} \"{name}\" is invalid: {aggregate}", details));
    }
}

/// <summary>A field.Error of k8s.io/apimachinery: the text of its Error() and its StatusCause reason.</summary>
internal sealed record FieldError(string Kind, string Field, string Detail, JsonNode? Value = null, bool HasValue = false)
{
    public string Reason => Kind switch
    {
        "Required value" => "FieldValueRequired",
        "Unsupported value" => "FieldValueNotSupported",
        "Too many" => "FieldValueTooMany",
        "Too long" => "FieldValueTooLong",
        "Forbidden" => "FieldValueForbidden",
        "Duplicate value" => "FieldValueDuplicate",
        _ => "FieldValueInvalid",
    };

    public string Body
    {
        get
        {
            var s = Kind;
            if (HasValue && Kind is not ("Required value" or "Forbidden" or "Too long"))
            {
                s += ": " + (Value is null ? "null" : Value.ToJsonString(Json.Options));
            }

            return Detail.Length > 0 ? s + ": " + Detail : s;
        }
    }

    public override string ToString() => $"{Field}: {Body}";

    public static FieldError Required(string field, string detail = "") => new("Required value", field, detail);

    public static FieldError Invalid(string field, JsonNode? value, string detail) => new("Invalid value", field, detail, value, true);

    public static FieldError NotSupported(string field, JsonNode? value, IEnumerable<string> allowed) =>
        new("Unsupported value", field, "supported values: " + string.Join(", ", allowed), value, true);

    public static FieldError TooMany(string field, int actual, long max) =>
        new("Too many", field, $"must have at most {max} items", JsonValue.Create(actual), true);

    public static FieldError TooLong(string field, long max) => new("Too long", field, $"may not be more than {max} bytes");

    public static FieldError Forbidden(string field, string detail) => new("Forbidden", field, detail);
}
