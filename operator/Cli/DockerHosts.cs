namespace Skiff.Cli;

/// <summary>
/// Which Docker engine URIs Skiff can talk to: <c>unix:///PATH</c>, <c>tcp://HOST:PORT</c> and
/// <c>http(s)://HOST:PORT</c>, the transports Docker.DotNet speaks.
/// </summary>
/// <remarks>
/// <c>ssh://</c> is refused with the way round it (an ssh-forwarded socket) rather than supported
/// through the docker CLI's connection helper: that would make the operator depend on the docker CLI
/// and an ssh client inside its image, and an operator normally runs on the node it serves.
/// </remarks>
public static class DockerHosts
{
    public const string Accepted = "use unix:///var/run/docker.sock (a local socket), tcp://HOST:PORT or http(s)://HOST:PORT";

    /// <summary>What is wrong with <paramref name="value"/> as an engine URI, or null when it is fine (empty means the default socket).</summary>
    public static string? Problem(string? value)
    {
        if (string.IsNullOrEmpty(value))
        {
            return null;
        }

        if (value.StartsWith("ssh://", StringComparison.OrdinalIgnoreCase))
        {
            return "ssh:// is not supported: use a local socket, or forward one with " +
                "`ssh -L /tmp/docker.sock:/var/run/docker.sock host` and pass unix:///tmp/docker.sock";
        }

        if (!value.Contains("://", StringComparison.Ordinal) || !Uri.TryCreate(value, UriKind.Absolute, out var uri))
        {
            return $"not a Docker engine URI; {Accepted}";
        }

        switch (uri.Scheme)
        {
            case "unix":
                // unix://var/run/docker.sock (two slashes) reads "var" as a host name: a common slip.
                return uri.Host.Length > 0 || uri.AbsolutePath is "" or "/"
                    ? "a unix socket needs an absolute path after unix://, e.g. unix:///var/run/docker.sock (three slashes)"
                    : null;
            case "tcp" or "http" or "https":
                if (uri.Host.Length == 0)
                {
                    return $"no host; {Accepted}";
                }

                return uri.Scheme == "tcp" && uri.Port <= 0
                    ? $"give the port, e.g. tcp://{uri.Host}:2375"
                    : null;
            default:
                return $"the scheme {uri.Scheme}:// is not supported; {Accepted}";
        }
    }
}
