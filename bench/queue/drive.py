#!/usr/bin/env python3
"""The parts of bench/queue (P8) that talk to the API server, sample the operator and read the request log.

    drive.py create   --kubeconfig K --namespace NS --stacks N
    drive.py sample   --metrics URL --pid PID [--apiserver-pid PID] --out DIR   (until SIGTERM: DIR/metrics.tsv, DIR/process.tsv)
    drive.py converge --request-log LOG --namespace NS --stacks N --since EPOCH --timeout S
    drive.py change   --kubeconfig K --namespace NS --stacks N --rate R --duration S --out CSV
    drive.py match    --request-log LOG --namespace NS --changes CSV --grace S --out CSV
    drive.py report   --dir DIR                                     (key=value lines for run.sh's summary)

Stacks are named q0001..qNNNN, AppDeployments with runtime: kubernetes (no node, no database, no cache, no ports: the
render is one Deployment). A change is a JSON merge patch setting the app's environment variable BENCH_CHANGE to a
new value: a new spec hash, so a new revision. The changes go round the stacks in order (each stack every N/R seconds)
at fixed times (start + i/R), sent from a few threads, each on its own keep-alive connection, so that one slow answer
does not delay the next change; the CSV keeps the time each PATCH was sent.

The request log is bench/kube-apiserver's --request-log: "<epoch>\\t<METHOD>\\t<path?query>\\t<User-Agent>", one line per
request as it arrives, on the same wall clock as time.time(). The operator's writes are its requests with a method
other than GET; the driver's own PATCHes carry the User-Agent "bench-queue-driver" and are left out. For each change
(stack S, sent at T), `match` finds, in the log after T:
  - acted:   the first write of S's AppDeployment status (PUT/PATCH .../appdeployments/S/status). A new spec hash makes
             the runtime begin a revision and publish that status before it applies anything for it (BeginRollout), and a
             stack whose rollout waits writes no status on its 10 s polls, so this write is the change's doing;
  - applied: the first apply (PATCH) of S's Deployment after that status write: the new revision's template;
  - first:   the first write of any object naming S (the Deployment, the AppDeployment or its status): the literal
             "first write for the stack", which a background poll of S that was under way when the change landed can
             also satisfy (its no-op re-apply of the old template);
all in seconds after T, empty when not found before the end of the log (the change was never acted on).
"""
import argparse
import csv
import http.client
import json
import os
import re
import signal
import sys
import threading
import time
import urllib.parse

GROUP = "/apis/skiff.dev/v1alpha1"
AGENT = "bench-queue-driver"
# A write naming a stack: /apis/apps/v1/namespaces/NS/deployments/NAME, .../appdeployments/NAME[/status], ...
WRITE_PATH = re.compile(r"^/(?:api|apis/[^/]+)/[^/]+/namespaces/([^/]+)/([a-z]+)/([^/?]+)(/status)?(?:\?|$)")


def stack_name(i):
    return f"q{i:04d}"


def server_of(kubeconfig):
    for line in open(kubeconfig):
        if line.strip().startswith("server:"):
            return urllib.parse.urlsplit(line.split(":", 1)[1].strip())
    sys.exit(f"drive.py: no server in {kubeconfig}")


def connect(kubeconfig):
    server = server_of(kubeconfig)
    return http.client.HTTPConnection(server.hostname, server.port, timeout=60)


def request(conn, method, path, body=None, content_type="application/json"):
    headers = {"User-Agent": AGENT, "Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = content_type
    conn.request(method, path, None if body is None else json.dumps(body), headers)
    response = conn.getresponse()
    data = response.read()
    return response.status, data


def manifest(ns, name, change):
    return {
        "apiVersion": "skiff.dev/v1alpha1",
        "kind": "AppDeployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "runtime": "kubernetes",
            "app": {
                "image": "skiff-test/busybox:latest",
                "command": ["busybox", "httpd", "-f", "-p", "8080", "-h", "/etc"],
                "env": [{"name": "BENCH_CHANGE", "value": change}],
                "resources": {"memory": "32Mi", "cpu": "250m"},
            },
        },
    }


def create(args):
    conn = connect(args.kubeconfig)
    path = f"{GROUP}/namespaces/{args.namespace}/appdeployments"
    start = time.time()
    for i in range(1, args.stacks + 1):
        status, data = request(conn, "POST", path, manifest(args.namespace, stack_name(i), "0"))
        if status != 201:
            sys.exit(f"drive.py: POST {stack_name(i)} answered {status}: {data[:300]!r}")
    print(f"{time.time() - start:.3f}")


def sample(args):
    """Every second: the operator's workqueue_*/reconcile metrics (metrics.tsv); its RSS, the CPU seconds it and the API
    server used so far, the machine's busy and total CPU jiffies (all cores) and the load (process.tsv)."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    url = urllib.parse.urlsplit(args.metrics)
    os.makedirs(args.out, exist_ok=True)
    metrics = open(os.path.join(args.out, "metrics.tsv"), "a")
    process = open(os.path.join(args.out, "process.tsv"), "a")
    if process.tell() == 0:
        process.write("epoch\trss_kib\tload1\tscrape_seconds\toperator_cpu_s\tapiserver_cpu_s\tmachine_busy_jiffies\tmachine_total_jiffies\n")
    wanted = ("workqueue_", "controller_runtime_reconcile_total", "controller_runtime_reconcile_errors_total",
              "controller_runtime_active_workers", "controller_runtime_reconcile_time_seconds_sum",
              "controller_runtime_reconcile_time_seconds_count")
    conn = None
    next_tick = time.time()
    while not stop.is_set():
        now = time.time()
        scrape = ""
        try:
            if conn is None:
                conn = http.client.HTTPConnection(url.hostname, url.port, timeout=5)
            t0 = time.time()
            conn.request("GET", url.path or "/metrics")
            response = conn.getresponse()
            text = response.read().decode()
            scrape = f"{time.time() - t0:.3f}"
            for line in text.splitlines():
                # Histogram buckets left out (their _sum and _count stay): 1 s samples of every bucket are megabytes.
                if line.startswith(wanted) and "_bucket{" not in line:
                    series, _, value = line.rpartition(" ")
                    metrics.write(f"{now:.3f}\t{series}\t{value}\n")
            metrics.flush()
        except (OSError, http.client.HTTPException):
            conn = None
        rss = ""
        try:
            for line in open(f"/proc/{args.pid}/status"):
                if line.startswith("VmRSS:"):
                    rss = line.split()[1]
        except OSError:
            pass
        load = open("/proc/loadavg").read().split()[0]
        cpu = open("/proc/stat").readline().split()[1:]
        busy, total = sum(int(x) for x in cpu) - int(cpu[3]) - int(cpu[4]), sum(int(x) for x in cpu)
        process.write(f"{now:.3f}\t{rss}\t{load}\t{scrape}\t{cpu_seconds(args.pid)}\t{cpu_seconds(args.apiserver_pid)}\t{busy}\t{total}\n")
        process.flush()
        next_tick += 1
        stop.wait(max(0, next_tick - time.time()))


def cpu_seconds(pid):
    """utime + stime of a process (and its waited-for children) in seconds, "" when it is gone."""
    if not pid:
        return ""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return f"{sum(int(x) for x in fields[11:15]) / os.sysconf('SC_CLK_TCK'):.2f}"
    except OSError:
        return ""


class LogReader:
    """Reads the request log as it grows: (epoch, method, path, agent) tuples."""

    def __init__(self, path):
        self.file = open(path, "r")
        self.partial = ""

    def lines(self):
        chunk = self.file.read()
        if not chunk:
            return []
        parts = (self.partial + chunk).split("\n")
        self.partial = parts.pop()
        result = []
        for line in parts:
            fields = line.split("\t")
            if len(fields) >= 3:
                result.append((float(fields[0]), fields[1], fields[2], fields[3] if len(fields) > 3 else ""))
        return result


def operator_write(entry, ns):
    """(kind, name, status) of a write by the operator naming an object of namespace ns, else None."""
    _, method, path, agent = entry
    if method == "GET" or agent == AGENT:
        return None
    m = WRITE_PATH.match(path)
    if m is None or m.group(1) != ns:
        return None
    return m.group(2), m.group(3), m.group(4) is not None


def converge(args):
    """Waits until the operator has applied every stack's Deployment once; prints the seconds since --since."""
    log = LogReader(args.request_log)
    names = {stack_name(i) for i in range(1, args.stacks + 1)}
    applied = set()
    first_request = None
    deadline = time.time() + args.timeout
    last_report = time.time()
    while True:
        for entry in log.lines():
            if first_request is None and entry[3] != AGENT and entry[0] >= args.since:
                first_request = entry[0]
            w = operator_write(entry, args.namespace)
            if w and w[0] == "deployments" and w[1] in names and w[1] not in applied:
                applied.add(w[1])
                if len(applied) == len(names):
                    print(f"{entry[0] - args.since:.3f} {entry[0] - (first_request or args.since):.3f}")
                    return 0
        if time.time() > deadline:
            print(f"drive.py: only {len(applied)} of {len(names)} Deployments applied after {args.timeout} s", file=sys.stderr)
            return 1
        if time.time() - last_report > 10:
            print(f"  converge: {len(applied)}/{len(names)} Deployments applied", file=sys.stderr)
            last_report = time.time()
        time.sleep(0.2)


def change(args):
    """RATE changes per second for DURATION seconds, round the stacks, at fixed times; CSV: change,stack,value,sent,answered,status."""
    total = int(args.rate * args.duration)
    threads = max(2, min(8, int(args.rate)))
    results = [None] * total
    start = time.time() + 0.5
    counter = iter(range(total))
    lock = threading.Lock()

    def worker():
        conn = connect(args.kubeconfig)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            due = start + i / args.rate
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            name = stack_name(i % args.stacks + 1)
            value = f"c{i + 1}"
            path = f"{GROUP}/namespaces/{args.namespace}/appdeployments/{name}"
            body = {"spec": {"app": {"env": [{"name": "BENCH_CHANGE", "value": value}]}}}
            sent = time.time()
            try:
                status, _ = request(conn, "PATCH", path, body, "application/merge-patch+json")
            except (OSError, http.client.HTTPException):
                conn = connect(args.kubeconfig)
                status = 0
            results[i] = (i + 1, name, value, sent, time.time(), status, sent - due)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    with open(args.out, "w") as out:
        out.write("change,stack,value,sent,answered,status,late\n")
        for r in results:
            out.write(f"{r[0]},{r[1]},{r[2]},{r[3]:.6f},{r[4]:.6f},{r[5]},{r[6]:.6f}\n")
    failed = sum(1 for r in results if r[5] != 200)
    late = sorted(r[6] for r in results)
    print(f"drive.py: {total} changes in {results[-1][3] - results[0][3]:.1f} s; {failed} not answered 200; "
          f"sent late by up to {late[-1] * 1000:.0f} ms (p99 {late[int(0.99 * (len(late) - 1))] * 1000:.0f} ms)", file=sys.stderr)
    return 1 if failed else 0


def match(args):
    """Waits until every change was acted on or --grace seconds passed since the last one; writes the latencies."""
    changes = list(csv.DictReader(open(args.changes)))
    last_sent = max(float(c["sent"]) for c in changes)
    # Per stack, the times of its status writes, Deployment applies and any writes, in order.
    status_writes, applies, writes = {}, {}, {}
    log = LogReader(args.request_log)
    pending = {(c["stack"], float(c["sent"])) for c in changes if c["status"] == "200"}

    def read():
        for entry in log.lines():
            w = operator_write(entry, args.namespace)
            if w is None:
                continue
            kind, name, is_status = w
            writes.setdefault(name, []).append(entry[0])
            if kind == "appdeployments" and is_status:
                status_writes.setdefault(name, []).append(entry[0])
                for key in [k for k in pending if k[0] == name and k[1] <= entry[0]]:
                    pending.discard(key)
            elif kind == "deployments" and entry[1] == "PATCH":
                applies.setdefault(name, []).append(entry[0])

    deadline = last_sent + args.grace
    while True:
        read()
        if not pending or time.time() > deadline:
            break
        time.sleep(0.5)
    time.sleep(1)
    read()

    def after(times, t):
        for x in times or []:
            if x >= t:
                return x
        return None

    with open(args.out, "w") as out:
        out.write("change,stack,sent,acted,applied,first\n")
        for c in changes:
            t = float(c["sent"])
            acted = after(status_writes.get(c["stack"]), t) if c["status"] == "200" else None
            applied = after(applies.get(c["stack"]), acted) if acted is not None else None
            first = after(writes.get(c["stack"]), t) if c["status"] == "200" else None
            cell = lambda x: "" if x is None else f"{x - t:.6f}"
            out.write(f"{c['change']},{c['stack']},{t:.6f},{cell(acted)},{cell(applied)},{cell(first)}\n")
    never = len(pending)
    print(f"drive.py: {len(changes)} changes, {never} not acted on within {args.grace} s of the last one", file=sys.stderr)
    return 0


def stats(values):
    values = sorted(values)
    if not values:
        return None

    def rank(p):
        r = max(1, min(len(values), int(p * len(values) + 0.999999)))
        return values[r - 1]

    return {"n": len(values), "min": values[0], "p50": rank(0.5), "p90": rank(0.9), "p99": rank(0.99), "max": values[-1]}


def report(args):
    """key=value lines: latencies (ms), queue depth, reconcile rate, RSS and load, from DIR's files."""
    d = args.dir
    out = {}
    rows = list(csv.DictReader(open(os.path.join(d, "latency.csv"))))
    out["changes"] = len(rows)
    for column in ("acted", "applied", "first"):
        values = [float(r[column]) * 1000 for r in rows if r[column] != ""]
        s = stats(values)
        out[f"{column}_missed"] = len(rows) - len(values)
        out[f"{column}_over_1s"] = sum(1 for v in values if v > 1000)
        for k, v in (s or {}).items():
            out[f"{column}_{k}"] = v if k == "n" else f"{v:.1f}"
    phases = dict(line.strip().split("=", 1) for line in open(os.path.join(d, "phases.txt")) if "=" in line)
    t_changes, t_end = float(phases["changes_start"]), float(phases["changes_end"])
    depth, adds, reconciles, longest, work_sum, work_count = {}, {}, {}, {}, {}, {}
    # Per metric: where its samples go, and whether the series of one sample time add up (depth per priority,
    # reconciles per result) or one stands alone.
    metrics = [("workqueue_depth", depth, True), ("workqueue_adds_total", adds, False),
               ("workqueue_longest_running_processor_seconds", longest, False),
               ("controller_runtime_reconcile_total", reconciles, True),
               ("workqueue_work_duration_seconds_sum", work_sum, False),
               ("workqueue_work_duration_seconds_count", work_count, False)]
    for line in open(os.path.join(d, "metrics.tsv")):
        ts, series, value = line.rstrip("\n").split("\t")
        ts, value = float(ts), float(value)
        if 'name="appdeployment-cluster"' in series or 'controller="appdeployment-cluster"' in series:
            for prefix, samples, summed in metrics:
                if series.startswith(prefix):
                    samples[ts] = samples.get(ts, 0) + value if summed else value
                    break
    window = sorted(t for t in depth if t_changes <= t <= t_end)
    if window:
        s = stats([depth[t] for t in window])
        out.update({"depth_samples": s["n"], "depth_p50": f"{s['p50']:.0f}", "depth_p99": f"{s['p99']:.0f}", "depth_max": f"{s['max']:.0f}",
                    "depth_final": f"{depth[window[-1]]:.0f}"})
        third = max(1, len(window) // 3)
        out["depth_first_third_mean"] = f"{sum(depth[t] for t in window[:third]) / third:.1f}"
        out["depth_last_third_mean"] = f"{sum(depth[t] for t in window[-third:]) / third:.1f}"
    before = sorted(t for t in depth if t < t_changes)
    if before:
        out["depth_max_converge"] = f"{max(depth[t] for t in before):.0f}"
    rt = sorted(t for t in reconciles if t_changes <= t <= t_end)
    if len(rt) > 1:
        out["reconciles_per_s"] = f"{(reconciles[rt[-1]] - reconciles[rt[0]]) / (rt[-1] - rt[0]):.1f}"
    wt = sorted(t for t in work_sum if t_changes <= t <= t_end and t in work_count)
    if len(wt) > 1 and work_count[wt[-1]] > work_count[wt[0]]:
        busy = work_sum[wt[-1]] - work_sum[wt[0]]
        out["reconcile_mean_ms"] = f"{1000 * busy / (work_count[wt[-1]] - work_count[wt[0]]):.1f}"
        # The two workers' busy share: 1.00 = both reconciling all the time.
        out["workers_busy"] = f"{busy / (wt[-1] - wt[0]) / 2:.2f}"
    at = sorted(t for t in adds if t_changes <= t <= t_end)
    if len(at) > 1:
        out["adds_per_s"] = f"{(adds[at[-1]] - adds[at[0]]) / (at[-1] - at[0]):.1f}"
    rss, loads, window_rows = [], [], []
    for line in list(open(os.path.join(d, "process.tsv")))[1:]:
        row = line.rstrip("\n").split("\t")
        ts, r, load = row[0], row[1], row[2]
        if t_changes <= float(ts) <= t_end:
            if r:
                rss.append(int(r) / 1024)
            loads.append(float(load))
            if len(row) >= 8 and all(row[4:8]):
                window_rows.append(row)
    if len(window_rows) > 1:
        a, b = window_rows[0], window_rows[-1]
        seconds = float(b[0]) - float(a[0])
        # CPU in cores (1.00 = one core all the time) over the changes; the machine's share of all its cores.
        out["operator_cpu_cores"] = f"{(float(b[4]) - float(a[4])) / seconds:.2f}"
        out["apiserver_cpu_cores"] = f"{(float(b[5]) - float(a[5])) / seconds:.2f}"
        out["machine_busy_pct"] = f"{100 * (int(b[6]) - int(a[6])) / max(1, int(b[7]) - int(a[7])):.0f}"
    if rss:
        out["rss_max_mib"] = f"{max(rss):.1f}"
        out["rss_final_mib"] = f"{rss[-1]:.1f}"
    if loads:
        out["load_min"], out["load_max"] = f"{min(loads):.1f}", f"{max(loads):.1f}"
        out["load_mean"] = f"{sum(loads) / len(loads):.1f}"
    for k, v in out.items():
        print(f"{k}={v}")


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("create")
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--namespace", required=True)
    p.add_argument("--stacks", type=int, required=True)
    p = sub.add_parser("sample")
    p.add_argument("--metrics", required=True)
    p.add_argument("--pid", required=True)
    p.add_argument("--apiserver-pid")
    p.add_argument("--out", required=True)
    p = sub.add_parser("converge")
    p.add_argument("--request-log", required=True)
    p.add_argument("--namespace", required=True)
    p.add_argument("--stacks", type=int, required=True)
    p.add_argument("--since", type=float, required=True)
    p.add_argument("--timeout", type=float, default=900)
    p = sub.add_parser("change")
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--namespace", required=True)
    p.add_argument("--stacks", type=int, required=True)
    p.add_argument("--rate", type=float, required=True)
    p.add_argument("--duration", type=float, required=True)
    p.add_argument("--out", required=True)
    p = sub.add_parser("match")
    p.add_argument("--request-log", required=True)
    p.add_argument("--namespace", required=True)
    p.add_argument("--changes", required=True)
    p.add_argument("--grace", type=float, default=60)
    p.add_argument("--out", required=True)
    p = sub.add_parser("report")
    p.add_argument("--dir", required=True)
    args = parser.parse_args()
    return {"create": create, "sample": sample, "converge": converge, "change": change, "match": match, "report": report}[args.command](args) or 0


if __name__ == "__main__":
    sys.exit(main())
