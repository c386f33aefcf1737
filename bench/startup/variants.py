#!/usr/bin/env python3
"""Start-up and idle memory of several builds or settings of `skiff run`, interleaved with the peer in the same run.

    variants.py [--runs N] [--rss-after S] [--rss-runs N] [--out DIR] NAME='COMMAND' [NAME='COMMAND' ...]

COMMAND is a shell-free template split on spaces, with {port} (a free port), {state} (a fresh state folder) and
{path} (an empty folder); prefix it with `env VAR=VALUE` for a runtime setting. A variant named `peer` is the
yardstick the ratios are taken against (bench/peer). Each run starts every variant once, in an order rotated per run,
each timed from spawn to the first `/readyz` 200 (polled every 5 ms, bench/startup/measure.py's method); the 1-minute
load average is recorded beside every figure. With SKIFF_STARTUP_TRACE=1 in a variant's env, its start-up phases
(operator/Observability/StartupTrace.cs) are collected and their medians printed.

--rss-after S: afterwards, each variant is started --rss-runs times (default 2), left idle S seconds after /readyz
answered, and its VmRSS (RssAnon, RssFile, RssShmem) read from /proc.
"""
import argparse
import http.client
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from measure import terminate  # the same folder: on sys.path when run as a script


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def load1():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def ready(port):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        c.request("GET", "/readyz")
        status = c.getresponse().status
        c.close()
        return status == 200
    except OSError:
        return False


def spawn(template, work, tag, log_path):
    port = free_port()
    state = os.path.join(work, "state-" + tag)
    shutil.rmtree(state, ignore_errors=True)
    argv = [a.format(port=port, state=state, path=os.path.join(work, "empty")) for a in template.split()]
    log = open(log_path, "wb")
    env = dict(os.environ, SKIFF_STARTUP_T0=str(time.time_ns()))
    start = time.monotonic()
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    return process, port, start, state, log


def wait_ready(process, port, start, timeout=60):
    while time.monotonic() - start < timeout:
        if process.poll() is not None:
            return None
        if ready(port):
            return time.monotonic() - start
        time.sleep(0.005)
    return None


def stop(process, state, log):
    terminate(process)
    log.close()
    shutil.rmtree(state, ignore_errors=True)


PHASE = re.compile(r"startup\s+([\d.]+) ms\s+jit\s+(\d+) methods\s+([\d.]+) ms\s+asm\s+(\d+)\s+gc \d+\s+(.*)$")


def phases(log_path):
    out = []
    seen = set()  # the first of each phase
    with open(log_path, errors="replace") as f:
        for line in f:
            m = PHASE.search(line)
            if m and m.group(5).strip() not in seen:
                seen.add(m.group(5).strip())
                out.append((m.group(5).strip(), float(m.group(1)), int(m.group(2)), float(m.group(3)), int(m.group(4))))
    return out


def stats(values):
    v = sorted(values)
    return v[0], statistics.median(v), v[-1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--rss-after", type=float, default=0)
    parser.add_argument("--rss-runs", type=int, default=2)
    parser.add_argument("--out", default=None)
    parser.add_argument("variants", nargs="+")
    args = parser.parse_args()
    variants = []
    for spec in args.variants:
        name, _, template = spec.partition("=")
        variants.append((name, template))
    work = tempfile.mkdtemp(prefix="skiff-variants.")
    os.makedirs(os.path.join(work, "empty"))
    out = args.out or work
    os.makedirs(out, exist_ok=True)
    times = {n: [] for n, _ in variants}
    loads = {n: [] for n, _ in variants}
    traces = {n: [] for n, _ in variants}
    csv = open(os.path.join(out, "startup.csv"), "w")
    csv.write("run,variant,seconds,load1\n")
    try:
        # One unmeasured start of each: the first start after a build reads every file from disk.
        for run in range(0, args.runs + 1):
            order = variants[run % len(variants):] + variants[:run % len(variants)]
            for name, template in order:
                log_path = os.path.join(out, f"{name}-{run}.log")
                load = load1()
                process, port, start, state, log = spawn(template, work, name, log_path)
                seconds = wait_ready(process, port, start)
                stop(process, state, log)
                if seconds is None:
                    print(f"{name} run {run}: not ready (log {log_path})", file=sys.stderr)
                    continue
                if run == 0:
                    continue
                times[name].append(seconds)
                loads[name].append(load)
                traces[name].append(phases(log_path))
                csv.write(f"{run},{name},{seconds:.4f},{load}\n")
                csv.flush()
                print(f"  run {run:2d}  {name:24s} {seconds:6.3f} s  load {load}", file=sys.stderr)
        rss = {n: [] for n, _ in variants}
        for i in range(args.rss_runs if args.rss_after > 0 else 0):
            for name, template in variants:
                log_path = os.path.join(out, f"{name}-rss{i}.log")
                load = load1()
                process, port, start, state, log = spawn(template, work, name, log_path)
                if wait_ready(process, port, start) is not None:
                    time.sleep(args.rss_after)
                    fields = {}
                    with open(f"/proc/{process.pid}/status") as f:
                        for line in f:
                            k, _, v = line.partition(":")
                            if k in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                                fields[k] = int(v.split()[0]) / 1024
                    rss[name].append((fields, load))
                    print(f"  rss {name:24s} {fields}  load {load}", file=sys.stderr)
                stop(process, state, log)
    finally:
        csv.close()
    peer = statistics.median(times["peer"]) if times.get("peer") else None
    print(f"| variant | n | start min | median | max | ÷ peer median | load (min–max) |")
    print(f"|---|---:|---:|---:|---:|---:|---|")
    for name, _ in variants:
        if not times[name]:
            print(f"| {name} | 0 | – | – | – | – | – |")
            continue
        lo, med, hi = stats(times[name])
        ratio = f"{med / peer:.2f}×" if peer else "–"
        print(f"| {name} | {len(times[name])} | {lo:.3f} | {med:.3f} | {hi:.3f} | {ratio} | {min(loads[name])}–{max(loads[name])} |")
    if any(rss.values()):
        print()
        print("| variant | VmRSS MiB | RssAnon | RssFile | RssShmem | load |")
        print("|---|---:|---:|---:|---:|---|")
        for name, _ in variants:
            for fields, load in rss[name]:
                print(f"| {name} | {fields.get('VmRSS', 0):.1f} | {fields.get('RssAnon', 0):.1f} | {fields.get('RssFile', 0):.1f} | {fields.get('RssShmem', 0):.1f} | {load} |")
    for name, _ in variants:
        runs = [t for t in traces[name] if t]
        if not runs:
            continue
        print()
        print(f"{name}: start-up phases, median over {len(runs)} runs (ms since spawn, methods JIT-compiled so far, JIT ms so far, assemblies)")
        names = sorted({p[0] for r in runs for p in r}, key=lambda p: statistics.median(x[1] for r in runs for x in r if x[0] == p))
        for phase in names:
            rows = [x for r in runs for x in r if x[0] == phase]
            print(f"  {statistics.median(r[1] for r in rows):8.1f} ms  {statistics.median(r[2] for r in rows):6.0f} methods  "
                  f"{statistics.median(r[3] for r in rows):7.1f} jit-ms  {statistics.median(r[4] for r in rows):4.0f} asm  {phase}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
