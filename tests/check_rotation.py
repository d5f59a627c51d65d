#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# check_rotation.py: checks a rotated session directory — archives, segments, active files and session.json agree, every line once.
"""Usage: check_rotation.py SESSION_DIR [--admitted N] [--min-segments K] [--settled] [--partial] [--cat FILE]

Reads every segment of both classes (lz4 archives through `lz4 -dc`, each one
first tested with `lz4 -t`) and the active files, then checks:
  - no segment exists both plain and archived, no *.tmp is left (--settled: the
    drainer stopped cleanly, so every closed segment must be archived too);
  - every line is JSON; seq is unique and gapless from 1 across both classes;
  - producer events (id > 0) are unique; with --admitted, there are exactly N;
  - each segment holds one class, its lines in seq order, and is not larger
    than a line past max (not checked: max is the drainer's);
  - session.json lists every segment on disk with the right class, lines, seq
    range and plain size, and the compressed size of archived ones;
  - --partial: retention removed old segments, so seq need not start at 1 nor
    be gapless (it must still be unique);
  - --cat FILE: the output of `fugue-log cat` equals all lines sorted by seq.
Prints a JSON summary; exits 1 with the reasons on stderr when a check fails.
"""
import json
import os
import re
import subprocess
import sys

SEG = re.compile(r"^([a-z]+)\.(\d{6,})\.jsonl(\.lz4)?(\.tmp)?$")


def main():
    args = sys.argv[1:]
    d = args.pop(0)
    admitted = min_segments = None
    settled = partial = False
    cat_file = None
    while args:
        a = args.pop(0)
        if a == "--admitted":
            admitted = int(args.pop(0))
        elif a == "--min-segments":
            min_segments = int(args.pop(0))
        elif a == "--settled":
            settled = True
        elif a == "--partial":
            partial = True
        elif a == "--cat":
            cat_file = args.pop(0)
        else:
            sys.exit("unknown argument " + a)
    errs = []
    segs = {}  # (cls, n) -> {"plain": bool, "lz4": bool}
    for name in os.listdir(d):
        m = SEG.match(name)
        if not m:
            continue
        cls, n, lz, tmp = m.group(1), int(m.group(2)), bool(m.group(3)), bool(m.group(4))
        if tmp:
            errs.append("temp archive left: " + name)
            continue
        e = segs.setdefault((cls, n), {"plain": False, "lz4": False})
        e["lz4" if lz else "plain"] = True
    nums = {}
    for (cls, n), e in segs.items():
        if n in nums:
            errs.append("segment number %d used by %s and %s" % (n, nums[n], cls))
        nums[n] = cls
        if e["plain"] and e["lz4"]:
            errs.append("%s.%06d exists plain and archived" % (cls, n))
        if settled and e["plain"]:
            errs.append("%s.%06d.jsonl was never archived" % (cls, n))

    lines = []  # (seq, line)
    per_seg = {}
    for (cls, n) in sorted(segs, key=lambda k: k[1]):
        e = segs[(cls, n)]
        base = os.path.join(d, "%s.%06d.jsonl" % (cls, n))
        if e["plain"]:
            data = open(base, "rb").read()
        else:
            if subprocess.run(["lz4", "-qt", base + ".lz4"]).returncode != 0:
                errs.append("lz4 -t refuses " + base + ".lz4")
                continue
            data = subprocess.run(["lz4", "-qdc", base + ".lz4"], capture_output=True, check=True).stdout
        seqs = []
        for raw in data.decode("utf-8").splitlines():
            o = json.loads(raw)
            if o["class"] != cls:
                errs.append("%s line in %s segment %d" % (o["class"], cls, n))
            seqs.append(o["seq"])
            lines.append((o["seq"], raw, o))
        if seqs != sorted(seqs):
            errs.append("segment %d out of seq order" % n)
        tss = [int(o["ts_ns"]) for s_, _, o in lines[len(lines) - len(seqs):]]
        per_seg[(cls, n)] = {"min_ts": min(tss) if tss else 0, "max_ts": max(tss) if tss else 0,
                             "lines": len(seqs), "first_seq": seqs[0] if seqs else 0,
                             "last_seq": seqs[-1] if seqs else 0, "size": len(data),
                             "compressed": None if e["plain"] else os.path.getsize(base + ".lz4")}
    for cls in ("system", "user"):
        p = os.path.join(d, cls + ".jsonl")
        if os.path.exists(p):
            for raw in open(p, encoding="utf-8").read().splitlines():
                o = json.loads(raw)
                lines.append((o["seq"], raw, o))

    seqs = sorted(s for s, _, _ in lines)
    if partial and len(seqs) != len(set(seqs)):
        errs.append("%d seq values repeated" % (len(seqs) - len(set(seqs))))
    if not partial and seqs != list(range(1, len(seqs) + 1)):
        dup = len(seqs) - len(set(seqs))
        errs.append("seq not unique and gapless from 1: %d lines, %d duplicates, max %s"
                    % (len(seqs), dup, seqs[-1] if seqs else None))
    ids = [int(o["id"]) for _, _, o in lines if int(o.get("id", 0))]
    if len(ids) != len(set(ids)):
        errs.append("%d producer events written more than once" % (len(ids) - len(set(ids))))
    if admitted is not None and len(ids) != admitted:
        errs.append("%d producer events on disk, %d admitted" % (len(ids), admitted))
    if min_segments is not None and len(segs) < min_segments:
        errs.append("only %d segments, wanted at least %d" % (len(segs), min_segments))

    man = json.load(open(os.path.join(d, "session.json")))

    def ns(o, k, where):
        """A 64-bit time of session.json: a decimal string (exact in any JSON parser), or null."""
        v = o.get(k)
        if v is None:
            return None
        if not isinstance(v, str) or not v.isdigit():
            errs.append("session.json %s %s=%r is not a decimal string" % (where, k, v))
            return None
        return int(v)

    for k in ("start_ns", "end_ns"):
        ns(man, k, "")
    for cls in ("system", "user"):
        f = man.get("files", {}).get(cls + ".jsonl", {})
        first, last = ns(f, "first_ts_ns", cls), ns(f, "last_ts_ns", cls)
        p = os.path.join(d, cls + ".jsonl")
        if man.get("state") == "live" or not os.path.exists(p):
            continue
        on_disk = [json.loads(raw) for raw in open(p, encoding="utf-8").read().splitlines()]
        if on_disk and (first, last) != (int(on_disk[0]["ts_ns"]), int(on_disk[-1]["ts_ns"])):
            errs.append("session.json %s.jsonl first/last ts_ns %s/%s, the file says %s/%s" % (
                cls, first, last, on_disk[0]["ts_ns"], on_disk[-1]["ts_ns"]))
    listed = {(s["class"], s["n"]): s for s in man.get("segments", [])}
    for k, got in per_seg.items():
        s = listed.get(k)
        if not s:
            errs.append("session.json does not list %s.%06d" % k)
            continue
        for f in ("lines", "first_seq", "last_seq", "size"):
            if s[f] != got[f]:
                errs.append("session.json %s.%06d %s=%s, the file says %s" % (k[0], k[1], f, s[f], got[f]))
        if s["state"] == "archived" and s["compressed"] != got["compressed"]:
            errs.append("session.json %s.%06d compressed=%s, the file has %s" % (k[0], k[1], s["compressed"],
                                                                              got["compressed"]))
        where = "%s.%06d" % k
        t = {f: ns(s, f, where) for f in ("first_ts_ns", "last_ts_ns", "min_ts_ns", "max_ts_ns")}
        if None in t.values():
            errs.append("session.json %s lacks a time" % where)
            continue
        if not (t["min_ts_ns"] <= min(t["first_ts_ns"], t["last_ts_ns"]) and
                max(t["first_ts_ns"], t["last_ts_ns"]) <= t["max_ts_ns"]):
            errs.append("session.json %s time range does not hold its first and last line" % where)
        if (got["min_ts"], got["max_ts"]) != (t["min_ts_ns"], t["max_ts_ns"]):
            errs.append("session.json %s min/max ts %s..%s, the lines say %s..%s" % (
                where, t["min_ts_ns"], t["max_ts_ns"], got["min_ts"], got["max_ts"]))
    for k in listed:
        if k not in per_seg:
            errs.append("session.json lists %s.%06d, which is not on disk" % k)

    if cat_file is not None:
        want = [raw for _, raw, _ in sorted(lines, key=lambda t: t[0])]
        got = open(cat_file, encoding="utf-8").read().splitlines()
        if got != want:
            errs.append("fugue-log cat printed %d lines, %d expected (or in another order)" % (len(got), len(want)))

    print(json.dumps({"segments": len(segs), "archived": sum(1 for e in segs.values() if e["lz4"]),
                      "lines": len(lines), "producer_events": len(ids), "listed": len(listed)}))
    for e in errs[:20]:
        print("check_rotation: " + e, file=sys.stderr)
    sys.exit(1 if errs else 0)


if __name__ == "__main__":
    main()
