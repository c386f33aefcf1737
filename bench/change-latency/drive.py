#!/usr/bin/env python3
"""Makes N changes to one AppDeployment and finds, for each, the first Docker request it caused (bench/change-latency).

    drive.py --relay-log LOG --namespace NS --name NAME --changes N --out CSV
             (--file FOLDER/NAME.yaml --template TEMPLATE | --kubeconfig FILE)

A change sets the app's environment variable BENCH_CHANGE to a new value (a new spec hash: the operator must act).
Folder source: the document is written beside the file and renamed over it, as editors and git do. Kubernetes
source: a JSON merge patch of the AppDeployment through the API server. Before each change the stack must have been
quiet on the engine for --quiet seconds (the previous rollout is over), then a random pause of 0-200 ms follows.

The latency of a change: from just before the write (or the PATCH request) to the first request in the relay's log
(bench/docker-relay.py) that names the stack (its label dev.skiff.app=NS/NAME or its containers' names skiff_NS_NAME),
both on the same wall clock. The stack has a health check with periodSeconds 3600, so no periodic reconcile of it
falls inside the measurement. CSV: change,seconds,first_any_seconds,first_target.
"""
import argparse
import http.client
import json
import os
import random
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
            data = self.partial + chunk
            parts = data.split("\n")
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
    parser.add_argument("--name", required=True)
    parser.add_argument("--changes", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--file")
    parser.add_argument("--template")
    parser.add_argument("--kubeconfig")
    parser.add_argument("--quiet", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=20)
    args = parser.parse_args()

    markers = (f"dev.skiff.app={args.namespace}/{args.name}", f"skiff_{args.namespace}_{args.name}")
    log = RelayLog(args.relay_log)
    log.new_lines()  # everything before the first change
    last_seen = time.time()

    if args.kubeconfig:
        server = None
        for line in open(args.kubeconfig):
            if line.strip().startswith("server:"):
                server = urllib.parse.urlsplit(line.split(":", 1)[1].strip())
        connection = http.client.HTTPConnection(server.hostname, server.port, timeout=10)
        path = f"/apis/skiff.dev/v1alpha1/namespaces/{args.namespace}/appdeployments/{args.name}"

        def change(value):
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

        def change(value):
            text = template.replace("@CHANGE@", value)
            temporary = os.path.join(os.path.dirname(args.file), f".{args.name}.tmp")
            with open(temporary, "w") as f:
                f.write(text)
            start = time.time()
            os.replace(temporary, args.file)
            return start

    def quiet_until():
        nonlocal last_seen
        deadline = time.time() + 120
        while time.time() < deadline:
            for ts, _, target in log.new_lines():
                if any(m in target for m in markers):
                    last_seen = max(last_seen, ts)
            if time.time() - last_seen >= args.quiet:
                return
            time.sleep(0.05)
        sys.exit("drive.py: the stack was not quiet on the engine for 2 minutes")

    out = open(args.out, "w")
    out.write("change,seconds,first_any_seconds,first_target\n")
    missed = 0
    for i in range(1, args.changes + 1):
        quiet_until()
        time.sleep(random.uniform(0, 0.2))
        log.new_lines()
        start = change(f"{i}-{random.randrange(1 << 30)}")
        first = first_any = None
        deadline = start + args.timeout
        while first is None and time.time() < deadline:
            lines = log.new_lines()
            for ts, method, target in lines:
                mine = any(m in target for m in markers)
                if mine:
                    last_seen = max(last_seen, ts)
                if ts < start:
                    continue
                if first_any is None:
                    first_any = ts
                if mine and first is None:
                    first = (ts, f"{method} {target}")
            if not lines:
                time.sleep(0.002)
        if first is None:
            missed += 1
            out.write(f"{i},,,\n")
            print(f"  change {i}: no Docker request for the stack within {args.timeout} s", file=sys.stderr)
            continue
        seconds = first[0] - start
        out.write(f"{i},{seconds:.6f},{(first_any - start):.6f},{first[1].split('?')[0]}\n")
        out.flush()
        if i % 10 == 0 or i == 1:
            print(f"  change {i}/{args.changes}: {seconds * 1000:.1f} ms to {first[1][:60]}", file=sys.stderr)
    return 1 if missed == args.changes else 0


if __name__ == "__main__":
    sys.exit(main())
