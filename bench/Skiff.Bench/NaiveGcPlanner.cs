using Skiff.ImageGC;
using Skiff.Validation;

namespace Skiff.Bench;

/// <summary>
/// The obvious implementation of the same rules, kept as the benchmark's peer: for each image it
/// scans every container, deployment and other image, and it re-sorts with LINQ. It produces the
/// same deletions as <see cref="ImageGcPlanner"/> (checked in the benchmark's setup).
/// </summary>
public static class NaiveGcPlanner
{
    public static IReadOnlyList<ImageInfo> PlanDeletions(GcInput input)
    {
        var policy = input.Policy;
        var candidates = input.Images.Where(i => !IsProtected(input, i)).ToList();
        var disk = input.Disk;
        var pressure = disk.TotalBytes > 0 && (Int128)disk.UsedBytes * 100 >= (Int128)policy.HighThresholdPercent * disk.TotalBytes;
        var ordered = candidates
            .OrderByDescending(IsDangling)
            .ThenBy(Recency)
            .ThenBy(i => i.Created)
            .ThenBy(i => i.Id, StringComparer.Ordinal)
            .ToList();
        var result = new List<ImageInfo>();
        if (pressure)
        {
            var projected = disk.UsedBytes;
            foreach (var image in ordered)
            {
                if ((Int128)projected * 100 < (Int128)policy.LowThresholdPercent * disk.TotalBytes)
                {
                    break;
                }

                result.Add(image);
                projected = Math.Max(0, projected - image.Size);
            }

            return result;
        }

        var repositories = input.Images.ToDictionary(i => i.Id, Repositories);
        foreach (var image in ordered)
        {
            var old = policy.MaximumAge is { } max && (input.Now - Recency(image)) > max;
            var repos = repositories[image.Id];
            var beyond = repos.Count > 0 && repos.All(repo =>
                input.Images.Count(other => other.Id != image.Id && repositories[other.Id].Contains(repo) &&
                    (Recency(other) > Recency(image)
                        || (Recency(other) == Recency(image) && other.Created > image.Created)
                        || (Recency(other) == Recency(image) && other.Created == image.Created && string.CompareOrdinal(other.Id, image.Id) < 0)))
                >= policy.RetainPerRepository);
            if (old || beyond)
            {
                result.Add(image);
            }
        }

        return result;
    }

    private static bool IsProtected(GcInput input, ImageInfo image)
    {
        var references = image.RepoTags.Concat(image.RepoDigests).ToList();
        return input.InUseNow.Contains(image.Id)
            || references.Any(r => input.InUseNow.Any(u => ImageReference.Normalize(u) == ImageReference.Normalize(r)))
            || input.Containers.Any(c => c.ImageId == image.Id)
            || input.Deployments.Any(d => d.CurrentImageId == image.Id ||
                d.HistoryImageIds.Where(h => h != d.CurrentImageId).Distinct().Take(d.RevisionHistoryLimit).Contains(image.Id))
            || input.Policy.Keep.Any(p => references.Append(image.Id).Any(r => ImageGcPlanner.Matches(p, r)))
            || (image.FirstSeen is { } seen ? input.Now - seen < input.Policy.MinimumAge : input.Policy.MinimumAge > TimeSpan.Zero);
    }

    private static bool IsDangling(ImageInfo image) => image.RepoTags.Count == 0 && image.RepoDigests.Count == 0;

    private static DateTimeOffset Recency(ImageInfo image) => image.LastUsed ?? image.FirstSeen ?? image.Created;

    private static List<string> Repositories(ImageInfo image) =>
        [.. image.RepoTags.Concat(image.RepoDigests).Select(ImageReference.Repository).Distinct()];
}
