namespace Skiff.Proxy;

/// <summary>
/// The domain names a port may claim (<c>spec.app.ports[].domains</c>) and the routes file may carry: lowercase DNS
/// names of at least two labels, no wildcard, no IP address. One check for the validator and the proxy.
/// </summary>
public static class DomainName
{
    /// <summary>Null when <paramref name="name"/> is a domain Skiff serves; else what is wrong and the fix, in words.</summary>
    public static string? Problem(string name)
    {
        if (name.Length == 0)
        {
            return "must not be empty: give a name such as api.example.com";
        }

        if (name.StartsWith("*.", StringComparison.Ordinal) || name.Contains('*', StringComparison.Ordinal))
        {
            return $"\"{name}\": wildcard domains are not supported (an HTTP-01 certificate cannot cover them); list each name, such as {WithoutWildcard(name)}";
        }

        if (name.EndsWith('.'))
        {
            return $"\"{name}\": write it without the trailing dot, as {name.TrimEnd('.')}";
        }

        if (name.Any(char.IsAsciiLetterUpper))
        {
            return $"\"{name}\": must be lowercase, as {name.ToLowerInvariant()}";
        }

        if (name.Length > 253)
        {
            return $"must be at most 253 characters, got {name.Length}";
        }

        if (System.Net.IPAddress.TryParse(name, out _))
        {
            return $"\"{name}\" is an IP address, not a domain: give the DNS name that points to the node";
        }

        var labels = name.Split('.');
        if (labels.Length < 2)
        {
            return $"\"{name}\": want a full domain name with at least one dot, such as {name}.example.com";
        }

        foreach (var label in labels)
        {
            if (label.Length is 0 or > 63 || label[0] == '-' || label[^1] == '-' || !label.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '-'))
            {
                return $"\"{name}\" is not a DNS name: each dot-separated label has 1 to 63 lowercase letters, digits and '-', not starting or ending with '-'";
            }
        }

        if (labels[^1].All(char.IsAsciiDigit))
        {
            return $"\"{name}\": the last label cannot be all digits; give a DNS name such as api.example.com";
        }

        return null;
    }

    private static string WithoutWildcard(string name)
    {
        var rest = name.TrimStart('*', '.');
        return rest.Length > 0 && !rest.Contains('*', StringComparison.Ordinal) ? $"www.{rest}" : "api.example.com";
    }
}
