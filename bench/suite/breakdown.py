#!/usr/bin/env python3
"""Where a test run's CPU went: process accounting records (`accton FILE`, read with `dump-acct`) grouped by program.

    breakdown.py PACCT_DUMP [TRX_DIR]

PACCT_DUMP is `dump-acct FILE` output. A .NET process is named after the thread that ended it (".NET TP Worker"), so
.NET processes are told apart by their parent: started by a test host (skiff, kubectl's peers), inside a container
(its parent is docker-init or runc: the test app, the node proxy), or by the build and `dotnet test` (test hosts,
MSBuild). With TRX_DIR it also prints how many tests ran at once over the run (the tail of a run is where one slow
test alone decides the time) and the slowest tests.
"""
import collections
import glob
import re
import sys
import xml.etree.ElementTree as ET

NET = re.compile(r'^(\.NET |dotnet$|testhost|Kestrel|testapp$|skiff$)')
CONTAINER_PARENTS = {'docker-init', 'runc', 'runc:[0:PARENT]', 'runc:[1:CHILD]', 'runc:[2:INIT]', 'containerd-shim'}


def records(path):
    out = []
    for line in open(path):
        f = [x.strip() for x in line.split('|')]
        if len(f) < 11:
            continue
        out.append({'comm': f[0], 'cpu': (float(f[2]) + float(f[3])) / 100, 'sys': float(f[3]) / 100,
                    'wall': float(f[4]) / 100, 'pid': int(f[9]), 'ppid': int(f[10])})
    return out


def parents(recs):
    """The parent of each record: the next record (written later: a parent exits after its children) with its ppid."""
    later = {}
    parent = [None] * len(recs)
    for i in range(len(recs) - 1, -1, -1):
        parent[i] = later.get(recs[i]['ppid'])
        later[recs[i]['pid']] = i
    return parent


def category(i, recs, parent):
    r = recs[i]
    if not NET.match(r['comm']):
        return r['comm']
    p = parent[i]
    if p is None:
        return '.NET: no recorded parent (test hosts, build)'
    pc = recs[p]['comm']
    if pc in CONTAINER_PARENTS:
        return '.NET in containers (test app, proxy)'
    if NET.match(pc):
        # A child of a .NET process: skiff started by a test host, or an MSBuild node of `dotnet build`.
        return '.NET started by .NET (skiff from tests; MSBuild nodes)'
    return '.NET started by ' + pc


def main():
    recs = records(sys.argv[1])
    parent = parents(recs)
    total = sum(r['cpu'] for r in recs)
    by = collections.defaultdict(lambda: [0, 0.0, 0.0])
    for i, r in enumerate(recs):
        c = category(i, recs, parent)
        by[c][0] += 1
        by[c][1] += r['cpu']
        by[c][2] += r['sys']
    print(f'processes ended: {len(recs)}, their CPU: {total:.0f} s')
    print(f'{"CPU s":>8} {"share":>6} {"sys s":>7} {"count":>6}  program')
    for c, (n, cpu, sys_) in sorted(by.items(), key=lambda kv: -kv[1][1])[:25]:
        print(f'{cpu:8.1f} {100 * cpu / total:5.1f}% {sys_:7.1f} {n:6d}  {c}')
    if len(sys.argv) > 2:
        trx(sys.argv[2])


def trx(folder):
    ns = {'t': 'http://microsoft.com/schemas/VisualStudio/TeamTest/2010'}
    for path in sorted(glob.glob(folder + '/*.trx')):
        root = ET.parse(path).getroot()
        results = []
        for u in root.iterfind('.//t:UnitTestResult', ns):
            s, e = u.get('startTime'), u.get('endTime')
            if not s or not e:
                continue
            results.append((ts(s), ts(e), u.get('testName')))
        if len(results) < 2:
            continue
        t0 = min(r[0] for r in results)
        t1 = max(r[1] for r in results)
        busy = sum(r[1] - r[0] for r in results)
        print(f'\n{path.split("/")[-1]}: {len(results)} tests, {t1 - t0:.0f} s from first start to last end, '
              f'{busy:.0f} test-seconds ({busy / (t1 - t0):.1f} at once on average)')
        step = max(10, int((t1 - t0) / 30))
        line = []
        for t in range(int(t0), int(t1) + 1, step):
            line.append(str(sum(1 for r in results if r[0] <= t < r[1])))
        print(f'tests running, every {step} s: ' + ' '.join(line))
        for s, e, name in sorted(results, key=lambda r: r[0] - r[1])[:8]:
            print(f'{e - s:7.1f} s  starts at {s - t0:6.0f} s  {name[:110]}')


def ts(text):
    # 2026-12-04T16:51:16.1234567+00:00
    m = re.match(r'(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+(?:\.\d+)?)', text)
    y, mo, d, h, mi, s = m.groups()
    return ((int(d) * 24 + int(h)) * 60 + int(mi)) * 60 + float(s)


if __name__ == '__main__':
    main()
