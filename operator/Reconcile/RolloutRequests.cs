using Skiff.Api;

namespace Skiff.Reconcile;

/// <summary>
/// The day-two rollout requests, as annotations of an AppDeployment (<c>kubectl annotate</c> writes them; the folder source
/// sets them from <c>skiff restart</c> and <c>skiff rollback</c>): <c>skiff.dev/restartedAt</c> is part of the revision's
/// hash, as kubectl's restartedAt is part of a pod template, so a new value rolls the same spec out again as a new
/// revision; and a spec the user asked for explicitly is never the "failed spec that is not retried".
/// </summary>
public static class RolloutRequests
{
    public const string RestartedAt = "skiff.dev/restartedAt";
    public const string RollbackTo = "skiff.dev/rollback-to";

    /// <summary>What the revision hash adds for the resource's restartedAt and rollback-to (empty without them).</summary>
    public static string HashSuffix(AppDeployment resource)
    {
        var restartedAt = Annotation(resource, RestartedAt);
        var rollbackTo = Annotation(resource, RollbackTo);
        return string.IsNullOrWhiteSpace(restartedAt) && string.IsNullOrWhiteSpace(rollbackTo)
            ? ""
            : "-" + SpecHash.Compute($"{restartedAt}|{rollbackTo}")[..12];
    }

    /// <summary>
    /// The Kubernetes source's <c>skiff.dev/rollback-to: "N"</c>: the resource as the reconciler should see it (revision N's
    /// image, from the status history), for as long as the annotation is there; the same resource without it. Null, with the
    /// problem, when N is not a revision the history keeps.
    /// </summary>
    public static AppDeployment? ApplyRollbackAnnotation(AppDeployment resource, out string? problem)
    {
        problem = null;
        if (Annotation(resource, RollbackTo) is not { Length: > 0 } text)
        {
            return resource;
        }

        if (!long.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var revision))
        {
            problem = $"\"{text}\" is not a revision number; remove the annotation or name a revision of status.history";
            return null;
        }

        if (Target(resource.Status, revision, out var notFound) is not { Image: { } image })
        {
            problem = $"{notFound}; remove the annotation (kubectl annotate appdeployment {resource.Metadata.Name} {RollbackTo}-) or name a revision it keeps";
            return null;
        }

        return new AppDeployment
        {
            ApiVersion = resource.ApiVersion,
            Kind = resource.Kind,
            Metadata = resource.Metadata,
            Spec = WithImage(resource.Spec, image),
            Status = resource.Status,
        };
    }

    /// <summary>A copy of <paramref name="spec"/> whose app runs <paramref name="image"/>: the rolled-back-to revision's image.</summary>
    public static AppDeploymentSpec WithImage(AppDeploymentSpec spec, string image)
    {
        var copy = ApiJson.Clone(spec);
        copy.App.Image = image;
        return copy;
    }

    /// <summary>
    /// The revision a rollback goes back to: <paramref name="to"/> when given, else the newest revision before the live
    /// one that succeeded. Null, with the reason, when the history does not have it.
    /// </summary>
    public static RevisionRecord? Target(AppDeploymentStatus? status, long? to, out string? problem)
    {
        problem = null;
        var history = status?.History ?? [];
        if (to is { } wanted)
        {
            var found = history.LastOrDefault(h => h.Revision == wanted);
            if (found?.Image is null)
            {
                problem = $"revision {wanted} is not in the history (it keeps {Kept(history)}; spec.rollout.revisionHistoryLimit keeps more)";
                return null;
            }

            return found;
        }

        var live = status?.Revision ?? history.Select(h => h.Revision).DefaultIfEmpty(0).Max();
        var previous = history.Where(h => h.Revision < live && h.Outcome == Outcomes.Succeeded && h.Image is not null && h.Image != status?.Image)
            .MaxBy(h => h.Revision);
        if (previous is null)
        {
            problem = $"no earlier revision with another image succeeded (the history keeps {Kept(history)}); name one with --to-revision";
        }

        return previous;
    }

    /// <summary>Whether a restart or rollback annotation changed between two versions of a resource (annotations do not move the generation).</summary>
    public static bool Changed(AppDeployment old, AppDeployment now) =>
        Annotation(old, RestartedAt) != Annotation(now, RestartedAt) || Annotation(old, RollbackTo) != Annotation(now, RollbackTo);

    private static string? Annotation(AppDeployment resource, string key) =>
        resource.Metadata?.Annotations is { } annotations && annotations.TryGetValue(key, out var value) ? value : null;

    private static string Kept(IReadOnlyList<RevisionRecord> history) =>
        history.Count == 0 ? "no revisions" : "revisions " + string.Join(", ", history.Select(h => h.Revision));
}
