using Skiff.Api;
using Skiff.Validation;

namespace Skiff.ImageGC;

/// <summary>
/// Decides which images one GC pass removes, as a pure function of a snapshot (DESIGN §4), so every
/// rule is testable with tables and properties and <c>skiff gc --dry-run</c> shows exactly what a
/// real pass would do. The executor carries the plan out and re-measures the disk as it goes.
/// </summary>
/// <remarks>
/// <para><b>Guarantees.</b> An image is never planned for deletion when it is used by any container
/// (running or stopped, by image id); is the current image or one of the last
/// <c>revisionHistoryLimit</c> history images of any AppDeployment (by id); was first seen less than
/// <c>minimumAge</c> ago, where an image Skiff has never seen counts as first seen now; matches a
/// <c>keep</c> pattern; or is being pulled or started now. The output depends only on the input's
/// content, not its order: ties are broken by image id.</para>
/// <para><b>Under pressure</b> (usage at or above the high threshold): dangling images first, then
/// least recently used (<c>LastUsed ?? FirstSeen ?? Created</c>), each deletion lowering the
/// projected usage by the image's size, until the projection is below the low threshold. The
/// remaining candidates are listed in <see cref="GcPlan.Kept"/> in the same order, so an executor
/// whose real disk freed less than projected (shared layers) can continue down that list.
/// Retention and maximum-age candidates are not added to a pressure pass; the next pass, without
/// pressure, takes them.</para>
/// <para><b>Without pressure</b>: unprotected images beyond the newest <c>retainPerRepository</c>
/// of every repository they belong to (protected images count toward those kept; tags and digests
/// both name repositories), and unprotected images whose last use is longer ago than
/// <c>maximumAge</c>. Dangling images otherwise wait for pressure.</para>
/// </remarks>
public static class ImageGcPlanner
{
    /// <summary>Plans one GC pass. Throws <see cref="ArgumentException"/> when two images share an id.</summary>
    public static GcPlan Plan(GcInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var policy = input.Policy;
        var now = input.Now;
        var n = input.Images.Count;
        var entries = new Entry[n];
        var byId = new Dictionary<string, int>(n, StringComparer.Ordinal);
        for (var i = 0; i < n; i++)
        {
            var image = input.Images[i];
            var id = ImageReference.NormalizeId(image.Id);
            if (!byId.TryAdd(id, i))
            {
                throw new ArgumentException($"Image id {id} occurs twice in the input.", nameof(input));
            }

            entries[i] = new Entry(image, id, (image.LastUsed ?? image.FirstSeen ?? image.Created).UtcTicks, image.Created.UtcTicks, IsDangling(image));
        }

        var protection = Protect(input, entries, byId);

        var candidates = new List<int>(n);
        var protectedList = new List<GcDecision>();
        for (var i = 0; i < n; i++)
        {
            if (protection[i] is { } p)
            {
                protectedList.Add(new GcDecision(entries[i].Image, p.Reason, p.Detail));
            }
            else
            {
                candidates.Add(i);
            }
        }

        protectedList.Sort(static (a, b) => string.CompareOrdinal(a.Image.Id, b.Image.Id));
        candidates.Sort((a, b) => CompareForDeletion(entries[a], entries[b]));

        var disk = input.Disk;
        var pressure = disk.AtOrAbove(disk.UsedBytes, policy.HighThresholdPercent);
        var projected = disk.UsedBytes;
        var delete = new List<GcDecision>();
        var kept = new List<GcDecision>();
        if (pressure)
        {
            foreach (var i in candidates)
            {
                var e = entries[i];
                if (!disk.AtOrAbove(projected, policy.LowThresholdPercent))
                {
                    kept.Add(new GcDecision(e.Image, GcReason.BelowLowThreshold,
                        $"projected usage already below {policy.LowThresholdPercent}%; {Recency(e.Image, now)}"));
                    continue;
                }

                projected = Math.Max(0, projected - Math.Max(0, e.Image.Size));
                delete.Add(e.Dangling
                    ? new GcDecision(e.Image, GcReason.Dangling, $"untagged; {Recency(e.Image, now)}", projected)
                    : new GcDecision(e.Image, GcReason.LeastRecentlyUsed, Recency(e.Image, now), projected));
            }
        }
        else
        {
            var retention = Retention(entries, policy.RetainPerRepository);
            var maxAgeTicks = policy.MaximumAge?.Ticks;
            foreach (var i in candidates)
            {
                var e = entries[i];
                var unusedFor = now.UtcTicks - e.RecencyTicks;
                if (maxAgeTicks is { } max && unusedFor > max)
                {
                    projected = Math.Max(0, projected - Math.Max(0, e.Image.Size));
                    delete.Add(new GcDecision(e.Image, GcReason.OlderThanMaximumAge,
                        $"{Recency(e.Image, now)}, maximumAge {Durations.Format(policy.MaximumAge!.Value)}", projected));
                }
                else if (retention[i] is { } repos)
                {
                    projected = Math.Max(0, projected - Math.Max(0, e.Image.Size));
                    delete.Add(new GcDecision(e.Image, GcReason.BeyondRetainPerRepository,
                        $"older than the newest {policy.RetainPerRepository} of {repos}; {Recency(e.Image, now)}", projected));
                }
                else
                {
                    kept.Add(new GcDecision(e.Image, GcReason.WithinRetention, e.Dangling
                        ? $"untagged, removed only under pressure; {Recency(e.Image, now)}"
                        : $"within retention; {Recency(e.Image, now)}"));
                }
            }
        }

        var canReachLow = !pressure || !disk.AtOrAbove(projected, policy.LowThresholdPercent);
        return new GcPlan(delete, protectedList, kept, pressure, projected, canReachLow, policy, disk, now);
    }

    /// <summary>
    /// Picks the ImageGCPolicy for a node (DESIGN §1): one that names the node wins over one with
    /// empty <c>nodes</c>; among equals the first by name wins and <paramref name="warning"/> says
    /// so (for a Warning event). Without any, <see cref="GcPolicy.BuiltIn"/>. Values the schema
    /// would reject (a bad duration, low not below high) fall back to safe values with a warning
    /// rather than failing GC, because a GC that never runs is how disks fill.
    /// </summary>
    public static GcPolicy ResolvePolicy(IEnumerable<ImageGCPolicy> policies, string node, out string? warning)
    {
        ArgumentNullException.ThrowIfNull(policies);
        var naming = new List<ImageGCPolicy>();
        var everyNode = new List<ImageGCPolicy>();
        foreach (var p in policies)
        {
            var nodes = p.Spec.Nodes;
            if (nodes is null || nodes.Count == 0)
            {
                everyNode.Add(p);
            }
            else if (nodes.Contains(node, StringComparer.Ordinal))
            {
                naming.Add(p);
            }
        }

        var tier = naming.Count > 0 ? naming : everyNode;
        if (tier.Count == 0)
        {
            warning = null;
            return GcPolicy.BuiltIn;
        }

        tier.Sort(static (a, b) => string.CompareOrdinal(a.Metadata.Name, b.Metadata.Name));
        var chosen = tier[0];
        var name = chosen.Metadata.Name ?? "";
        var warnings = new List<string>();
        if (tier.Count > 1)
        {
            warnings.Add($"ImageGCPolicies {string.Join(", ", tier.Select(p => p.Metadata.Name))} all apply to node {node}" +
                $"{(naming.Count > 0 ? " by name" : "")}; using {name}");
        }

        var spec = Defaults.Apply(chosen.Spec);
        var builtIn = GcPolicy.BuiltIn;
        var high = spec.HighThresholdPercent!.Value;
        var low = spec.LowThresholdPercent!.Value;
        if (high is < 1 or > 100 || low < 0 || low >= high)
        {
            warnings.Add($"ImageGCPolicy {name}: thresholds high {high}% / low {low}% are invalid; using {builtIn.HighThresholdPercent}/{builtIn.LowThresholdPercent}");
            (high, low) = (builtIn.HighThresholdPercent, builtIn.LowThresholdPercent);
        }

        var policy = new GcPolicy
        {
            Name = name,
            HighThresholdPercent = high,
            LowThresholdPercent = low,
            MinimumAge = Duration(spec.MinimumAge, "minimumAge", builtIn.MinimumAge) ?? builtIn.MinimumAge,
            MaximumAge = string.IsNullOrWhiteSpace(spec.MaximumAge) ? null : Duration(spec.MaximumAge, "maximumAge", null),
            RetainPerRepository = Math.Max(0, spec.RetainPerRepository!.Value),
            Keep = [.. spec.Keep!.Where(k => !string.IsNullOrWhiteSpace(k))],
            PruneBuildCache = spec.PruneBuildCache!.Value,
            Interval = Duration(spec.Interval, "interval", builtIn.Interval) is { } iv && iv > TimeSpan.Zero ? iv : builtIn.Interval,
            DryRun = spec.DryRun!.Value,
        };
        warning = warnings.Count == 0 ? null : string.Join("; ", warnings);
        return policy;

        TimeSpan? Duration(string? text, string field, TimeSpan? fallback)
        {
            if (GoDuration.TryParse(text, out var value))
            {
                return value;
            }

            warnings.Add($"ImageGCPolicy {name}: {field} \"{text}\" is not a duration; using {(fallback is { } f ? Durations.Format(f) : "none")}");
            return fallback;
        }
    }

    /// <summary>
    /// Whether a keep pattern matches an image reference. <c>*</c> matches any run of characters,
    /// including <c>/</c> and <c>:</c> (<c>skiff-test/*</c> matches <c>skiff-test/app:1</c>);
    /// everything else is literal and case-sensitive. Both sides are compared in Docker's familiar
    /// form (<c>docker.io/library/postgres:16</c> is <c>postgres:16</c>). A pattern with neither a
    /// tag nor a digest names the whole repository: <c>postgres</c> matches <c>postgres:16</c> and
    /// <c>postgres@sha256:…</c>, not only <c>postgres:latest</c> — for a keep list, keeping more
    /// than Docker's <c>:latest</c> rule would is the safe reading.
    /// </summary>
    public static bool Matches(string pattern, string reference)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        ArgumentNullException.ThrowIfNull(reference);
        return MatchesFamiliar(ImageReference.Familiar(pattern), ImageReference.Familiar(reference));
    }

    /// <summary><see cref="Matches"/> for a pattern and reference already in familiar form.</summary>
    private static bool MatchesFamiliar(string pattern, string reference) =>
        pattern.Length > 0 && reference.Length > 0 &&
        (ImageReference.Glob(pattern, reference)
            || (!ImageReference.HasTagOrDigest(pattern) && ImageReference.Glob(pattern, ImageReference.Repository(reference))));

    /// <summary>Dangling first, then least recently used, then the oldest build, then by id: the one order of deletion.</summary>
    private static int CompareForDeletion(in Entry a, in Entry b)
    {
        if (a.Dangling != b.Dangling)
        {
            return a.Dangling ? -1 : 1;
        }

        return CompareRecency(a, b);
    }

    /// <summary>
    /// Older first: by last use (or first sight), then by build time, then by id. Build time matters when Skiff
    /// first meets a node that has piled up images: it sees them all at once, and the newest builds should stay.
    /// </summary>
    private static int CompareRecency(in Entry a, in Entry b)
    {
        var c = a.RecencyTicks.CompareTo(b.RecencyTicks);
        if (c == 0)
        {
            c = a.CreatedTicks.CompareTo(b.CreatedTicks);
        }

        return c != 0 ? c : string.CompareOrdinal(a.Id, b.Id);
    }

    private static bool IsDangling(ImageInfo image)
    {
        foreach (var tag in image.RepoTags)
        {
            if (!ImageReference.IsPlaceholder(tag))
            {
                return false;
            }
        }

        // Docker counts an image pulled by digest as not dangling: it is still a version of a repository.
        foreach (var digest in image.RepoDigests)
        {
            if (!ImageReference.IsPlaceholder(digest))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Each image's protection, strongest reason first, or null when it may go.</summary>
    private static (GcReason Reason, string Detail)?[] Protect(GcInput input, Entry[] entries, Dictionary<string, int> byId)
    {
        var n = entries.Length;
        var result = new (GcReason Reason, string Detail)?[n];

        // Containers: running beats stopped; among equals the smallest id, so input order does not matter.
        var containers = new (bool Running, string Id)?[n];
        foreach (var c in input.Containers)
        {
            if (!byId.TryGetValue(ImageReference.NormalizeId(c.ImageId), out var i))
            {
                continue;
            }

            if (containers[i] is not { } best || (c.Running && !best.Running) ||
                (c.Running == best.Running && string.CompareOrdinal(c.Id, best.Id) < 0))
            {
                containers[i] = (c.Running, c.Id);
            }
        }

        // Deployments: current beats history; among equals the smallest namespace/name.
        var deployments = new (bool Current, string Key)?[n];
        foreach (var d in input.Deployments)
        {
            var key = d.Namespace + "/" + d.Name;
            string? current = null;
            if (!string.IsNullOrWhiteSpace(d.CurrentImageId))
            {
                current = ImageReference.NormalizeId(d.CurrentImageId);
                MarkDeployment(current, true);
            }

            // The current image is protected on its own, so it does not use up a history slot.
            var taken = 0;
            var limit = Math.Max(0, d.RevisionHistoryLimit);
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var h in d.HistoryImageIds)
            {
                if (taken >= limit)
                {
                    break;
                }

                if (string.IsNullOrWhiteSpace(h))
                {
                    continue;
                }

                var id = ImageReference.NormalizeId(h);
                if (id == current || !seen.Add(id))
                {
                    continue;
                }

                taken++;
                MarkDeployment(id, false);
            }

            void MarkDeployment(string id, bool isCurrent)
            {
                if (!byId.TryGetValue(id, out var i))
                {
                    return;
                }

                if (deployments[i] is not { } best || (isCurrent && !best.Current) ||
                    (isCurrent == best.Current && string.CompareOrdinal(key, best.Key) < 0))
                {
                    deployments[i] = (isCurrent, key);
                }
            }
        }

        var inUseIds = new HashSet<string>(StringComparer.Ordinal);
        var inUseRefs = new HashSet<string>(StringComparer.Ordinal);
        foreach (var value in input.InUseNow)
        {
            if (string.IsNullOrWhiteSpace(value))
            {
                continue;
            }

            if (ImageReference.LooksLikeId(value))
            {
                inUseIds.Add(ImageReference.NormalizeId(value));
            }
            else
            {
                inUseRefs.Add(ImageReference.Normalize(value));
            }
        }

        var policy = input.Policy;
        var now = input.Now;
        var familiarPatterns = policy.Keep.Select(ImageReference.Familiar).ToArray();
        for (var i = 0; i < n; i++)
        {
            var e = entries[i];
            if (BeingPulledOrStarted(e, inUseIds, inUseRefs) is { } what)
            {
                result[i] = (GcReason.BeingPulledOrStarted, $"being pulled or started ({what})");
            }
            else if (containers[i] is { } c)
            {
                result[i] = c.Running
                    ? (GcReason.InUseByRunningContainer, $"used by running container {Short(c.Id)}")
                    : (GcReason.InUseByStoppedContainer, $"used by stopped container {Short(c.Id)}");
            }
            else if (deployments[i] is { } d)
            {
                result[i] = d.Current
                    ? (GcReason.DeploymentCurrent, $"current image of {d.Key}")
                    : (GcReason.DeploymentHistory, $"rollback image of {d.Key}");
            }
            else if (KeepMatch(e, policy.Keep, familiarPatterns) is { } keep)
            {
                result[i] = (GcReason.KeepPattern, $"matches keep pattern \"{keep.Pattern}\" ({keep.Reference})");
            }
            else if (e.Image.FirstSeen is not { } firstSeen)
            {
                if (policy.MinimumAge > TimeSpan.Zero)
                {
                    result[i] = (GcReason.YoungerThanMinimumAge, $"never seen before, counts as first seen now; minimumAge {Durations.Format(policy.MinimumAge)}");
                }
            }
            else if (now - firstSeen < policy.MinimumAge)
            {
                result[i] = (GcReason.YoungerThanMinimumAge, $"first seen {Durations.Format(now - firstSeen)} ago; minimumAge {Durations.Format(policy.MinimumAge)}");
            }
        }

        return result;
    }

    private static string? BeingPulledOrStarted(in Entry e, HashSet<string> ids, HashSet<string> refs)
    {
        if (ids.Contains(e.Id))
        {
            return e.Id;
        }

        if (refs.Count == 0)
        {
            return null;
        }

        foreach (var r in e.Image.RepoTags)
        {
            if (!ImageReference.IsPlaceholder(r) && refs.Contains(ImageReference.Normalize(r)))
            {
                return r;
            }
        }

        foreach (var r in e.Image.RepoDigests)
        {
            if (!ImageReference.IsPlaceholder(r) && refs.Contains(ImageReference.Familiar(r)))
            {
                return r;
            }
        }

        return null;
    }

    /// <summary>The first of the image's references (tags, digests, then its id) that a keep pattern matches.</summary>
    private static (string Pattern, string Reference)? KeepMatch(in Entry e, IReadOnlyList<string> patterns, string[] familiarPatterns)
    {
        if (patterns.Count == 0)
        {
            return null;
        }

        foreach (var references in (ReadOnlySpan<IReadOnlyList<string>>)[e.Image.RepoTags, e.Image.RepoDigests])
        {
            foreach (var r in references)
            {
                if (ImageReference.IsPlaceholder(r))
                {
                    continue;
                }

                var familiar = ImageReference.Familiar(r);
                for (var k = 0; k < familiarPatterns.Length; k++)
                {
                    if (MatchesFamiliar(familiarPatterns[k], familiar))
                    {
                        return (patterns[k], r);
                    }
                }
            }
        }

        for (var k = 0; k < familiarPatterns.Length; k++)
        {
            if (ImageReference.Glob(patterns[k], e.Id))
            {
                return (patterns[k], e.Id);
            }
        }

        return null;
    }

    /// <summary>
    /// For each image beyond retention in every repository it belongs to, those repositories'
    /// names; null for images within retention somewhere, or in no repository (dangling).
    /// </summary>
    private static string?[] Retention(Entry[] entries, int retain)
    {
        var n = entries.Length;
        var repos = new Dictionary<string, List<int>>(StringComparer.Ordinal);
        var lookup = repos.GetAlternateLookup<ReadOnlySpan<char>>();
        var repoCount = new int[n];
        for (var i = 0; i < n; i++)
        {
            var image = entries[i].Image;
            Add(image.RepoTags, i);
            Add(image.RepoDigests, i);
        }

        var beyond = new int[n];
        var names = new string?[n];
        foreach (var (repo, members) in repos)
        {
            if (members.Count <= retain)
            {
                continue;
            }

            // Newest first; the protected images are in this list too, so they count toward those kept.
            members.Sort((a, b) => CompareRecency(entries[b], entries[a]));
            for (var k = retain; k < members.Count; k++)
            {
                var i = members[k];
                beyond[i]++;
                names[i] = names[i] is { } earlier ? earlier + "\n" + repo : repo;
            }
        }

        for (var i = 0; i < n; i++)
        {
            if (repoCount[i] == 0 || beyond[i] != repoCount[i])
            {
                names[i] = null;
            }
            else if (beyond[i] > 1)
            {
                // Dictionary order is not input-order independent; sort so the text is.
                var list = names[i]!.Split('\n');
                Array.Sort(list, StringComparer.Ordinal);
                names[i] = string.Join(", ", list);
            }
        }

        return names;

        void Add(IReadOnlyList<string> references, int i)
        {
            foreach (var r in references)
            {
                if (ImageReference.IsPlaceholder(r))
                {
                    continue;
                }

                var repo = ImageReference.RepositorySpan(ImageReference.Familiar(r));
                if (!lookup.TryGetValue(repo, out var members))
                {
                    lookup[repo] = members = [];
                }

                // An image tagged and pulled by digest in one repository is one member, not two.
                if (members.Count == 0 || members[^1] != i)
                {
                    members.Add(i);
                    repoCount[i]++;
                }
            }
        }
    }

    private static string Recency(ImageInfo image, DateTimeOffset now) =>
        image.LastUsed is { } used ? $"last used {Durations.Format(now - used)} ago"
        : image.FirstSeen is { } seen ? $"never used, first seen {Durations.Format(now - seen)} ago"
        : $"never used, built {Durations.Format(now - image.Created)} ago";

    private static string Short(string id)
    {
        var s = id.StartsWith("sha256:", StringComparison.Ordinal) ? id[7..] : id;
        return s.Length > 12 ? s[..12] : s;
    }

    // CreatedTicks, the build time, breaks ties of recency, as when a first pass sees every image at once.
    private readonly record struct Entry(ImageInfo Image, string Id, long RecencyTicks, long CreatedTicks, bool Dangling);
}
