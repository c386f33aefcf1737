using System.CommandLine;
using Skiff.Hosting;

namespace Skiff.Cli;

/// <summary><c>skiff run</c>: the operator's main loop.</summary>
public static class RunCommand
{
    public static Option<string?> Source { get; } = new("--source")
    {
        Description = "directory, git or kubernetes (default: git when --url is given, directory when --path is given, else kubernetes)",
    };

    public static Option<string?> PathOption { get; } = new("--path")
    {
        Description = "Folder of AppDeployment, ImageGCPolicy and Secret YAML documents (directory source), or the folder inside the repository (git source)",
    };

    public static Option<string?> Url { get; } = new("--url")
    {
        Description = "Git repository to follow (git source): https://, ssh://, git@host:path or file:// URL",
    };

    public static Option<string?> Branch { get; } = new("--branch")
    {
        Description = "Branch to follow (git source; default the remote's default branch)",
    };

    public static Option<string> Interval { get; } = new("--interval")
    {
        Description = "How often the git source fetches (Go duration: 30s, 1m, 1h); POST /sync fetches at once",
        DefaultValueFactory = _ => "1m",
    };

    public static Option<string?> SshKey { get; } = new("--ssh-key")
    {
        Description = "Private key (a deploy key) for an SSH URL (git source)",
    };

    public static Option<string?> SshKnownHosts { get; } = new("--ssh-known-hosts")
    {
        Description = "known_hosts file with the SSH server's host key (git source; default ssh's own)",
    };

    public static Option<string?> TokenFile { get; } = new("--token-file")
    {
        Description = "File holding a token for an HTTPS URL (git source)",
    };

    public static Option<string?> WebhookSecretFile { get; } = new("--webhook-secret-file")
    {
        Description = "File holding the webhook secret that POST /sync checks (X-Hub-Signature-256); without it /sync answers 403 (git source)",
    };

    public static Option<string?> SourceName { get; } = new("--source-name")
    {
        Description = "Name of this folder source, instead of the folder's real path: keeps its stacks when the folder moves (directory source)",
    };

    public static Option<string?> AgeKeyFile { get; } = new("--age-key-file")
    {
        Description = "age identity file (age-keygen -o FILE) that decrypts the *.age files Secret documents name (directory and git sources; env SKIFF_AGE_KEY_FILE)",
        HelpName = "file",
    };

    public static Option<string?> Kubeconfig { get; } = new("--kubeconfig")
    {
        Description = "kubeconfig file (kubernetes source; default in-cluster, then $KUBECONFIG, then ~/.kube/config)",
    };

    public static Option<string?> Context { get; } = new("--context")
    {
        Description = "kubeconfig context to use",
    };

    public static Option<bool> Once { get; } = new("--once")
    {
        Description = "Reconcile everything, wait until each resource is Ready or failed, print the status table and exit (0 only if all are Ready)",
    };

    public static Option<string> MetricsBindAddress { get; } = new("--metrics-bind-address")
    {
        Description = "Address of /metrics and /status (\"0\" disables)",
        DefaultValueFactory = _ => ":8080",
    };

    public static Option<string> HealthProbeBindAddress { get; } = new("--health-probe-bind-address")
    {
        Description = "Address of /healthz and /readyz (\"0\" disables)",
        DefaultValueFactory = _ => ":8081",
    };

    public static Option<bool?> LeaderElect { get; } = new("--leader-elect")
    {
        Description = "Hold a Lease per node so two instances of one node never work at once (default on with the kubernetes source)",
    };

    public static Option<string?> LeaderElectionNamespace { get; } = new("--leader-election-namespace")
    {
        Description = "Namespace of the Lease (default the pod's namespace, else skiff-system)",
    };

    public static Option<int> LeaseDurationSeconds { get; } = new("--leader-election-lease-duration")
    {
        Description = "Seconds a lease is valid without renewal; a standby takes over after this long (controller-runtime default 15)",
        DefaultValueFactory = _ => 15,
        CustomParser = result => CommonOptions.PositiveSeconds(result, "--leader-election-lease-duration", 15),
    };

    public static Option<int> RenewDeadlineSeconds { get; } = new("--leader-election-renew-deadline")
    {
        Description = "Seconds the leader keeps trying to renew before it gives up and exits (default 10)",
        DefaultValueFactory = _ => 10,
        CustomParser = result => CommonOptions.PositiveSeconds(result, "--leader-election-renew-deadline", 10),
    };

    public static Option<int> RetryPeriodSeconds { get; } = new("--leader-election-retry-period")
    {
        Description = "Seconds between attempts to acquire or renew the lease (default 2)",
        DefaultValueFactory = _ => 2,
        CustomParser = result => CommonOptions.PositiveSeconds(result, "--leader-election-retry-period", 2),
    };

    public static Option<string> PullTimeout { get; } = new("--pull-timeout")
    {
        Description = "How long one image pull may take before it counts as failed (Go duration: 90s, 10m, 1h)",
        DefaultValueFactory = _ => "10m",
    };

    public static Option<string> NetworkPoolOption { get; } = new("--network-pool")
    {
        Description = "IPv4 range (CIDR) that each stack's network gets a subnet of; subnets used by other Docker networks or by the host's routes are skipped",
        HelpName = "cidr",
        DefaultValueFactory = _ => Docker.NetworkPool.DefaultPoolText,
    };

    public static Option<int> NetworkPrefix { get; } = new("--network-prefix")
    {
        Description = "Prefix length of each stack's subnet, from the pool's own to 29 (27: 29 addresses per stack, 2,048 stacks in the default pool)",
        HelpName = "bits",
        DefaultValueFactory = _ => Docker.NetworkPool.DefaultPrefix,
        CustomParser = result =>
        {
            var text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
            if (int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var bits) && bits <= 32)
            {
                return bits;
            }

            result.AddError($"--network-prefix {text}: want a prefix length such as {Docker.NetworkPool.DefaultPrefix} (from the --network-pool's own to {Docker.NetworkPool.LongestPrefix})");
            return Docker.NetworkPool.DefaultPrefix;
        },
    };

    public static Option<string?> ProxyImage { get; } = new("--proxy-image")
    {
        Description = "Run the node proxy (skiff proxy) from this image, the operator's own (env SKIFF_PROXY_IMAGE): it owns the " +
            "published ports and every rollout is start-first. Without it, apps publish their ports and are replaced stop-first",
        HelpName = "image",
        DefaultValueFactory = _ => Environment.GetEnvironmentVariable("SKIFF_PROXY_IMAGE") is { Length: > 0 } image ? image : null,
    };

    public static Option<string> ProxyMetricsBindAddress { get; } = new("--proxy-metrics-bind-address")
    {
        Description = "Where the node proxy serves /metrics ([host]:port); the operator reads it there to know a route switch is live",
        HelpName = "address",
        DefaultValueFactory = _ => ":9090",
    };

    public static Option<int> ProxyHttpPort { get; } = new("--proxy-http-port")
    {
        Description = "The node's shared HTTP port where the node proxy serves every stack's domains (ports[].domains) by Host header, " +
            "answers ACME challenges and redirects to HTTPS",
        HelpName = "port",
        DefaultValueFactory = _ => 80,
        CustomParser = result => PortNumber(result, "--proxy-http-port", 80),
    };

    public static Option<int> ProxyHttpsPort { get; } = new("--proxy-https-port")
    {
        Description = "The node's shared HTTPS port where the node proxy serves every stack's domains by SNI with the certificates of the state folder's proxy/certs",
        HelpName = "port",
        DefaultValueFactory = _ => 443,
        CustomParser = result => PortNumber(result, "--proxy-https-port", 443),
    };

    public static Option<string> AcmeDirectory { get; } = new("--acme-directory")
    {
        Description = "The ACME CA's directory URL that certificates for spec.app.ports[].domains come from",
        HelpName = "url",
        DefaultValueFactory = _ => Acme.AcmeOptions.LetsEncrypt.AbsoluteUri,
    };

    public static Option<string?> AcmeEmail { get; } = new("--acme-email")
    {
        Description = "The ACME account's contact e-mail: the CA writes there before a certificate expires",
        HelpName = "address",
    };

    public static Command Build()
    {
        var node = CommonOptions.Node();
        var dockerHost = CommonOptions.DockerHost();
        var stateDir = CommonOptions.StateDir();
        var command = new Command("run", "Run the operator: reconcile AppDeployments from a folder or a Kubernetes API into containers on this node's Docker engine")
        {
            Source, PathOption, SourceName, Url, Branch, Interval, SshKey, SshKnownHosts, TokenFile, WebhookSecretFile, AgeKeyFile,
            Kubeconfig, Context, node, dockerHost, stateDir, Once,
            MetricsBindAddress, HealthProbeBindAddress, LeaderElect, LeaderElectionNamespace,
            LeaseDurationSeconds, RenewDeadlineSeconds, RetryPeriodSeconds, PullTimeout, ProxyImage, ProxyMetricsBindAddress, ProxyHttpPort, ProxyHttpsPort,
            AcmeDirectory, AcmeEmail, NetworkPoolOption, NetworkPrefix,
        };
        command.SetAction(async (parse, ct) =>
        {
            Observability.StartupTrace.Mark("run action");
            var path = parse.GetValue(PathOption);
            var url = parse.GetValue(Url);
            var source = parse.GetValue(Source) ?? (url is not null ? "git" : path is null ? "kubernetes" : "directory");
            if (source != "git" && GitOnly(parse) is { } gitFlag)
            {
                Console.Error.WriteLine($"{gitFlag}: only with the git source (--source git --url URL)");
                return ExitCodes.UsageOrIo;
            }
            var nodeName = parse.GetValue(node);
            if (string.IsNullOrEmpty(nodeName))
            {
                Console.Error.WriteLine("--node: required (or set NODE_NAME): the node this instance serves");
                return ExitCodes.UsageOrIo;
            }

            var pullTimeoutText = parse.GetValue(PullTimeout);
            if (!Validation.GoDuration.TryParse(pullTimeoutText, out var pullTimeout) || pullTimeout <= TimeSpan.Zero)
            {
                Console.Error.WriteLine($"--pull-timeout: \"{pullTimeoutText}\" is not a duration; use a Go duration such as 90s, 10m or 1h");
                return ExitCodes.UsageOrIo;
            }

            // The two flags are judged together: a prefix only makes sense within its pool.
            if (Docker.NetworkPool.Create(parse.GetValue(NetworkPoolOption)!, parse.GetValue(NetworkPrefix), out var networkProblem) is not { } networkPool)
            {
                parse.InvocationConfiguration.Error.WriteLine(networkProblem);
                return ExitCodes.UsageOrIo;
            }

            Hosting.NodeProxySettings? proxy = null;
            if (parse.GetValue(ProxyImage) is { } proxyImage)
            {
                if (Validation.ImageReference.Problem(proxyImage) is { } imageProblem)
                {
                    Console.Error.WriteLine($"--proxy-image: {imageProblem}");
                    return ExitCodes.UsageOrIo;
                }

                var metricsAddress = parse.GetValue(ProxyMetricsBindAddress)!;
                if (Hosting.NodeProxy.MetricsEndPoint(metricsAddress) is null)
                {
                    Console.Error.WriteLine($"--proxy-metrics-bind-address: \"{metricsAddress}\" is not [host]:port; use :9090 or 127.0.0.1:9090");
                    return ExitCodes.UsageOrIo;
                }

                var httpPort = parse.GetValue(ProxyHttpPort);
                var httpsPort = parse.GetValue(ProxyHttpsPort);
                if (httpPort == httpsPort)
                {
                    Console.Error.WriteLine($"--proxy-https-port: {httpsPort} is also --proxy-http-port; HTTP and HTTPS need their own ports (80 and 443)");
                    return ExitCodes.UsageOrIo;
                }

                proxy = new Hosting.NodeProxySettings(proxyImage, metricsAddress) { HttpPort = httpPort, HttpsPort = httpsPort };
            }

            var acmeDirectory = parse.GetValue(AcmeDirectory)!;
            if (Acme.AcmeOptions.DirectoryProblem(acmeDirectory) is { } directoryProblem)
            {
                Console.Error.WriteLine($"--acme-directory: {directoryProblem}");
                return ExitCodes.UsageOrIo;
            }

            var acmeEmail = parse.GetValue(AcmeEmail);
            if (acmeEmail is not null && Acme.AcmeOptions.EmailProblem(acmeEmail) is { } emailProblem)
            {
                Console.Error.WriteLine($"--acme-email: {emailProblem}");
                return ExitCodes.UsageOrIo;
            }

            var acme = new Acme.AcmeOptions { Directory = new Uri(acmeDirectory), Email = acmeEmail };

            // run --once on a terminal draws a live line per image pulled; the log goes through it meanwhile.
            var once = parse.GetValue(Once);
            using var live = once && LivePulls.TerminalAvailable ? new LivePulls(Console.Error) : null;
            using var restoreError = live is null ? null : ConsoleError.Replace(live.Writer);
            var console = new Hosting.RunConsole(live, (records, output) =>
            {
                StatusTable.Write(records, OutputFormat.Table, output, DateTimeOffset.UtcNow);
                StatusTable.WriteProblems(records, output);
            });

            switch (source)
            {
                case "git":
                    if (url is null)
                    {
                        Console.Error.WriteLine("--url: required with --source git: the repository to follow");
                        return ExitCodes.UsageOrIo;
                    }

                    var plan = Hosting.GitFeed.Plan(
                        new Hosting.GitRunOptions(url, parse.GetValue(Branch), path, parse.GetValue(Interval)!, parse.GetValue(SshKey), parse.GetValue(SshKnownHosts), parse.GetValue(TokenFile), parse.GetValue(WebhookSecretFile)),
                        Console.Error);
                    if (plan is null)
                    {
                        return ExitCodes.UsageOrIo;
                    }

                    return await Hosting.DirectoryRunner.RunAsync(
                        new Hosting.DirectoryRunOptions(
                            "",
                            nodeName,
                            parse.GetValue(dockerHost),
                            parse.GetValue(stateDir)!,
                            once,
                            parse.GetValue(MetricsBindAddress)!,
                            parse.GetValue(HealthProbeBindAddress)!,
                            parse.GetValue(SourceName))
                        {
                            PullTimeout = pullTimeout,
                            NetworkPool = networkPool,
                            Console = console,
                            Git = plan,
                            Proxy = proxy,
                            Acme = acme,
                            AgeKeyFile = AgeKeyFileOrEnvironment(parse),
                        },
                        CliContext.Logging,
                        Console.Out,
                        Console.Error,
                        ct);
                case "directory":
                    if (path is null)
                    {
                        Console.Error.WriteLine("--path: required with --source directory");
                        return ExitCodes.UsageOrIo;
                    }

                    return await Hosting.DirectoryRunner.RunAsync(
                        new Hosting.DirectoryRunOptions(
                            path,
                            nodeName,
                            parse.GetValue(dockerHost),
                            parse.GetValue(stateDir)!,
                            parse.GetValue(Once),
                            parse.GetValue(MetricsBindAddress)!,
                            parse.GetValue(HealthProbeBindAddress)!,
                            parse.GetValue(SourceName))
                        {
                            PullTimeout = pullTimeout,
                            NetworkPool = networkPool,
                            Console = console,
                            Proxy = proxy,
                            Acme = acme,
                            AgeKeyFile = AgeKeyFileOrEnvironment(parse),
                        },
                        CliContext.Logging,
                        Console.Out,
                        Console.Error,
                        ct);
                case "kubernetes":
                    if (parse.GetValue(SourceName) is not null)
                    {
                        Console.Error.WriteLine("--source-name: only with the directory source (--path): the kubernetes source is the cluster");
                        return ExitCodes.UsageOrIo;
                    }

                    if (parse.GetResult(AgeKeyFile) is { Implicit: false })
                    {
                        Console.Error.WriteLine("--age-key-file: only with the directory and git sources: the kubernetes source reads Secrets from the API as they are");
                        return ExitCodes.UsageOrIo;
                    }

                    return await Hosting.KubernetesRunner.RunAsync(
                        new Hosting.KubernetesRunOptions(
                            parse.GetValue(Kubeconfig),
                            parse.GetValue(Context),
                            nodeName,
                            parse.GetValue(dockerHost),
                            parse.GetValue(stateDir)!,
                            parse.GetValue(MetricsBindAddress)!,
                            parse.GetValue(HealthProbeBindAddress)!,
                            parse.GetValue(LeaderElect) ?? true,
                            parse.GetValue(LeaderElectionNamespace))
                        {
                            Once = parse.GetValue(Once),
                            Lease = new Sources.Kubernetes.LeaseTimings(
                                TimeSpan.FromSeconds(parse.GetValue(LeaseDurationSeconds)),
                                TimeSpan.FromSeconds(parse.GetValue(RenewDeadlineSeconds)),
                                TimeSpan.FromSeconds(parse.GetValue(RetryPeriodSeconds))),
                            PullTimeout = pullTimeout,
                            NetworkPool = networkPool,
                            Console = console,
                            Proxy = proxy,
                            Acme = acme,
                        },
                        CliContext.Logging,
                        Console.Out,
                        Console.Error,
                        ct);
                default:
                    Console.Error.WriteLine($"--source: unknown source \"{source}\"; use directory, git or kubernetes");
                    return ExitCodes.UsageOrIo;
            }
        });
        return command;
    }

    private static string? AgeKeyFileOrEnvironment(ParseResult parse) => CommonOptions.AgeKeyFileOrEnvironment(parse, AgeKeyFile);

    /// <summary>The first flag given that only the git source takes, or null.</summary>
    private static string? GitOnly(ParseResult parse)
    {
        foreach (var option in new Option[] { Url, Branch, SshKey, SshKnownHosts, TokenFile, WebhookSecretFile })
        {
            if (parse.GetResult(option) is { Implicit: false })
            {
                return option.Name;
            }
        }

        return parse.GetResult(Interval) is { Implicit: false } ? Interval.Name : null;
    }

    private static int PortNumber(System.CommandLine.Parsing.ArgumentResult result, string option, int fallback)
    {
        var text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
        if (int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var port) && port is >= 1 and <= 65535)
        {
            return port;
        }

        result.AddError($"{option} {text}: want a port number from 1 to 65535");
        return fallback;
    }
}
