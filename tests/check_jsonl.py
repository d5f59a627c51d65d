#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# check_jsonl.py: an independent checker of fuguelog session directories, using only Python's json module.
"""Validate the JSON lines of fuguelog session directories and check counts.

usage: check_jsonl.py [options] SESSION_DIR...

Every line of <dir>/system*.jsonl and <dir>/user*.jsonl (rotated .jsonl.lz4
segments included, through `lz4 -dc`) must be one JSON object with the schema
of docs/schema.md. Prints one JSON summary object per directory on stdout
(counts per file, class and event, drops, level changes, seq range) and every
problem on stderr. Exit 0 when everything holds, 1 when a check fails, 2 on
bad usage.

Checks, always: line syntax, key set and types (64-bit fields -- ts_ns, id,
ref and the data fields duration_ns, changes, count -- are decimal strings,
and every number in a line is at most 2^53, so a double holds it), ts matches ts_ns, class
matches the file, event/class/level match the kind table, session matches
the directory name, data fields per kind (text or text_b64 that decodes).
Optional: --gapless (seq is exactly 1..N over both classes), --unique-ids
(no producer id twice), --lane-order (in seq order, each lane's ids only
grow: one thread's events keep their emit order), --refs (every non-zero ref names an id of the
session), --state STATE (session.json), --expect KEY=N (exact count; KEY is
total, class:C, event:E, file:NAME, drops, level_changes, level_lines,
dropped_lines, abandoned, errors, producer_lines).
"""

import argparse
import base64
import datetime
import glob
import json
import os
import re
import subprocess
import sys

LEVELS = {"spawns": 1, "signals": 2, "prompts": 3, "full": 4}
# kind: (class, min level, data fields: name -> type); "text" fields may come as name_b64
KINDS = {
    "spawn": ("system", "spawns", {"pid": "uint", "ppid": "uint", "argv": "textlist", "cwd": "text"}),
    "exit": ("system", "spawns", {"status": "int", "signal": "int", "duration_ns": "u64", "abandoned": "bool"}),
    "action": ("user", "spawns", {"action": "text", "target": "text", "detail": "text"}),
    "command": ("user", "spawns", {"name": "text", "args": "textlist"}),
    "completion": ("system", "signals", {"task": "text", "outcome": "text", "duration_ns": "u64"}),
    "error": ("system", "signals", {"code": "int", "message": "text", "origin": "text"}),
    "state": ("system", "signals", {"from": "text", "to": "text", "reason": "text"}),
    "prompt": ("user", "prompts", {"text": "text"}),
    "transcript": ("system", "full", {"stream": "uint", "data": "text"}),
    "input": ("user", "full", {"data": "text"}),
    "level": ("system", "spawns", {"old": "levelornull", "new": "levelornull", "changes": "u64"}),
    "dropped": ("system", "spawns", {"count": "u64", "lane": "uint"}),
}
TOP = ["ts", "ts_ns", "seq", "session", "class", "event", "level", "pid", "tid", "id", "ref", "data"]
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}Z$")


def is_uint(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


U64_RE = re.compile(r"^(0|[1-9][0-9]{0,19})$")
DOUBLE_EXACT = 2**53


def is_u64(v):
    return isinstance(v, str) and U64_RE.match(v) is not None and int(v) < 2**64


def big_numbers(v, path="line"):
    """Yields where a number a double cannot hold exactly sits (jq 1.6 and JavaScript would round it)."""
    if isinstance(v, dict):
        for k, x in v.items():
            yield from big_numbers(x, path + "." + k)
    elif isinstance(v, list):
        for i, x in enumerate(v):
            yield from big_numbers(x, "%s[%d]" % (path, i))
    elif isinstance(v, int) and not isinstance(v, bool) and abs(v) > DOUBLE_EXACT:
        yield path
    elif isinstance(v, float):
        yield path


def ts_text(ns):
    sec, frac = divmod(ns, 1_000_000_000)
    d = datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=sec)
    return d.strftime("%Y-%m-%dT%H:%M:%S") + ".%09dZ" % frac


def b64ok(s):
    try:
        base64.b64decode(s, validate=True)
        return isinstance(s, str)
    except Exception:
        return False


def check_data(kind, data, err):
    fields = KINDS[kind][2]
    seen = set()
    for name, typ in fields.items():
        if typ in ("text", "textlist") and name + "_b64" in data:
            if name in data:
                err("both %s and %s_b64" % (name, name))
            v = data[name + "_b64"]
            seen.add(name + "_b64")
            if typ == "text" and not b64ok(v):
                err("%s_b64 is not base64" % name)
            if typ == "textlist" and not (isinstance(v, list) and all(b64ok(x) for x in v)):
                err("%s_b64 is not a list of base64 strings" % name)
            continue
        if name not in data:
            err("data.%s missing" % name)
            continue
        seen.add(name)
        v = data[name]
        ok = {
            "uint": is_uint,
            "u64": is_u64,
            "int": is_int,
            "bool": lambda x: isinstance(x, bool),
            "text": lambda x: isinstance(x, str),
            "textlist": lambda x: isinstance(x, list) and all(isinstance(y, str) for y in x),
            "levelornull": lambda x: x is None or x in LEVELS,
        }[typ](v)
        if not ok:
            err("data.%s has the wrong type: %r" % (name, v))
        elif typ == "u64":
            data[name] = int(v)
    extra = set(data) - seen
    if extra:
        err("data has unknown fields %s" % sorted(extra))


def read_lines(path):
    if path.endswith(".lz4"):
        out = subprocess.run(["lz4", "-dc", path], check=True, stdout=subprocess.PIPE).stdout
    else:
        with open(path, "rb") as f:
            out = f.read()
    if out and not out.endswith(b"\n"):
        yield None, "file does not end with a newline"
    for raw in out.split(b"\n")[:-1] if out else []:
        yield raw, None


def check_dir(d, args):
    problems = []
    sid = os.path.basename(os.path.normpath(d))
    s = {
        "session": sid,
        "total": 0,
        "files": {},
        "classes": {"system": 0, "user": 0},
        "events": {},
        "drops": 0,
        "level_changes": 0,
        "level_lines": 0,
        "dropped_lines": 0,
        "abandoned": 0,
        "errors": 0,
        "producer_lines": 0,
        "seq_min": None,
        "seq_max": None,
    }
    seqs, ids, refs, levels, order = [], {}, [], [], []
    files = sorted(glob.glob(os.path.join(d, "system*.jsonl*")) + glob.glob(os.path.join(d, "user*.jsonl*")))
    for path in files:
        fname = os.path.basename(path)
        fcls = "system" if fname.startswith("system") else "user"
        n = 0
        for lineno, (raw, perr) in enumerate(read_lines(path), 1):
            def err(msg, lineno=lineno):
                problems.append("%s:%d: %s" % (path, lineno, msg))

            if perr:
                err(perr)
                continue
            n += 1
            try:
                o = json.loads(raw.decode("utf-8"))
            except Exception as e:
                err("not JSON: %s" % e)
                continue
            if not isinstance(o, dict) or list(o.keys()) != TOP:
                err("keys are %s, want %s" % (list(o.keys()) if isinstance(o, dict) else type(o), TOP))
                continue
            ev = o["event"]
            if ev not in KINDS:
                err("unknown event %r" % ev)
                continue
            for where in big_numbers(o):
                err("%s is a number a double cannot hold exactly" % where)
            for k in ("seq", "pid", "tid"):
                if not is_uint(o[k]):
                    err("%s is not an unsigned integer" % k)
            for k in ("ts_ns", "id", "ref"):
                if not is_u64(o[k]):
                    err("%s is %r, not a decimal string of an unsigned 64-bit integer" % (k, o[k]))
                else:
                    o[k] = int(o[k])
            if not isinstance(o["ts"], str) or not TS_RE.match(o["ts"]):
                err("ts %r is not ISO 8601 UTC with 9 fraction digits" % o["ts"])
            elif is_uint(o["ts_ns"]) and ts_text(o["ts_ns"]) != o["ts"]:
                err("ts %s does not match ts_ns %d (%s)" % (o["ts"], o["ts_ns"], ts_text(o["ts_ns"])))
            if o["session"] != sid:
                err("session %r in directory %r" % (o["session"], sid))
            cls, lvl, _ = KINDS[ev]
            if o["class"] != cls or fcls != cls:
                err("event %s has class %r in %s; want %s" % (ev, o["class"], fname, cls))
            if o["level"] != lvl:
                err("event %s has level %r; want %s" % (ev, o["level"], lvl))
            if not isinstance(o["data"], dict):
                err("data is not an object")
                continue
            check_data(ev, o["data"], err)
            s["total"] += 1
            s["classes"][cls] += 1
            s["events"][ev] = s["events"].get(ev, 0) + 1
            seqs.append(o["seq"])
            order.append((o["seq"], ev))
            if ev == "dropped":
                s["dropped_lines"] += 1
                s["drops"] += o["data"].get("count", 0)
            elif ev == "level":
                levels.append((o["seq"], o["data"], path, lineno))
                s["level_lines"] += 1
                s["level_changes"] += o["data"].get("changes", 0)
            if ev == "exit" and o["data"].get("abandoned") is True:
                s["abandoned"] += 1
            if ev == "error" and o["id"] == 0:
                s["errors"] += 1
            if o["id"]:
                s["producer_lines"] += 1
                key = o["id"]
                if key in ids and args.unique_ids:
                    err("id %d also at seq %d" % (key, ids[key]))
                ids[key] = o["seq"]
            if o["ref"]:
                refs.append((path, lineno, o["ref"]))
        s["files"][fname] = n
    if seqs:
        s["seq_min"], s["seq_max"] = min(seqs), max(seqs)
    if args.gapless:
        if sorted(seqs) != list(range(1, len(seqs) + 1)):
            dup = len(seqs) - len(set(seqs))
            missing = len(set(range(1, max(seqs, default=0) + 1)) - set(seqs))
            problems.append("%s: seq is not 1..%d without gaps (%d duplicates, %d missing)" % (d, len(seqs), dup, missing))
    if args.lane_order:
        last = {}
        for key, seq in sorted(ids.items(), key=lambda kv: kv[1]):
            lane = key & 63
            if lane in last and key < last[lane][0]:
                problems.append("%s: lane %d id %d at seq %d comes after id %d at seq %d" % (d, lane, key, seq, last[lane][0], last[lane][1]))
            last[lane] = (key, seq)
    if args.refs:
        for path, lineno, ref in refs:
            if ref not in ids:
                problems.append("%s:%d: ref %d names no id of the session" % (path, lineno, ref))
    if args.state:
        try:
            with open(os.path.join(d, "session.json")) as f:
                m = json.load(f)
            if m.get("state") != args.state:
                problems.append("%s: session.json state %r, want %r" % (d, m.get("state"), args.state))
            s["state"] = m.get("state")
        except Exception as e:
            problems.append("%s: session.json unreadable: %s" % (d, e))
    for key, want in args.expect:
        if key.startswith("class:"):
            got = s["classes"].get(key[6:], 0)
        elif key.startswith("event:"):
            got = s["events"].get(key[6:], 0)
        elif key.startswith("file:"):
            got = s["files"].get(key[5:], 0)
        elif key in s and is_uint(s[key]):
            got = s[key]
        else:
            problems.append("unknown --expect key %r" % key)
            continue
        if got != want:
            problems.append("%s: %s is %d, want %d" % (d, key, got, want))
    if args.level_chain:
        want = args.level_chain
        for seq, data, path, lineno in sorted(levels, key=lambda t: t[0]):
            if data.get("old") != want or data.get("new") is None:
                problems.append("%s:%d: level line at seq %d has old %r new %r; want old %r" %
                                (path, lineno, seq, data.get("old"), data.get("new"), want))
            want = data.get("new")
    if args.sequence:
        got = []
        for _, ev in sorted(order):
            if not (ev == "level" and got and got[-1] == "level"):
                got.append(ev)
        if got != args.sequence.split(","):
            problems.append("%s: events in seq order are %s, want %s" % (d, ",".join(got), args.sequence))
    return s, problems


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dirs", nargs="+", metavar="SESSION_DIR")
    ap.add_argument("--gapless", action="store_true")
    ap.add_argument("--unique-ids", action="store_true")
    ap.add_argument("--refs", action="store_true")
    ap.add_argument("--lane-order", action="store_true")
    ap.add_argument("--level-chain", metavar="LEVEL",
                    help="level lines in seq order: the first old is LEVEL, each old is the previous new, none null")
    ap.add_argument("--sequence", metavar="EV,EV,...",
                    help="the events in seq order are exactly these (a run of level lines counts as one)")
    ap.add_argument("--state")
    ap.add_argument("--expect", action="append", default=[], metavar="KEY=N")
    args = ap.parse_args()
    exp = []
    for e in args.expect:
        k, sep, v = e.partition("=")
        if not sep or not v.isdigit():
            ap.error("--expect takes KEY=N, not %r" % e)
        exp.append((k, int(v)))
    args.expect = exp
    bad = 0
    for d in args.dirs:
        s, problems = check_dir(d, args)
        print(json.dumps(s, sort_keys=True))
        for p in problems[:50]:
            print("check_jsonl: " + p, file=sys.stderr)
        if len(problems) > 50:
            print("check_jsonl: ... and %d more" % (len(problems) - 50), file=sys.stderr)
        bad += bool(problems)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
