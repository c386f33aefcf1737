namespace Skiff.TestApiServer;

/// <summary>What a request is about, parsed from its path the way kube-apiserver's RequestInfoFactory does.</summary>
internal sealed record RequestInfo(bool IsResource, string Group, string Version, string Resource, string Subresource, string Namespace, string Name, string Verb)
{
    private static readonly HashSet<string> NamespaceSubresources = ["status", "finalize"];

    public static RequestInfo Parse(string method, string path, bool watch)
    {
        var parts = path.Trim('/').Split('/', StringSplitOptions.RemoveEmptyEntries);
        string group;
        string version;
        int rest;
        if (parts.Length >= 2 && parts[0] == "api")
        {
            (group, version, rest) = ("", parts[1], 2);
        }
        else if (parts.Length >= 3 && parts[0] == "apis")
        {
            (group, version, rest) = (parts[1], parts[2], 3);
        }
        else
        {
            return new RequestInfo(false, "", "", "", "", "", "", method.ToLowerInvariant());
        }

        var segs = parts[rest..];
        if (segs.Length == 0)
        {
            // Discovery (/api/v1, /apis/group/version) is a non-resource request.
            return new RequestInfo(false, group, version, "", "", "", "", method.ToLowerInvariant());
        }

        var ns = "";
        if (segs.Length > 0 && segs[0] == "namespaces" && segs.Length > 1)
        {
            ns = segs[1];
            if (segs.Length > 2 && !NamespaceSubresources.Contains(segs[2]))
            {
                segs = segs[2..];
            }
            else
            {
                // /api/v1/namespaces/{name}[/status]: the namespace object itself.
                ns = "";
            }
        }

        var resource = segs.Length > 0 ? segs[0] : "";
        var name = segs.Length > 1 ? segs[1] : "";
        var sub = segs.Length > 2 ? string.Join('/', segs[2..]) : "";
        var verb = method switch
        {
            "GET" or "HEAD" when name.Length == 0 => watch ? "watch" : "list",
            "GET" or "HEAD" => watch ? "watch" : "get",
            "POST" => "create",
            "PUT" => "update",
            "PATCH" => "patch",
            "DELETE" when name.Length == 0 => "deletecollection",
            "DELETE" => "delete",
            _ => method.ToLowerInvariant(),
        };
        return new RequestInfo(true, group, version, resource, sub, ns, name, verb);
    }
}
