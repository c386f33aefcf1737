using Microsoft.AspNetCore.Http;

namespace Skiff.TestApiServer;

/// <summary>How to start a <see cref="TestApiServer"/>.</summary>
public sealed class TestApiServerOptions
{
    /// <summary>CRD YAML files (one or more CustomResourceDefinition documents each) whose kinds the server serves.</summary>
    public IList<string> CrdPaths { get; init; } = [];

    /// <summary>The address Kestrel binds; tests in a second network namespace pass "0.0.0.0" or a veth address.</summary>
    public string BindAddress { get; init; } = "127.0.0.1";

    /// <summary>The port; 0 picks a free one.</summary>
    public int Port { get; init; }

    /// <summary>How often watches that asked for bookmarks get one (the real server: about a minute).</summary>
    public TimeSpan BookmarkInterval { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>How many events the server remembers for watches that resume from a resourceVersion.</summary>
    public int WatchHistorySize { get; init; } = 1000;

    /// <summary>How long a watch without timeoutSeconds stays open.</summary>
    public TimeSpan DefaultWatchTimeout { get; init; } = TimeSpan.FromMinutes(30);

    /// <summary>Namespaces that exist from the start, besides default and kube-system.</summary>
    public IList<string> Namespaces { get; init; } = [];

    /// <summary>The clock for timestamps and ages; the system clock when null.</summary>
    public TimeProvider? Clock { get; init; }

    /// <summary>
    /// Called with every request as it arrives, before it is served (and before <see cref="TestApiServer.Faults"/> act on
    /// it); null (the default) calls nothing. The request log (<see cref="TestApiServer.RequestLog"/>) records requests as
    /// their responses start; this sees them earlier, when a client's write reaches the server: bench/kube-apiserver's
    /// <c>--request-log</c> (P8, bench/queue) times the operator's writes with it. It runs on the request's thread:
    /// keep it short and do not read the body.
    /// </summary>
    public Action<HttpRequest>? OnRequestArrived { get; init; }
}
