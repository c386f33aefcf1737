#!/usr/bin/env python3
"""Summary of a bench/proxy/run.sh report (read on stdin): medians over rounds, the hop's cost per round.

The paced run's tail moves by a millisecond or more between runs of the same target on a shared 2-core machine,
so the overhead is taken per round (each target measured back to back) and reported as the median over rounds,
with the smallest and largest, for skiff proxy and for the peer proxy (nginx) alike.
"""
import statistics
import sys

rows = {}  # (run, target) -> {round: (p50, p90, p99, rps)}
for line in sys.stdin:
    parts = line.split()
    if len(parts) >= 7 and parts[0].isdigit() and parts[2] in ("paced", "max"):
        rows.setdefault((parts[2], parts[1]), {})[int(parts[0])] = tuple(float(v) for v in parts[3:7])


def col(run, target, i):
    return [v[i] for v in rows.get((run, target), {}).values()]


def per_round(run, target, i):
    a, b = rows.get((run, target), {}), rows.get((run, "direct"), {})
    return [a[r][i] - b[r][i] for r in sorted(a) if r in b]


def spread(values, fmt="{:+.2f}"):
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))} to {fmt.format(max(values))})"


if not rows.get(("paced", "direct")):
    sys.exit("summary.py: no paced rows in the report")
print()
print(f"summary over {len(rows[('paced', 'direct')])} rounds (median, min to max):")
for target in ("direct", "proxied", "nginx"):
    if rows.get(("paced", target)):
        print(f"  paced {target:8} p50 {spread(col('paced', target, 0), '{:.2f}')} ms, p99 {spread(col('paced', target, 2), '{:.2f}')} ms, "
              f"{statistics.median(col('paced', target, 3)):.0f} requests/s")
overheads = {}
for target in ("proxied", "nginx"):
    if rows.get(("paced", target)):
        overheads[target] = statistics.median(per_round("paced", target, 2))
        print(f"  hop cost of {target:8} (its round minus direct's): p50 {spread(per_round('paced', target, 0))} ms, "
              f"p99 {spread(per_round('paced', target, 2))} ms")
direct_max = statistics.median(col("max", "direct", 3)) if rows.get(("max", "direct")) else None
for target in ("direct", "proxied", "nginx"):
    if rows.get(("max", target)):
        rps = statistics.median(col("max", target, 3))
        print(f"  max   {target:8} {rps:.0f} requests/s ({rps / direct_max:.2f}x direct), p99 {statistics.median(col('max', target, 2)):.2f} ms")
if "proxied" in overheads:
    verdict = "met" if overheads["proxied"] <= 1.0 else "missed"
    peer = f"; nginx on the same rounds: {overheads['nginx']:+.2f} ms" if "nginx" in overheads else ""
    print(f"target (p99 overhead <= 1 ms at 1,000 requests/s): skiff proxy {overheads['proxied']:+.2f} ms: {verdict}{peer}")
