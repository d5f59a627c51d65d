#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# check_json.py: runs `fugue-bench --quick --json` and checks that every figure key is there and well formed (never a timing).
import json
import math
import subprocess
import sys

REQUIRED = ["emit.filtered", "emit.small", "emit.transcript4k", "emit.small.t2", "emit.small.t4",
            "ratio.spawns", "ratio.full", "ratio.full.zerocopy", "ratio.full.floor", "ratio.zerocopy.floor",
            "ratio.full.vs_floor", "ratio.full.zerocopy.vs_floor", "e2e.small", "e2e.transcript4k", "lttng.small",
            "lttng.transcript4k", "fprintf.small", "mem.drainer_rss", "compress.lz4", "mem.shm_per_session",
            "limit.emit_core", "limit.ring_batched", "limit.pagecache", "limit.pagecache.reported",
            "emit.small.vs_limit", "emit.small.vs_ring", "e2e.small.vs_pagecache", "e2e.transcript4k.vs_pagecache", "mem.drainer_anon.s50",
            "wake.latency", "burst.after_idle", "start.steady", "burst.fits_lane", "run.overhead.cat.wall",
            "run.overhead.cat.cpu", "run.overhead.seq.wall", "run.overhead.seq.cpu", "script1.overhead.cat.wall",
            "script1.overhead.seq.wall"]
# measured by the library and the benchmark alone: never allowed to be absent
ALWAYS = ["emit.filtered", "emit.small", "emit.transcript4k", "emit.small.t2", "emit.small.t4",
          "ratio.spawns", "ratio.full", "ratio.full.zerocopy", "ratio.full.floor", "ratio.zerocopy.floor",
          "ratio.full.vs_floor", "ratio.full.zerocopy.vs_floor", "fprintf.small", "compress.lz4", "mem.shm_per_session",
          "limit.emit_core", "limit.ring_batched", "limit.pagecache", "limit.pagecache.reported", "emit.small.vs_limit",
          "emit.small.vs_ring"]
# issue 15's targets, recorded in the JSON beside each figure (absent figures excepted)
TARGETS = {"emit.small": "<= 22", "emit.small.percall": "<= 150", "lttng.speedup.small": ">= 5",
           "e2e.small.drainer_cpu": "<= 200", "e2e.transcript4k": ">= 1500", "mem.drainer_anon.s50": "<= 32",
           "emit.small.vs_limit": "<= 1.5", "emit.small.vs_ring": "<= 0.85", "e2e.small.vs_pagecache": ">= 0.58",
           "e2e.transcript4k.vs_pagecache": ">= 0.65", "run.overhead.cat.wall": "<= 1.05",
           "run.overhead.cat.cpu": "<= 1.05", "run.overhead.seq.wall": "<= 1.05", "run.overhead.seq.cpu": "<= 1.05"}
STATS = ["median", "p99", "p999", "min", "max", "runs"]


def main():
    bench = sys.argv[1]
    p = subprocess.run([bench, "--quick", "--json"] + sys.argv[2:], stdout=subprocess.PIPE, timeout=540)
    if p.returncode != 0:
        print(f"fugue-bench exited {p.returncode}", file=sys.stderr)
        return 1
    doc = json.loads(p.stdout)
    bad = []
    m = doc.get("machine", {})
    for k in ("cpu", "cores", "kernel"):
        if k not in m:
            bad.append(f"machine.{k} missing")
    if "commit" not in doc.get("meta", {}):
        bad.append("meta.commit missing")
    for key in REQUIRED:
        fig = doc.get(key)
        if not isinstance(fig, dict) or "unit" not in fig:
            bad.append(f"{key}: missing")
            continue
        if fig.get("absent"):
            if key in ALWAYS:
                bad.append(f"{key}: absent ({fig.get('reason')}) but needs nothing outside the library")
            elif not fig.get("reason"):
                bad.append(f"{key}: absent without a reason")
            continue
        for s in STATS:
            v = fig.get(s)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                bad.append(f"{key}.{s}: {v!r} is not a finite number")
        if not bad and not (fig["min"] <= fig["median"] <= fig["p99"] <= fig["p999"] <= fig["max"]):
            bad.append(f"{key}: statistics out of order {fig}")
        if isinstance(fig.get("runs"), int) and fig["runs"] < 1:
            bad.append(f"{key}: no runs")
    for key, want in TARGETS.items():
        fig = doc.get(key)
        if isinstance(fig, dict) and not fig.get("absent") and (fig.get("target") != want or "met" not in fig):
            bad.append(f"{key}: target {fig.get('target')!r}, met {fig.get('met')!r}; expected target {want!r}")
    # loss is never a timing: lossless scenarios must report zero drops
    for key, fig in doc.items():
        if key.endswith("drops") and isinstance(fig, dict) and not fig.get("absent") and fig.get("max") != 0:
            bad.append(f"{key}: {fig.get('max')} events lost in a lossless scenario")
    for b in bad:
        print(b, file=sys.stderr)
    print(f"{len(doc) - 2} figures, {len(bad)} problems")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
