using System.CommandLine;

namespace Skiff.Cli;

/// <summary><c>skiff run</c>: the operator's main loop.</summary>
public static class RunCommand
{
    public static Option<string?> Source { get; } = new("--source")
    {
        Description = "directory or kubernetes (default: directory when --path is given, else kubernetes)",
    };

    public static Option<string?> PathOption { get; } = new("--path")
    {
        Description = "Folder of AppDeployment, ImageGCPolicy and Secret YAML documents (directory source)",
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

    public static Command Build()
    {
        var node = CommonOptions.Node();
        var dockerHost = CommonOptions.DockerHost();
        var stateDir = CommonOptions.StateDir();
        var command = new Command("run", "Run the operator: reconcile AppDeployments from a folder or a Kubernetes API into containers on this node's Docker engine")
        {
            Source, PathOption, Kubeconfig, Context, node, dockerHost, stateDir, Once,
            MetricsBindAddress, HealthProbeBindAddress, LeaderElect, LeaderElectionNamespace,
        };
        command.SetAction((_, _) => Task.FromResult(SkiffCommandLine.NotBuiltYet("skiff run")));
        return command;
    }
}
