using System.Globalization;
using Skiff.Api;
using Skiff.State;

namespace Skiff.Cli;

/// <summary>One resource in full, laid out as <c>kubectl describe</c> does: fields, then conditions, history, components and events.</summary>
public static class StatusDescription
{
    public static void Write(StatusRecord record, IReadOnlyList<StoredEvent> events, TextWriter output, DateTimeOffset now, IReadOnlyList<Proxy.ProxyListener>? routes = null,
        IReadOnlyList<Proxy.DomainState>? domains = null)
    {
        var status = record.Status;
        Field(output, "", "Name", record.Name);
        Field(output, "", "Namespace", record.Namespace);
        Field(output, "", "Node", record.Node);
        Field(output, "", "Created", $"{Time(record.CreatedAt)} ({StatusTable.Age(now - record.CreatedAt)} ago)");
        Field(output, "", "Generation", record.Generation.ToString(CultureInfo.InvariantCulture));
        Field(output, "", "File", record.File);

        output.WriteLine("Spec:");
        if (record.Spec is { } given)
        {
            var spec = Defaults.Apply(given);
            var app = spec.App;
            Field(output, "  ", "Runtime", spec.Runtime);
            Field(output, "  ", "Image", $"{app.Image} (pull {app.ImagePullPolicy})");
            Field(output, "  ", "Pull Secret", app.ImagePullSecret);
            Field(output, "  ", "Ports", app.Ports is { Count: > 0 } ports ? string.Join(", ", ports.Select(Port)) : "<none>");
            if (app.HealthCheck is { } check)
            {
                Field(output, "  ", "Health Check", $"GET {check.Http.Path} on port {check.Http.Port} every {check.PeriodSeconds}s, {check.FailureThreshold} failures make it unhealthy");
            }

            if (app.Migrate is { } migrate)
            {
                Field(output, "  ", "Migrate", $"{string.Join(' ', migrate.Command)} (timeout {migrate.TimeoutSeconds}s)");
            }

            Field(output, "  ", "Database", spec.Database is { } db
                ? $"{db.Engine} {db.Image} (database {db.Name}, user {db.User}{(db.Volume is { Length: > 0 } volume ? $", volume {volume}" : "")}, reclaim {db.Storage?.ReclaimPolicy})"
                : "<none>");
            Field(output, "  ", "Cache", spec.Cache is { } cache
                ? $"{cache.Engine} {cache.Image} (persistence {cache.Persistence}{(cache.MaxMemory is { } max ? $", maxMemory {max}" : "")})"
                : "<none>");
        }
        else
        {
            output.WriteLine("  <none: no valid document has been read yet>");
        }

        output.WriteLine("Status:");
        Field(output, "  ", "Phase", status?.Phase ?? Phases.Pending);
        Field(output, "  ", "Observed Generation", status?.ObservedGeneration?.ToString(CultureInfo.InvariantCulture));
        Field(output, "  ", "Revision", status?.Revision?.ToString(CultureInfo.InvariantCulture));
        Field(output, "  ", "Image", status?.Image);
        Field(output, "  ", "Last Good Image", status?.LastGoodImage);
        Field(output, "  ", "Endpoint", status?.Endpoint);
        Field(output, "  ", "Source", status?.Source);
        if (status?.LastBackup is { } backup)
        {
            Field(output, "  ", "Last Backup", $"{backup.Time?.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture)} {backup.File} " +
                $"({backup.Bytes?.ToString(CultureInfo.InvariantCulture)} bytes{(backup.Verified == true ? ", verified" : "")})");
        }

        Table(output, "Conditions", ["TYPE", "STATUS", "REASON", "MESSAGE", "AGE"],
            (status?.Conditions ?? []).Select(c => new[]
            {
                c.Type, c.Status, c.Reason ?? "", OneLine(c.Message), c.LastTransitionTime is { } t ? StatusTable.Age(now - t) : "",
            }));
        Table(output, "History", ["REVISION", "IMAGE", "OUTCOME", "REASON", "DEPLOYED"],
            (status?.History ?? []).Select(h => new[]
            {
                h.Revision.ToString(CultureInfo.InvariantCulture), h.Image ?? "", h.Outcome ?? "", h.Reason ?? "",
                h.DeployedAt is { } at ? StatusTable.Age(now - at) + " ago" : "",
            }));
        Table(output, "Components", ["NAME", "STATE", "HEALTH", "RESTARTS", "IMAGE", "CONTAINER"],
            (status?.Components ?? []).Select(c => new[]
            {
                c.Name, c.State ?? "", c.Health ?? "", c.Restarts?.ToString(CultureInfo.InvariantCulture) ?? "", c.Image ?? "",
                c.ContainerId is { Length: > 12 } id ? id[..12] : c.ContainerId ?? "",
            }));
        if (routes is not null)
        {
            // With the node proxy: where each published port goes now.
            Table(output, "Routes", ["ADDRESS", "PROTOCOL", "PORT", "REVISION", "UPSTREAM"],
                routes.Select(r => new[]
                {
                    r.Address, Proxy.ProxyProtocolNames.Name(r.Protocol), r.Port, r.Revision.ToString(CultureInfo.InvariantCulture), r.Upstream,
                }));
        }

        if (domains is { Count: > 0 })
        {
            // Served on the node's shared HTTP/HTTPS ports; the certificate as the proxy finds it in proxy/certs.
            Table(output, "Domains", ["DOMAIN", "TLS", "PORT", "REVISION", "UPSTREAM", "CERTIFICATE"],
                domains.Select(d => new[]
                {
                    d.Domain, d.Tls ? "yes" : "no", d.Port, d.Revision.ToString(CultureInfo.InvariantCulture), d.Upstream,
                    d.Certificate switch
                    {
                        "served" => $"served, expires {d.NotAfter!.Value.UtcDateTime.ToString("yyyy-MM-dd HH:mm'Z'", CultureInfo.InvariantCulture)} (in {StatusTable.Age(d.NotAfter.Value - now)})",
                        "expired" => $"EXPIRED {d.NotAfter!.Value.UtcDateTime.ToString("yyyy-MM-dd HH:mm'Z'", CultureInfo.InvariantCulture)}",
                        "none" => "none yet (served over HTTP)",
                        "unreadable" => "unreadable (served over HTTP or the last good one)",
                        _ => "not used (tls: false)",
                    },
                }));
        }

        // As kubectl describe: "5m (x3 over 20m)" for an event that happened again.
        Table(output, "Events", ["TYPE", "REASON", "AGE", "MESSAGE"],
            events.Select(e => new[]
            {
                e.Type, e.Reason,
                e.Count > 1 ? $"{StatusTable.Age(now - e.LastTimestamp)} (x{e.Count} over {StatusTable.Age(now - e.FirstTimestamp)})" : StatusTable.Age(now - e.LastTimestamp),
                OneLine(e.Message),
            }));
    }

    private static string Port(PortSpec p)
    {
        var inside = p.Name is { Length: > 0 } name ? $"{name} {p.ContainerPort}" : p.ContainerPort.ToString(CultureInfo.InvariantCulture);
        var published = p.HostPort is { } hostPort ? $"{inside} -> {p.HostIP ?? "0.0.0.0"}:{hostPort}" : inside;
        return p.Domains is { Count: > 0 } domains
            ? $"{published} -> {string.Join(" ", domains)} ({((p.Tls ?? Defaults.PortTls) ? "https" : "http")})"
            : published;
    }

    private static void Field(TextWriter output, string indent, string label, string? value) =>
        output.WriteLine($"{indent}{(label + ":").PadRight(indent.Length == 0 ? 12 : 22)}{(string.IsNullOrEmpty(value) ? "<none>" : value)}");

    private static void Table(TextWriter output, string title, string[] header, IEnumerable<string[]> rows)
    {
        var list = rows.ToList();
        if (list.Count == 0)
        {
            output.WriteLine($"{title}:".PadRight(12) + "<none>");
            return;
        }

        output.WriteLine($"{title}:");
        StatusTable.WriteColumns([header, .. list], output, "  ");
    }

    private static string OneLine(string? text) => (text ?? "").ReplaceLineEndings("; ");

    private static string Time(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture);
}
