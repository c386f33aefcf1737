namespace Skiff.ImageGC;

/// <summary>
/// The little of Docker's reference grammar GC needs (named apart from <c>Skiff.Validation.ImageReference</c>, which validates references). Docker reports tags in their familiar form
/// (<c>postgres:16</c>, <c>acme/api:1</c>), while users may write <c>docker.io/library/postgres:16</c>;
/// both sides are brought to the familiar form before comparing.
/// </summary>
internal static class ImageRefs
{
    private static readonly string[] DockerHubPrefixes =
        ["docker.io/library/", "index.docker.io/library/", "registry-1.docker.io/library/", "docker.io/", "index.docker.io/", "registry-1.docker.io/"];

    /// <summary>The reference without Docker Hub's implicit registry and <c>library/</c> prefix.</summary>
    public static string Familiar(string reference)
    {
        var r = reference.Trim();
        if (!r.Contains("docker.io/", StringComparison.Ordinal))
        {
            return r; // the common case, one vectorized search instead of six prefix checks
        }

        foreach (var prefix in DockerHubPrefixes)
        {
            if (r.StartsWith(prefix, StringComparison.Ordinal))
            {
                return r[prefix.Length..];
            }
        }

        return r;
    }

    /// <summary>The familiar reference, with <c>:latest</c> when it names neither a tag nor a digest (Docker's rule).</summary>
    public static string Normalize(string reference)
    {
        var r = Familiar(reference);
        return HasTagOrDigest(r) ? r : r + ":latest";
    }

    /// <summary>Whether the reference's last path component carries a <c>:tag</c>, or the reference an <c>@digest</c>.</summary>
    public static bool HasTagOrDigest(string reference) =>
        reference.Contains('@', StringComparison.Ordinal) || reference.LastIndexOf(':') > reference.LastIndexOf('/');

    /// <summary>The repository of a tag or digest reference: <c>acme/api</c> for <c>acme/api:1</c> or <c>acme/api@sha256:…</c>.</summary>
    public static string Repository(string reference)
    {
        var repo = RepositorySpan(reference);
        return repo.Length == reference.Length ? reference : repo.ToString();
    }

    /// <summary><see cref="Repository"/> without allocating.</summary>
    public static ReadOnlySpan<char> RepositorySpan(string reference)
    {
        var at = reference.IndexOf('@', StringComparison.Ordinal);
        if (at >= 0)
        {
            return reference.AsSpan(0, at);
        }

        var colon = reference.LastIndexOf(':');
        return colon > reference.LastIndexOf('/') ? reference.AsSpan(0, colon) : reference;
    }

    /// <summary>The placeholders older engines report for untagged images.</summary>
    public static bool IsPlaceholder(string reference) =>
        reference is "<none>:<none>" or "<none>@<none>" || reference.Length == 0;

    /// <summary>Image ids are compared in full <c>sha256:</c> form; a bare hex id gets the prefix.</summary>
    public static string NormalizeId(string id)
    {
        var t = id.Trim();
        return t.Contains(':', StringComparison.Ordinal) ? t : "sha256:" + t;
    }

    /// <summary>Whether a string in InUseNow is an image id rather than a reference.</summary>
    public static bool LooksLikeId(string value) =>
        value.StartsWith("sha256:", StringComparison.Ordinal) || (value.Length == 64 && value.All(char.IsAsciiHexDigitLower));

    /// <summary>The reference to show for an image: its first tag, else its first digest, else &lt;none&gt;.</summary>
    public static string Display(ImageInfo image)
    {
        foreach (var tag in image.RepoTags)
        {
            if (!IsPlaceholder(tag))
            {
                return tag;
            }
        }

        foreach (var digest in image.RepoDigests)
        {
            if (!IsPlaceholder(digest))
            {
                return digest;
            }
        }

        return "<none>";
    }

    /// <summary>
    /// Glob match where <c>*</c> stands for any run of characters (including <c>/</c> and <c>:</c>)
    /// and everything else is literal and case-sensitive. Linear-time greedy matching with
    /// backtracking to the last star, so hostile patterns cannot blow up a GC pass.
    /// </summary>
    public static bool Glob(ReadOnlySpan<char> pattern, ReadOnlySpan<char> text)
    {
        int p = 0, t = 0, star = -1, mark = 0;
        while (t < text.Length)
        {
            if (p < pattern.Length && pattern[p] == '*')
            {
                star = p++;
                mark = t;
            }
            else if (p < pattern.Length && pattern[p] == text[t])
            {
                p++;
                t++;
            }
            else if (star >= 0)
            {
                p = star + 1;
                t = ++mark;
            }
            else
            {
                return false;
            }
        }

        while (p < pattern.Length && pattern[p] == '*')
        {
            p++;
        }

        return p == pattern.Length;
    }
}
