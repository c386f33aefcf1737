namespace Skiff.Api;

/// <summary>
/// Regular expressions shared by the CRD schema and the operator's validation. They are written in
/// the RE2 subset the API server accepts (no lookarounds), so the same text serves both.
/// </summary>
public static class Patterns
{
    public const string Dns1123Label = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
    public const string Dns1123LabelText = "a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit)";

    public const string Dns1123Subdomain = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
    public const string Dns1123SubdomainText = "a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)";

    public const string EnvVarName = "^[A-Za-z_][A-Za-z0-9_]*$";
    public const string EnvVarNameText = "letters, digits and '_', not starting with a digit";

    public const string SecretKey = "^[-._a-zA-Z0-9]+$";
    public const string SecretKeyText = "letters, digits, '-', '_' and '.'";

    public const string PortName = Dns1123Label;
    public const string PortNameText = "a DNS-1123 label (lowercase letters, digits and '-') with at least one letter";

    // Loose on purpose: a regex cannot check an address fully; Validation parses it.
    public const string IPAddress = "^[0-9a-fA-F:.]+$";
    public const string IPAddressText = "an IPv4 or IPv6 address such as 0.0.0.0 or 127.0.0.1";

    public const string SqlIdentifier = "^[A-Za-z_][A-Za-z0-9_]*$";
    public const string SqlIdentifierText = "letters, digits and '_', not starting with a digit";

    public const string DockerVolumeOrEmpty = "^([a-zA-Z0-9][a-zA-Z0-9_.-]*)?$";
    public const string DockerVolumeText = "a Docker volume name (letters, digits, '_', '.' and '-', starting with a letter or digit)";

    /// <summary>A Kubernetes quantity in the forms Skiff accepts: 512Mi, 1Gi, 500m, 2, 1.5G.</summary>
    public const string Quantity = "^[0-9]+(\\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$";
    public const string QuantityText = "a quantity such as 512Mi, 1Gi, 500m or 2";

    /// <summary>A Go duration without sign: 30s, 10m, 1h30m, 720h, 1.5h.</summary>
    public const string Duration = "^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$";
    public const string DurationText = "a duration such as 30s, 10m, 1h or 720h";
}

/// <summary>
/// Names of the C# twins of the CEL rules (<see cref="CelRuleAttribute.Twin"/>): the rules cannot
/// be evaluated on the operator's hosts, so Validation mirrors each one and tests name them.
/// </summary>
public static class CelTwins
{
    public const string NodeImmutableWithData = "NodeImmutableWithData";
    public const string NodeRequiredForDocker = "NodeRequiredForDocker";
    public const string HostPortsUnique = "HostPortsUnique";
    public const string PortNamesUnique = "PortNamesUnique";
    public const string HealthCheckPortExists = "HealthCheckPortExists";
    public const string EnvValueXorValueFrom = "EnvValueXorValueFrom";
    public const string RevisionHistoryLimitAtLeastOne = "RevisionHistoryLimitAtLeastOne";
    public const string LowBelowHigh = "LowBelowHigh";
    public const string ImageXorBuild = "ImageXorBuild";
}
