using System.Collections;
using System.Globalization;
using System.Net;
using System.Reflection;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using Skiff.Api;

namespace Skiff.Validation;

/// <summary>
/// The operator's own validation of its resources: the same rules as the CRD schema and its CEL
/// rules (which cannot be evaluated on these hosts), plus checks a schema cannot express (image
/// references, addresses, uniqueness). A resource read from a folder gets the errors the API
/// server would give. At most one error per field path, in document order.
/// </summary>
public static partial class ResourceValidator
{
    /// <summary>Longest AppDeployment name: container names <c>skiff_NS_NAME_component_rN</c> must stay readable and within Docker's limits.</summary>
    public const int MaxAppDeploymentNameLength = 53;

    /// <summary>Validates an AppDeployment; with <paramref name="old"/>, also the rules for an update (immutable node).</summary>
    public static IReadOnlyList<ValidationError> Validate(AppDeployment obj, AppDeployment? old = null)
    {
        var errors = new Errors();
        ValidateName(errors, obj.Metadata?.Name, label: true, MaxAppDeploymentNameLength, "so container names fit");
        ValidateNamespace(errors, obj.Metadata?.NamespaceProperty);
        if (obj.Spec is not { } spec)
        {
            errors.Add("spec", "required");
            return errors.List;
        }

        // CEL twins first: their messages are the ones the API server would give.
        if (old?.Spec is { } oldSpec)
        {
            NodeImmutableWithData(errors, spec, oldSpec);
        }

        NodeRequiredForDocker(errors, spec);
        if (spec.App is { } app)
        {
            EnvValueXorValueFrom(errors, app);
            HostPortsUnique(errors, app);
            PortNamesUnique(errors, app);
            HealthCheckPortExists(errors, app);
            ImageXorBuild(errors, app);
        }

        RevisionHistoryLimitAtLeastOne(errors, spec);

        CheckAttributes(errors, "spec", spec);
        CheckAppSpec(errors, spec);
        CheckBackup(errors, spec);
        return errors.List;
    }

    /// <summary>Validates an ImageGCPolicy (cluster-scoped).</summary>
    public static IReadOnlyList<ValidationError> Validate(ImageGCPolicy obj)
    {
        var errors = new Errors();
        ValidateName(errors, obj.Metadata?.Name, label: false, 253, "");
        if (!string.IsNullOrEmpty(obj.Metadata?.NamespaceProperty))
        {
            errors.Add("metadata.namespace", "ImageGCPolicy is cluster-scoped: remove the namespace");
        }

        if (obj.Spec is not { } spec)
        {
            errors.Add("spec", "required");
            return errors.List;
        }

        LowBelowHigh(errors, spec);
        CheckAttributes(errors, "spec", spec);
        for (var i = 0; i < (spec.Nodes?.Count ?? 0); i++)
        {
            var node = spec.Nodes![i] ?? "";
            if (!Dns1123Subdomain().IsMatch(node))
            {
                errors.Add($"spec.nodes[{i}]", $"must be a node name, {Patterns.Dns1123SubdomainText}, got {Text.Quote(node)}");
            }
            else if (spec.Nodes.IndexOf(node) < i)
            {
                errors.Add($"spec.nodes[{i}]", $"duplicate node {Text.Quote(node)}");
            }
        }

        for (var i = 0; i < (spec.Keep?.Count ?? 0); i++)
        {
            if (string.IsNullOrWhiteSpace(spec.Keep![i]))
            {
                errors.Add($"spec.keep[{i}]", "must not be empty: give an image pattern such as postgres:*");
            }
        }

        if (GoDuration.TryParse(spec.MinimumAge ?? Defaults.MinimumAge, out var min) && spec.MaximumAge is { } maxText
            && GoDuration.TryParse(maxText, out var max) && max <= min)
        {
            errors.Add("spec.maximumAge", $"must be longer than minimumAge ({spec.MinimumAge ?? Defaults.MinimumAge}), got {maxText}");
        }

        if (spec.Interval is { } interval && GoDuration.TryParse(interval, out var every) && every < TimeSpan.FromSeconds(10))
        {
            errors.Add("spec.interval", $"must be at least 10s, got {interval}");
        }

        return errors.List;
    }

    // ---- CEL twins: one method per [CelRule], named by CelRuleAttribute.Twin ----

    /// <summary>Twin of the transition rule on spec.node (evaluated only on update).</summary>
    internal static void NodeImmutableWithData(Errors errors, AppDeploymentSpec spec, AppDeploymentSpec old)
    {
        var hasData = old.Database is not null
            || old.Cache is { Persistence: PersistenceModes.Aof or PersistenceModes.Rdb };
        if (hasData && (spec.Node ?? "") != (old.Node ?? ""))
        {
            errors.Add("spec.node", $"is immutable while the stack has a database or a persistent cache (it was {Text.Quote(old.Node ?? "")}): back up the data, delete the stack, recreate it on the new node and restore");
        }
    }

    internal static void NodeRequiredForDocker(Errors errors, AppDeploymentSpec spec)
    {
        if (string.IsNullOrEmpty(spec.Node) && (spec.Runtime ?? Defaults.Runtime) == Runtimes.Docker)
        {
            errors.Add("spec.node", "required for the docker runtime: name the node that runs the stack");
        }
    }

    internal static void EnvValueXorValueFrom(Errors errors, AppSpec app)
    {
        for (var i = 0; i < (app.Env?.Count ?? 0); i++)
        {
            if (app.Env![i] is { Value: not null, ValueFrom: not null })
            {
                errors.Add($"spec.app.env[{i}]", "set either value or valueFrom, not both");
            }
        }
    }

    internal static void HostPortsUnique(Errors errors, AppSpec app)
    {
        var ports = app.Ports ?? [];
        for (var i = 0; i < ports.Count; i++)
        {
            if (ports[i]?.HostPort is not { } hostPort)
            {
                continue;
            }

            var ip = ports[i].HostIP ?? "0.0.0.0";
            var first = ports.FindIndex(p => p?.HostPort == hostPort && (p.HostIP ?? "0.0.0.0") == ip);
            if (first < i)
            {
                errors.Add($"spec.app.ports[{i}].hostPort", $"{ip}:{hostPort} is already published by ports[{first}]: host ports must be unique per hostIP");
            }
        }
    }

    internal static void PortNamesUnique(Errors errors, AppSpec app)
    {
        var ports = app.Ports ?? [];
        for (var i = 0; i < ports.Count; i++)
        {
            if (ports[i]?.Name is { } name && ports.FindIndex(p => p?.Name == name) < i)
            {
                errors.Add($"spec.app.ports[{i}].name", $"duplicate port name {Text.Quote(name)}: port names must be unique");
            }
        }
    }

    internal static void HealthCheckPortExists(Errors errors, AppSpec app)
    {
        if (app.HealthCheck?.Http is not { } http || http.Port.IsInt)
        {
            return;
        }

        var name = http.Port.StringValue ?? "";
        var names = (app.Ports ?? []).Select(p => p?.Name).OfType<string>().Distinct().ToList();
        if (name.Length == 0)
        {
            errors.Add("spec.app.healthCheck.http.port", "required: a port number or the name of one of the app's ports");
        }
        else if (!names.Contains(name))
        {
            errors.Add("spec.app.healthCheck.http.port", names.Count == 0
                ? $"no port named {Text.Quote(name)}: give a port number, or name a port in spec.app.ports"
                : $"no port named {Text.Quote(name)}: use a port number or one of {string.Join(", ", names)}");
        }
    }

    internal static void RevisionHistoryLimitAtLeastOne(Errors errors, AppDeploymentSpec spec)
    {
        if (spec.Rollout?.RevisionHistoryLimit is < 1 and var limit)
        {
            errors.Add("spec.rollout.revisionHistoryLimit", $"must be at least 1 (the running revision is always kept), got {limit}");
        }
    }

    internal static void ImageXorBuild(Errors errors, AppSpec app)
    {
        if (string.IsNullOrEmpty(app.Image) && app.Build is null)
        {
            errors.Add("spec.app.image", "required: set image (an image from a registry), or build (an image built on the node, with the Git source)");
        }
        else if (!string.IsNullOrEmpty(app.Image) && app.Build is not null)
        {
            errors.Add("spec.app.build", "set exactly one of image and build: remove image to build from the Git source's commit, or remove build to run the image");
        }
    }

    /// <summary>
    /// spec.app.build is for the Git source only, which builds from the commit it serves: the error any other source
    /// gives (the folder source has no commit to name the image after, the Kubernetes source no tree to build from).
    /// </summary>
    public static ValidationError? BuildNeedsGitSource(AppDeploymentSpec spec) =>
        spec.App?.Build is null
            ? null
            : new ValidationError(
                "spec.app.build",
                "builds need the Git source (skiff run --source git --url URL), which builds the image from the commit it serves: "
                + "with this source, build and push the image in CI and set spec.app.image instead (examples/ci/)");

    internal static void LowBelowHigh(Errors errors, ImageGCPolicySpec spec)
    {
        var low = spec.LowThresholdPercent ?? Defaults.LowThresholdPercent;
        var high = spec.HighThresholdPercent ?? Defaults.HighThresholdPercent;
        if (low >= high)
        {
            errors.Add("spec.lowThresholdPercent", $"must be below highThresholdPercent ({high}), got {low}");
        }
    }

    // ---- Checks a schema cannot express ----

    private static void CheckAppSpec(Errors errors, AppDeploymentSpec spec)
    {
        if (spec.App is not { } app)
        {
            return;
        }

        CheckImage(errors, "spec.app.image", app.Image);
        CheckBuild(errors, app.Build);
        for (var i = 0; i < (app.Env?.Count ?? 0); i++)
        {
            var name = app.Env![i]?.Name;
            if (!string.IsNullOrEmpty(name) && app.Env.FindIndex(e => e?.Name == name) < i)
            {
                errors.Add($"spec.app.env[{i}].name", $"duplicate variable {Text.Quote(name)}: each variable may appear once");
            }
        }

        for (var i = 0; i < (app.Ports?.Count ?? 0); i++)
        {
            var port = app.Ports![i];
            if (port is null)
            {
                errors.Add($"spec.app.ports[{i}]", "must be a port object with containerPort");
                continue;
            }

            if (port.Name is { Length: > 0 } name && !name.Any(char.IsAsciiLetterLower))
            {
                errors.Add($"spec.app.ports[{i}].name", $"must contain at least one letter, so it cannot be mistaken for a number, got {Text.Quote(name)}");
            }

            if (port.HostIP is { } ip && !IPAddress.TryParse(ip, out _))
            {
                errors.Add($"spec.app.ports[{i}].hostIP", $"must be {Patterns.IPAddressText}, got {Text.Quote(ip)}");
            }

            CheckDomains(errors, app, i);
        }

        if (app.HealthCheck?.Http?.Port is { IsInt: true, IntValue: var port2 } && port2 is < 1 or > 65535)
        {
            errors.Add("spec.app.healthCheck.http.port", $"must be between 1 and 65535, got {port2}");
        }

        for (var i = 0; i < (app.Migrate?.Command?.Count ?? 0); i++)
        {
            if (string.IsNullOrEmpty(app.Migrate!.Command[i]))
            {
                errors.Add($"spec.app.migrate.command[{i}]", "must not be empty");
            }
        }

        if (spec.Database?.Image is { } dbImage)
        {
            CheckImage(errors, "spec.database.image", dbImage);
        }

        if (spec.Cache?.Image is { } cacheImage)
        {
            CheckImage(errors, "spec.cache.image", cacheImage);
        }
    }

    private static void CheckBuild(Errors errors, BuildSpec? build)
    {
        if (build is null)
        {
            return;
        }

        if (RelativePathProblem(build.Context ?? Defaults.BuildContext) is { } context)
        {
            errors.Add("spec.app.build.context", $"{context}: give a folder of the repository relative to its root, such as . or app");
        }

        if (build.Dockerfile is { } dockerfile && (dockerfile.Length == 0 || RelativePathProblem(dockerfile) is not null))
        {
            errors.Add("spec.app.build.dockerfile", $"{RelativePathProblem(dockerfile) ?? "must not be empty"}: give a file relative to the context, such as Dockerfile");
        }

        for (var i = 0; i < (build.Args?.Count ?? 0); i++)
        {
            var name = build.Args![i]?.Name;
            if (!string.IsNullOrEmpty(name) && build.Args.FindIndex(a => a?.Name == name) < i)
            {
                errors.Add($"spec.app.build.args[{i}].name", $"duplicate argument {Text.Quote(name)}: each argument may appear once");
            }
        }
    }

    /// <summary>Why <paramref name="path"/> is not a path inside a tree (absolute, or climbing out with ..), or null.</summary>
    private static string? RelativePathProblem(string path)
    {
        if (path.StartsWith('/') || path.Contains('\\'))
        {
            return $"must be a relative path with '/' separators, got {Text.Quote(path)}";
        }

        return path.Split('/').Any(part => part == "..") ? $"must stay inside the repository (no '..'), got {Text.Quote(path)}" : null;
    }

    private static void CheckImage(Errors errors, string path, string? image)
    {
        if (!string.IsNullOrEmpty(image) && ImageReference.Problem(image) is { } problem)
        {
            errors.Add(path, problem);
        }
    }

    private static void ValidateName(Errors errors, string? name, bool label, int maxLength, string why)
    {
        if (string.IsNullOrEmpty(name))
        {
            errors.Add("metadata.name", "required");
        }
        else if (name.Length > maxLength)
        {
            errors.Add("metadata.name", $"must be at most {maxLength} characters{(why.Length > 0 ? " " + why : "")}, got {name.Length}");
        }
        else if (label ? !Dns1123Label().IsMatch(name) : !Dns1123Subdomain().IsMatch(name))
        {
            errors.Add("metadata.name", $"must be {(label ? Patterns.Dns1123LabelText : Patterns.Dns1123SubdomainText)}, got {Text.Quote(name)}");
        }
    }

    private static void ValidateNamespace(Errors errors, string? ns)
    {
        if (ns is null)
        {
            return;
        }

        if (ns.Length > 63)
        {
            errors.Add("metadata.namespace", $"must be at most 63 characters, got {ns.Length}");
        }
        else if (!Dns1123Label().IsMatch(ns))
        {
            errors.Add("metadata.namespace", $"must be {Patterns.Dns1123LabelText}, got {Text.Quote(ns)}");
        }
    }

    // ---- The schema's own constraints, read from the same attributes the CRD generator reads ----

    private static void CheckAttributes(Errors errors, string path, object obj)
    {
        foreach (var rule in Rules.GetOrAdd(obj.GetType(), FieldRule.Of))
        {
            var fieldPath = path + "." + rule.Name;
            var value = rule.Property.GetValue(obj);
            if (value is null || value is string { Length: 0 } && rule.Required)
            {
                if (rule.Required)
                {
                    errors.Add(fieldPath, "required");
                }

                continue;
            }

            switch (value)
            {
                case string s:
                    CheckString(errors, fieldPath, s, rule);
                    break;
                case int or long:
                    CheckNumber(errors, fieldPath, Convert.ToInt64(value, CultureInfo.InvariantCulture), rule);
                    break;
                case IList list:
                    CheckList(errors, fieldPath, list, rule);
                    break;
                case bool or IntOrString:
                    break;
                default:
                    CheckAttributes(errors, fieldPath, value);
                    break;
            }
        }
    }

    private static void CheckString(Errors errors, string path, string value, FieldRule rule)
    {
        if (rule.MaxLength is { } max && value.Length > max.MaxLength)
        {
            errors.Add(path, $"must be at most {max.MaxLength} characters, got {value.Length}");
        }
        else if (rule.Enum is { } e && !e.Values.Contains(value))
        {
            errors.Add(path, $"must be one of {string.Join(", ", e.Values)}, got {Text.Quote(value)}");
        }
        else if (rule.Quantity && !Quantity.ForField(rule.Name).TryConvert(value, out _, out var quantityError))
        {
            errors.Add(path, quantityError!);
        }
        else if (rule.Duration && !GoDuration.TryParse(value, out _))
        {
            errors.Add(path, $"must be {Patterns.DurationText}, got {Text.Quote(value)}");
        }
        else if (rule.Pattern is { } p && !Regex.IsMatch(value, p.Pattern, RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1)))
        {
            errors.Add(path, $"must be {p.Description}, got {Text.Quote(value)}");
        }
    }

    private static void CheckNumber(Errors errors, string path, long value, FieldRule rule)
    {
        if (rule.Range is { } range && (value < range.Minimum || value > range.Maximum))
        {
            errors.Add(path, $"must be between {range.Minimum} and {range.Maximum}, got {value}");
        }
    }

    private static void CheckList(Errors errors, string path, IList list, FieldRule rule)
    {
        if (rule.MaxItems is { } max && list.Count > max.MaxItems)
        {
            errors.Add(path, $"must have at most {max.MaxItems} items, got {list.Count}");
            return;
        }

        if (rule.MinItems is { } min && list.Count < min.MinItems)
        {
            errors.Add(path, min.MinItems == 1 ? "must not be empty" : $"must have at least {min.MinItems} items, got {list.Count}");
            return;
        }

        var itemMax = rule.ItemsMaxLength;
        for (var i = 0; i < list.Count; i++)
        {
            var itemPath = $"{path}[{i}]";
            switch (list[i])
            {
                case null:
                    errors.Add(itemPath, "must not be null");
                    break;
                case string s when itemMax is not null && s.Length > itemMax.MaxLength:
                    errors.Add(itemPath, $"must be at most {itemMax.MaxLength} characters, got {s.Length}");
                    break;
                case string:
                    break;
                case var item:
                    CheckAttributes(errors, itemPath, item);
                    break;
            }
        }
    }

    /// <summary>ports[i].domains: DNS names, each once across the stack's ports, on an http port; tls and tlsSecret only with domains, tlsSecret not with tls: false.</summary>
    private static void CheckDomains(Errors errors, AppSpec app, int i)
    {
        var port = app.Ports![i];
        var at = $"spec.app.ports[{i}]";
        if (port.Domains is not { } domains)
        {
            if (port.Tls is not null)
            {
                errors.Add($"{at}.tls", "only applies to a port with domains: add domains: [api.example.com] or remove tls");
            }

            if (port.TlsSecret is not null)
            {
                errors.Add($"{at}.tlsSecret", "only applies to a port with domains: add domains: [api.example.com] (the names its certificate covers) or remove tlsSecret");
            }

            return;
        }

        if (port.TlsSecret is not null && port.Tls == false)
        {
            errors.Add($"{at}.tlsSecret", "names the certificate to serve over HTTPS, but tls is false: remove tls: false, or remove tlsSecret to serve HTTP only");
        }

        if (domains.Count == 0)
        {
            errors.Add($"{at}.domains", "must not be empty: list the names to serve (api.example.com) or remove domains");
            return;
        }

        if ((port.Protocol ?? Defaults.PortProtocol) != PortProtocols.Http)
        {
            errors.Add($"{at}.domains", $"domains are routed by HTTP Host header and TLS SNI, so only a port with protocol: http can have them (this one is {port.Protocol}); remove domains or use protocol: http");
        }

        for (var d = 0; d < domains.Count; d++)
        {
            if (domains[d] is not { } domain)
            {
                continue;
            }

            if (Proxy.DomainName.Problem(domain) is { } problem)
            {
                errors.Add($"{at}.domains[{d}]", problem);
                continue;
            }

            var first = app.Ports.Select((p, n) => (p, n)).SelectMany(x => (x.p?.Domains ?? []).Select((name, k) => (Port: x.n, Index: k, Name: name)))
                .First(x => x.Name == domain);
            if (first.Port != i || first.Index != d)
            {
                errors.Add($"{at}.domains[{d}]", $"{Text.Quote(domain)} is already spec.app.ports[{first.Port}].domains[{first.Index}]: a domain goes to one port; remove one");
            }
        }
    }

    [GeneratedRegex(Patterns.Dns1123Label, RegexOptions.CultureInvariant)]
    private static partial Regex Dns1123Label();

    [GeneratedRegex(Patterns.Dns1123Subdomain, RegexOptions.CultureInvariant)]
    private static partial Regex Dns1123Subdomain();

    /// <summary>Each API type's fields and the schema attributes on them, read once per type, not at every validation.</summary>
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<Type, FieldRule[]> Rules = new();

    /// <summary>One field of an API type: its JSON name and the constraints its attributes declare.</summary>
    private sealed record FieldRule(PropertyInfo Property, string Name)
    {
        public bool Required { get; private init; }

        public SchemaMaxLengthAttribute? MaxLength { get; private init; }

        public SchemaEnumAttribute? Enum { get; private init; }

        public bool Quantity { get; private init; }

        public bool Duration { get; private init; }

        public SchemaPatternAttribute? Pattern { get; private init; }

        public SchemaRangeAttribute? Range { get; private init; }

        public SchemaMaxItemsAttribute? MaxItems { get; private init; }

        public SchemaMinItemsAttribute? MinItems { get; private init; }

        public SchemaItemsMaxLengthAttribute? ItemsMaxLength { get; private init; }

        /// <summary>The type's serialized fields (those with a JSON name), in declaration order.</summary>
        public static FieldRule[] Of(Type type) => type.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.GetCustomAttribute<JsonPropertyNameAttribute>() is not null)
            .Select(p => new FieldRule(p, p.GetCustomAttribute<JsonPropertyNameAttribute>()!.Name)
            {
                Required = p.GetCustomAttribute<SchemaRequiredAttribute>() is not null,
                MaxLength = p.GetCustomAttribute<SchemaMaxLengthAttribute>(),
                Enum = p.GetCustomAttribute<SchemaEnumAttribute>(),
                Quantity = p.GetCustomAttribute<QuantityAttribute>() is not null,
                Duration = p.GetCustomAttribute<DurationAttribute>() is not null,
                Pattern = p.GetCustomAttribute<SchemaPatternAttribute>(),
                Range = p.GetCustomAttribute<SchemaRangeAttribute>(),
                MaxItems = p.GetCustomAttribute<SchemaMaxItemsAttribute>(),
                MinItems = p.GetCustomAttribute<SchemaMinItemsAttribute>(),
                ItemsMaxLength = p.GetCustomAttribute<SchemaItemsMaxLengthAttribute>(),
            })
            .ToArray();
    }

    /// <summary>Collects errors, keeping the first one per path.</summary>
    internal sealed class Errors
    {
        private readonly HashSet<string> _paths = [];

        public List<ValidationError> List { get; } = [];

        /// <summary>
        /// Every problem reported, including those not listed because their path already has one: compare it
        /// before and after a check to know whether the check found something (List.Count would miss a second
        /// problem at a path, e.g. a duplicate field whose value also has the wrong type).
        /// </summary>
        public int Reported { get; private set; }

        public void Add(string path, string message)
        {
            Reported++;
            if (_paths.Add(path))
            {
                List.Add(new ValidationError(path, message));
            }
        }
    }
}
