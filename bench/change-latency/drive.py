#!/usr/bin/env python3
"""Makes N changes to AppDeployments and finds, for each, the first Docker request it caused (bench/change-latency).

    drive.py --relay-log LOG --namespace NS --names A,B,C,D --changes N --out CSV
             (--folder DIR --template TEMPLATE | --kubeconfig FILE)

The changes go round the stacks (A, B, C, D, A, ...). A change sets the app's environment variable BENCH_CHANGE to a
new value: a new spec hash, so the operator must act (a rollout). Folder source: DIR/NAME.yaml is written from the
template (@NAME@, @CHANGE@) beside the file and renamed over it, as editors and git do. Kubernetes source: a JSON
merge patch of the AppDeployment through the API server. A stack is changed again only after its previous rollout is
over (the engine holds one container of the stack, running, of the revision that change made: asked of the engine
directly, --engine, not through the relay) and it has then been quiet on the engine for --quiet seconds; then a random
pause of 0-100 ms follows. (Quiet alone is not enough: the operator reads a copy of the engine, so a rollout waiting
on its new container's health makes no request, and a container start can take longer than --quiet on its own.) Going round
several stacks lets one stack's change fall while another rolls out, as on a node where several stacks change.

The latency of a change: from just before the rename (or the PATCH request) to the first request in the relay's log
(bench/docker-relay.py) that names the changed stack (its label dev.skiff.app=NS/NAME or its containers' names
skiff_NS_NAME), both on the same wall clock. The stacks' health checks run hourly, so no periodic reconcile of the
changed stack falls inside a measurement. CSV: change,stack,seconds,first_any_seconds,first_target.
"""
import argparse
import http.client
import json
import os
import random
import subprocess
import sys
import time
import urllib.parse


class RelayLog:
    def __init__(self, path):
        self.file = open(path, "r")
        self.partial = ""

    def new_lines(self):
        lines = []
        chunk = self.file.read()
        if chunk:
            parts = (self.partial + chunk).split("\n")
            self.partial = parts.pop()
            for line in parts:
                fields = line.split("\t", 3)
                if len(fields) == 4:
                    lines.append((float(fields[0]), fields[2], fields[3]))
        return lines


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--relay-log", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--names", required=True)
    parser.add_argument("--changes", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--folder")
    parser.add_argument("--template")
    parser.add_argument("--kubeconfig")
    parser.add_argument("--quiet", type=float, default=1.0)
    parser.add_argument("--engine", default="/var/run/docker.sock", help="the engine's socket (not the relay's)")
    parser.add_argument("--timeout", type=float, default=20)
    args = parser.parse_args()

    names = args.names.split(",")
    markers = {n: (f"dev.skiff.app={args.namespace}/{n}", f"skiff_{args.namespace}_{n}") for n in names}
    last_seen = {n: time.time() for n in names}
    log = RelayLog(args.relay_log)

    def read():
        """New relay lines as (ts, method, target, stack or None); keeps each stack's last request time."""
        result = []
        for ts, method, target in log.new_lines():
            stack = next((n for n in names if any(m in target for m in markers[n])), None)
            if stack is not None:
                last_seen[stack] = max(last_seen[stack], ts)
            result.append((ts, method, target, stack))
        return result

    read()  # everything before the first change

    if args.kubeconfig:
        server = None
        for line in open(args.kubeconfig):
            if line.strip().startswith("server:"):
                server = urllib.parse.urlsplit(line.split(":", 1)[1].strip())
        connection = http.client.HTTPConnection(server.hostname, server.port, timeout=10)

        def change(name, value):
            path = f"/apis/skiff.dev/v1alpha1/namespaces/{args.namespace}/appdeployments/{name}"
            body = json.dumps({"spec": {"app": {"env": [{"name": "BENCH_CHANGE", "value": value}]}}})
            start = time.time()
            connection.request("PATCH", path, body, {"Content-Type": "application/merge-patch+json"})
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                sys.exit(f"drive.py: PATCH {path} answered {response.status}")
            return start
    else:
        template = open(args.template).read()

        def change(name, value):
            temporary = os.path.join(args.folder, f".{name}.tmp")
            with open(temporary, "w") as f:
                f.write(template.replace("@NAME@", name).replace("@CHANGE@", value))
            start = time.time()
            os.replace(temporary, os.path.join(args.folder, f"{name}.yaml"))
            return start

    revision = {n: 1 for n in names}  # each stack starts at revision 1; every change makes the next

    def rolled_out(name):
        listed = subprocess.run(
            ["docker", "-H", f"unix://{args.engine}", "ps", "-a", "--filter", f"label=dev.skiff.app={args.namespace}/{name}",
             "--format", "{{.Names}} {{.State}}"], capture_output=True, text=True, check=True).stdout.split("\n")
        listed = [line.split() for line in listed if line.strip()]
        return len(listed) == 1 and listed[0][1] == "running" and listed[0][0].endswith(f"_r{revision[name]}")

    def wait_quiet(name):
        deadline = time.time() + 120
        while not rolled_out(name):
            if time.time() > deadline:
                sys.exit(f"drive.py: stack {name} did not finish rolling out revision {revision[name]} in 2 minutes")
            read()
            time.sleep(0.1)
        while time.time() - last_seen[name] < args.quiet:
            if time.time() > deadline:
                sys.exit(f"drive.py: stack {name} was not quiet on the engine for 2 minutes")
            read()
            time.sleep(0.02)

    out = open(args.out, "w")
    out.write("change,stack,seconds,first_any_seconds,first_target\n")
    missed = 0
    for i in range(1, args.changes + 1):
        name = names[(i - 1) % len(names)]
        wait_quiet(name)
        time.sleep(random.uniform(0, 0.1))
        read()
        start = change(name, f"{i}-{random.randrange(1 << 30)}")
        revision[name] += 1
        first = first_any = None
        deadline = start + args.timeout
        while first is None and time.time() < deadline:
            lines = read()
            for ts, method, target, stack in lines:
                if ts < start:
                    continue
                if first_any is None:
                    first_any = ts
                if stack == name and first is None:
                    first = (ts, f"{method} {target}")
            if not lines:
                time.sleep(0.002)
        if first is None:
            missed += 1
            out.write(f"{i},{name},,,\n")
            print(f"  change {i} ({name}): no Docker request for the stack within {args.timeout} s", file=sys.stderr)
            continue
        seconds = first[0] - start
        out.write(f"{i},{name},{seconds:.6f},{(first_any - start):.6f},{first[1].split('?')[0]}\n")
        out.flush()
        if i % 20 == 0 or i == 1:
            print(f"  change {i}/{args.changes} ({name}): {seconds * 1000:.1f} ms to {first[1][:50]}", file=sys.stderr)
    return 1 if missed == args.changes else 0


if __name__ == "__main__":
    sys.exit(main())
