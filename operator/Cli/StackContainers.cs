using System.CommandLine;
using System.Globalization;
using System.Text.RegularExpressions;
using Skiff.Api;
using Skiff.Docker;
using Skiff.Reconcile;
using Skiff.State;

namespace Skiff.Cli;

/// <summary>
/// How the day-two commands (<c>logs</c>, <c>exec</c>, <c>run-once</c>) find a stack's containers: by Skiff's labels
/// (<see cref="SkiffLabels"/>), never by name, with the live revision from the state folder when it has the stack.
/// </summary>
public static partial class StackContainers
{
    /// <summary>The components a user names with <c>-c</c>, and the label value each one carries.</summary>
    public static readonly IReadOnlyDictionary<string, string> Components = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["app"] = StackNames.AppComponent,
        ["database"] = StackNames.DatabaseComponent,
        ["cache"] = StackNames.CacheComponent,
        ["migration"] = StackNames.MigrateComponent,
    };

    /// <summary><c>-n/--namespace</c> of the day-two commands.</summary>
    public static Option<string> Namespace() => new("--namespace", "-n")
    {
        Description = "The namespace of NAME",
        HelpName = "namespace",
        DefaultValueFactory = _ => "default",
    };

    /// <summary><c>-c/--component</c>: which container of the stack; a value outside them is a usage error naming them.</summary>
    public static Option<string> Component(string fallback = "app")
    {
        var option = new Option<string>("--component", "-c")
        {
            Description = "Which container of the stack: app, database, cache or migration",
            HelpName = "app|database|cache|migration",
            DefaultValueFactory = _ => fallback,
            CustomParser = result =>
            {
                var text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
                if (text == "migrate")
                {
                    return "migration";
                }

                if (!Components.ContainsKey(text))
                {
                    result.AddError($"--component {text}: unknown component; use app, database, cache or migration");
                }

                return text;
            },
        };
        option.CompletionSources.Add([.. Components.Keys]);
        return option;
    }

    /// <summary>The stack's NAME argument (it completes to the stacks of the default state folder).</summary>
    public static Argument<string> Name(string description)
    {
        var name = new Argument<string>("NAME") { Description = description };
        CompletionCommand.StackNames(name);
        return name;
    }

    /// <summary>
    /// The container of <paramref name="component"/> of the stack: for the app, the live revision's (the state folder's
    /// revision when it has the stack, else the newest running one); for a migration, the newest run.
    /// <paramref name="previous"/> picks the newest container of an earlier revision instead.
    /// </summary>
    /// <returns>The container, or null with the reason in <paramref name="problem"/>.</returns>
    public static ObservedContainer? Pick(IReadOnlyList<ObservedContainer> containers, string component, long? liveRevision, bool previous, out string? problem)
    {
        problem = null;
        var label = Components[component];
        var candidates = containers.Where(c => c.Component == label).ToList();
        if (candidates.Count == 0)
        {
            problem = $"it has no {component} container";
            return null;
        }

        if (label is StackNames.DatabaseComponent or StackNames.CacheComponent)
        {
            if (previous)
            {
                problem = $"--previous: the {component} keeps one container (its earlier output is in the same log); use it without --previous";
                return null;
            }

            return candidates.OrderByDescending(c => c.Running).ThenByDescending(c => c.Created).First();
        }

        var live = liveRevision
            ?? candidates.Where(c => c.Running).Select(c => c.Revision).Max()
            ?? candidates.Select(c => c.Revision).Max();
        var chosen = previous
            ? candidates.Where(c => c.Revision < live)
            : candidates.Where(c => c.Revision == live);
        var pick = chosen
            .OrderByDescending(c => c.Revision)
            .ThenByDescending(c => c.Running)
            .ThenByDescending(c => c.Created)
            .FirstOrDefault();
        if (pick is null)
        {
            var revision = live?.ToString(CultureInfo.InvariantCulture) ?? "?";
            problem = previous
                ? $"--previous: no {component} container of a revision before {revision} is left (Skiff removes them after a rollout)"
                : $"it has no {component} container of revision {revision}";
        }

        return pick;
    }

    /// <summary>
    /// The values to mask in anything printed from a container: the values of the variables that hold secrets — those the
    /// spec takes from a Secret, the generated database credentials, and any whose name says it is one.
    /// </summary>
    public static IReadOnlyList<string> SecretValues(IEnumerable<string> env, AppDeploymentSpec? spec)
    {
        var fromSecrets = new HashSet<string>(
            spec?.App.Env?.Where(e => e.ValueFrom is not null).Select(e => e.Name) ?? [], StringComparer.Ordinal)
        {
            "POSTGRES_PASSWORD", "DATABASE_URL", "PGPASSWORD",
        };
        var values = new List<string>();
        foreach (var entry in env)
        {
            var eq = entry.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0 || eq == entry.Length - 1)
            {
                continue;
            }

            var (name, value) = (entry[..eq], entry[(eq + 1)..]);
            if (!fromSecrets.Contains(name) && !SecretName().IsMatch(name))
            {
                continue;
            }

            values.Add(value);
            // The password inside a URL, as it is written there and as it reads unescaped.
            if (Uri.TryCreate(value, UriKind.Absolute, out var uri) && uri.UserInfo.Split(':', 2) is [_, { Length: > 0 } password])
            {
                values.Add(password);
                values.Add(Uri.UnescapeDataString(password));
            }
        }

        return values.Where(v => v.Length >= 4).Distinct(StringComparer.Ordinal).ToList();
    }

    /// <summary>The live revision the state folder records for the stack, if it has it.</summary>
    public static long? LiveRevision(string stateDir, string ns, string name)
    {
        try
        {
            return new StateStore(stateDir).Read(ns, name)?.Status?.Revision;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>The spec the state folder records for the stack (its secretKeyRef names say what to mask), if it has it.</summary>
    public static AppDeploymentSpec? RecordedSpec(string stateDir, string ns, string name)
    {
        try
        {
            return new StateStore(stateDir).Read(ns, name)?.Spec;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>The stack's containers on the engine, found by its labels.</summary>
    public static Task<IReadOnlyList<ObservedContainer>> ListAsync(DockerEngine engine, string ns, string name, CancellationToken ct) =>
        engine.ListContainersAsync(
            new Dictionary<string, string>
            {
                [SkiffLabels.ManagedBy] = SkiffLabels.ManagedByValue,
                [SkiffLabels.App] = $"{ns}/{name}",
            },
            ct);

    /// <summary>The environment of every container of the stack (to find the secrets to mask).</summary>
    public static async Task<List<string>> EnvironmentAsync(DockerEngine engine, IEnumerable<ObservedContainer> containers, CancellationToken ct)
    {
        var env = new List<string>();
        foreach (var c in containers.Where(c => c.Component is StackNames.AppComponent or StackNames.DatabaseComponent or StackNames.MigrateComponent))
        {
            try
            {
                var inspect = await engine.Client.Containers.InspectContainerAsync(c.Id, ct);
                env.AddRange(inspect.Config?.Env ?? []);
            }
            catch (global::Docker.DotNet.DockerContainerNotFoundException)
            {
                // Removed since it was listed.
            }
        }

        return env;
    }

    [GeneratedRegex("(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIALS?)", RegexOptions.IgnoreCase)]
    private static partial Regex SecretName();
}
