using Skiff.Api;

namespace Skiff.Validation;

public static partial class ResourceValidator
{
    /// <summary>spec.database.backup: a schedule Cronos can parse (the schema checks retain and path).</summary>
    internal static void CheckBackup(Errors errors, AppDeploymentSpec spec)
    {
        if (spec.Database?.Backup is not { } backup)
        {
            return;
        }

        if (CronSchedule.TryParse(backup.Schedule, out var problem) is null)
        {
            errors.Add("spec.database.backup.schedule", problem!);
        }

        if (backup.Path is { } path && (path.Split('/').Contains("..") || path.TrimEnd('/').Length == 0))
        {
            errors.Add("spec.database.backup.path", $"must be an absolute folder path without \"..\" and not / itself, got \"{path}\"");
        }
    }
}
