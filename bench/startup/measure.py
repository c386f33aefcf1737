#!/usr/bin/env python3
"""Times one process start until a URL answers 200: `measure.py --url URL [--timeout S] [--log FILE] -- COMMAND...`.

Prints the seconds from just before the process is spawned to the first 200 (polled every 5 ms over a fresh
connection), then stops the process (SIGTERM, then SIGKILL after 10 s). Exit 1 when no 200 came in time or the
process ended first.
"""
import argparse
import http.client
import os
import signal
import subprocess
import sys
import time
import urllib.parse


def terminate(process):
    """SIGTERM, as a service manager stops it; SIGKILL after 10 s. Also used by variants.py."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--log", default="/dev/null")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    url = urllib.parse.urlsplit(args.url)
    log = open(args.log, "ab")
    # SKIFF_STARTUP_T0: the spawn time for SKIFF_STARTUP_TRACE=1 (skiff's start-up phases, bench/startup/phases.sh).
    env = dict(os.environ, SKIFF_STARTUP_T0=str(time.time_ns()))
    start = time.monotonic()
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    elapsed = None
    try:
        while time.monotonic() - start < args.timeout:
            if process.poll() is not None:
                print(f"measure.py: {command[0]} exited {process.returncode} before {args.url} answered", file=sys.stderr)
                return 1
            try:
                connection = http.client.HTTPConnection(url.hostname, url.port, timeout=1)
                connection.request("GET", url.path or "/")
                status = connection.getresponse().status
                connection.close()
                if status == 200:
                    elapsed = time.monotonic() - start
                    break
            except OSError:
                pass
            time.sleep(0.005)
    finally:
        terminate(process)
    if elapsed is None:
        print(f"measure.py: {args.url} did not answer 200 within {args.timeout} s", file=sys.stderr)
        return 1
    print(f"{elapsed:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
