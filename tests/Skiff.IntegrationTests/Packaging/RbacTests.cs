using k8s;
using System.Text.Json.Nodes;
using Skiff.Api;
using Skiff.IntegrationTests.FolderSource;
using Skiff.IntegrationTests.KubernetesSource;
using Skiff.TestApiServer;
using Skiff.Tests.Packaging;
using Skiff.IntegrationTests.Infrastructure;

namespace Skiff.IntegrationTests.Packaging;

/// <summary>
/// The chart's RBAC against what the real operator does: every request of a full stack lifecycle
/// (create with a database, wait Ready, change, delete) must be allowed by the ClusterRole and
/// Role that the real helm renders (helm template), and every rule must be used by some request
/// or be reserved below for a code path this lifecycle does not reach. A new API call without a rule fails here, not in a cluster with 403s.
/// </summary>
public sealed class RbacTests
{
    /// <summary>
    /// Rules the chart grants for code paths this test does not exercise, each with its reason.
    /// Remove an entry when its code path starts making the request (the test tolerates that) or
    /// when the rule goes; an entry without a matching rule fails the test.
    /// </summary>
    private static readonly (string Group, string Resource, string Verb, string Reason)[] Reserved =
    [
        ("skiff.dev", "imagegcpolicies", "get", "the GC reporter reads the policy in effect before it writes its node's entry (this lifecycle has no ImageGCPolicy)"),
        ("skiff.dev", "imagegcpolicies/status", "patch", "each node's instance writes its own status.nodes entry after a GC run (this lifecycle has no ImageGCPolicy)"),
    ];

    /// <summary>
    /// Non-resource URLs the operator may request without a rule: kube-apiserver's default
    /// ClusterRole system:public-info-viewer grants exactly these to every authenticated and
    /// unauthenticated user (KubernetesClient asks for /version/ at start-up).
    /// </summary>
    private static readonly HashSet<string> PublicNonResourceUrls = ["/healthz", "/livez", "/readyz", "/version", "/version/"];

    [Fact]
    public async Task Every_request_of_the_operator_is_allowed_by_the_chart_and_every_rule_is_used()
    {
        await using var h = await KubeHarness.StartAsync();
        var chart = Helm.Template(Path.Combine(RepoRoot(), "charts", "skiff"), "skiff", h.Namespace);
        var rules = chart.RbacRules;

        // From here on, only the operator and kubectl talk to the server (the harness's own client
        // created the namespace above): no h.Client and no h.GetAsync below, so that every
        // request that is not kubectl's or the test's ControllerManager's is the operator's.
        h.Server.ClearRequestLog();
        var op = h.StartOperator(leaderElect: true);

        await h.ApplyAsync(Stack(h, databaseMemory: "256Mi"));
        var ready = await h.WaitReadyAsync("rbac");
        Assert.True(ready.ExitCode == 0, $"kubectl wait: {ready.Stdout}{ready.Stderr}\n{op.Stderr}");

        // A changed database setting recreates the database container: the same "DatabaseStarted"
        // event again, which the event recorder aggregates with a patch of the first one.
        await h.ApplyAsync(Stack(h, databaseMemory: "300Mi"));
        await Eventually.TrueAsync("revision 2 of rbac is Ready", () => RevisionReadyAsync(h, 2), TimeSpan.FromSeconds(120), () => op.Stderr);

        // reclaimPolicy: Delete, so the finalizer's cleanup deletes the rbac-db Secret as well.
        var delete = await h.KubectlAsync("delete", "appdeployment", "rbac", "--timeout=120s");
        Assert.True(delete.ExitCode == 0, $"kubectl delete: {delete.Stderr}\n{op.Stderr}");
        Assert.False(op.HasExited, op.Stderr);

        // runtime: kubernetes, reconciled by the holder of the Lease skiff-cluster: the workloads of a stack with a
        // database and a migration (the test plays the controller-manager, with its own user agent), then deleted with
        // reclaimPolicy: Delete so that the claims and the Secret go too.
        using (var cm = new ControllerManager(h))
        {
            await h.ApplyAsync(h.Api(name: "kube", edit: s => (s.Runtime, s.Node, s.Database!.Storage) =
                (Runtimes.Kubernetes, null, new StorageSpec { ReclaimPolicy = ReclaimPolicies.Delete })));
            await Eventually.TrueAsync("the StatefulSet of kube exists", async () =>
                (await cm.Client.AppsV1.ListNamespacedStatefulSetAsync(h.Namespace)).Items.Count > 0, TimeSpan.FromSeconds(60), () => op.Stderr);
            await cm.MarkDataReadyAsync();
            await Eventually.TrueAsync("the Deployment of kube exists", async () =>
            {
                await cm.CompleteJobAsync("kube-migrate-r1");
                return await cm.DeploymentAsync("kube") is not null;
            }, TimeSpan.FromSeconds(60), () => op.Stderr);
            await cm.RollOutAsync("kube");
            var kubeReady = await h.WaitReadyAsync("kube", 60);
            Assert.True(kubeReady.ExitCode == 0, $"kubectl wait: {kubeReady.Stdout}{kubeReady.Stderr}\n{op.Stderr}");
            var kubeDelete = await h.KubectlAsync("delete", "appdeployment", "kube", "--timeout=60s");
            Assert.True(kubeDelete.ExitCode == 0, $"kubectl delete: {kubeDelete.Stderr}\n{op.Stderr}");
            Assert.Empty((await cm.Client.CoreV1.ListNamespacedPersistentVolumeClaimAsync(h.Namespace)).Items);
        }

        // KubernetesClient identifies itself as kubernetes-csharp/VERSION; kubectl as kubectl/… (or
        // kubectl-dispatcher/… where a version dispatcher wraps it). Nobody else talked to the server.
        var log = h.Server.RequestLog;
        var strangers = log.Where(r => !r.UserAgent.StartsWith("kubectl", StringComparison.Ordinal) && !IsOperator(r)
            && r.UserAgent != ControllerManager.UserAgent).Select(r => r.UserAgent).Distinct().ToList();
        Assert.True(strangers.Count == 0, $"requests from clients that are neither kubectl nor the operator: {string.Join(", ", strangers)}");
        var fromOperator = log.Where(IsOperator).ToList();
        Assert.NotEmpty(fromOperator);

        // 1. Every request is allowed.
        var denied = new List<string>();
        var used = new HashSet<(string Group, string Resource, string Verb)>();
        foreach (var r in fromOperator)
        {
            if (r.Resource.Length == 0)
            {
                if (!PublicNonResourceUrls.Contains(r.Path))
                {
                    denied.Add($"{r.Method} {r.Path}: a non-resource URL that needs a nonResourceURLs rule");
                }

                continue;
            }

            var resource = r.Subresource.Length == 0 ? r.Resource : $"{r.Resource}/{r.Subresource}";
            var ns = r.Namespace.Length == 0 ? null : r.Namespace;
            if (!rules.Any(rule => rule.Allows(r.ApiGroup, resource, r.Verb, ns)))
            {
                denied.Add($"{r.Verb} {(r.ApiGroup.Length == 0 ? "core" : r.ApiGroup)}/{resource} {(ns is null ? "(all namespaces)" : "in " + ns)}: {r.Method} {r.Path}{r.Query}");
            }

            used.Add((r.ApiGroup, resource, r.Verb));
        }

        Assert.True(denied.Count == 0, "requests the chart's RBAC would deny:\n" + string.Join("\n", denied.Distinct()));

        // 2. Every rule is used, or reserved with a reason.
        var unused = new List<string>();
        var granted = new HashSet<(string, string, string)>();
        foreach (var rule in rules)
        {
            foreach (var group in rule.ApiGroups)
            {
                foreach (var resource in rule.Resources)
                {
                    foreach (var verb in rule.Verbs)
                    {
                        granted.Add((group, resource, verb));
                        if (!used.Contains((group, resource, verb)) && !Reserved.Any(x => (x.Group, x.Resource, x.Verb) == (group, resource, verb)))
                        {
                            unused.Add($"{rule.Source}: {verb} {(group.Length == 0 ? "core" : group)}/{resource}");
                        }
                    }
                }
            }
        }

        Assert.True(unused.Count == 0,
            "rules no request used and no entry of Reserved explains (least privilege: drop them, or reserve them with the code path):\n" + string.Join("\n", unused)
            + "\nrequests seen:\n" + string.Join("\n", used.Order().Select(u => $"{u.Verb} {u.Group}/{u.Resource}")));
        foreach (var reserved in Reserved)
        {
            Assert.True(granted.Contains((reserved.Group, reserved.Resource, reserved.Verb)), $"Reserved names {reserved.Verb} {reserved.Group}/{reserved.Resource}, which no rule grants");
        }

        // The lifecycle really reached the interesting requests (otherwise the check above proves little).
        Assert.Contains(("coordination.k8s.io", "leases", "update"), used);
        Assert.Contains(("", "events", "patch"), used);
        Assert.Contains(("", "secrets", "delete"), used);
        Assert.Contains(("skiff.dev", "appdeployments", "watch"), used);
        Assert.Contains(("skiff.dev", "imagegcpolicies", "watch"), used);
        Assert.Contains(("apps", "deployments", "patch"), used);
        Assert.Contains(("", "persistentvolumeclaims", "delete"), used);
        Assert.Contains(("", "nodes", "list"), used);
    }

    private static bool IsOperator(RequestRecord r) => r.UserAgent.StartsWith("kubernetes-csharp/", StringComparison.Ordinal);

    private static string Stack(KubeHarness h, string databaseMemory) =>
        h.Api(name: "rbac", edit: s => (s.Database!.Storage, s.Database.Resources) =
            (new StorageSpec { ReclaimPolicy = ReclaimPolicies.Delete }, new ResourceLimits { Memory = databaseMemory }));

    /// <summary>Through kubectl, so that the request log holds only kubectl's and the operator's requests.</summary>
    private static async Task<bool> RevisionReadyAsync(KubeHarness h, long revision)
    {
        var get = await h.KubectlAsync("get", "appdeployment", "rbac", "-o", "json");
        if (get.ExitCode != 0)
        {
            return false;
        }

        var obj = JsonNode.Parse(get.Stdout)!;
        var status = obj["status"];
        var ready = status?["conditions"]?.AsArray().FirstOrDefault(c => c?["type"]?.GetValue<string>() == "Ready");
        return status?["revision"]?.GetValue<long>() == revision
            && status["observedGeneration"]?.GetValue<long>() == obj["metadata"]!["generation"]!.GetValue<long>()
            && ready?["status"]?.GetValue<string>() == "True";
    }

    private static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Operator.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("Operator.sln not found above " + AppContext.BaseDirectory);
    }
}
