#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_jq.sh: Debian's jq (1.6 reads numbers as doubles) gets every 64-bit field of real drained lines exactly.
#
# A private drainer writes one session of every kind; for each line `fugue-log cat` prints, python
# parses the raw bytes with exact integers and compares: `jq -r .ts_ns` (and id, ref, the data
# durations) give the same decimal digits, and jq's re-encoding of the whole line holds the same
# values as the original (a number a double cannot hold would come back rounded).
set -euo pipefail

build=${FL_BUILD_DIR:?FL_BUILD_DIR is set by ctest}
tmp=${FL_TEST_TMP:?FL_TEST_TMP is set by ctest}
: "${FUGUE_SHM_PREFIX:?FUGUE_SHM_PREFIX is set by ctest}"
export FUGUE_SHM_PREFIX
jq=${FL_JQ:-$(command -v jq || true)}
[ -n "$jq" ] || { echo "jq not installed (Debian package jq): skipped"; exit 77; }
logd=$build/drainer/fugue-logd
flog=$build/drainer/fugue-log
[ -x "$logd" ] && [ -x "$flog" ] || { echo "fugue-logd/fugue-log not built in $build" >&2; exit 1; }

rm -rf "$tmp"
mkdir -p "$tmp/root"
root=$tmp/root
sid=jq-exact
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -f "/dev/shm/${FUGUE_SHM_PREFIX}$sid"
}
trap cleanup EXIT

printf 'retention = 0\nmax_session_size = 0\n' >"$tmp/logging.conf"
"$logd" --foreground --root "$root" --config "$tmp/logging.conf" 2>"$tmp/fugue-logd.log" &
pids+=($!)
"$flog" emit --event all --count 60 --level full --block --session-id "$sid" >"$tmp/emit.json"
i=0
until grep -q '"state":"ended"' "$root/$sid/session.json" 2>/dev/null; do
  i=$((i + 1))
  [ $i -le 600 ] || { echo "session did not end" >&2; cat "$tmp/fugue-logd.log" >&2; exit 1; }
  sleep 0.1
done
"$flog" --root "$root" cat "$sid" >"$tmp/lines.jsonl"

# jq's view of every line: the 64-bit fields as raw text, and the whole line re-encoded
"$jq" -r '[.ts_ns, .id, .ref, (.data.duration_ns // "-"), (.data.changes // "-"), (.data.count // "-")] | join(" ")' \
  "$tmp/lines.jsonl" >"$tmp/jq.fields"
"$jq" -c . "$tmp/lines.jsonl" >"$tmp/jq.lines"

python3 - "$tmp/lines.jsonl" "$tmp/jq.fields" "$tmp/jq.lines" <<'EOF'
import json, sys
raw = open(sys.argv[1], encoding="utf-8").read().splitlines()
fields = open(sys.argv[2], encoding="utf-8").read().splitlines()
again = open(sys.argv[3], encoding="utf-8").read().splitlines()
assert len(raw) == len(fields) == len(again), (len(raw), len(fields), len(again))
assert len(raw) >= 60, "only %d lines" % len(raw)
kinds, big = set(), 0
for n, (line, f, j) in enumerate(zip(raw, fields, again), 1):
    o = json.loads(line)  # python's ints are exact
    kinds.add(o["event"])
    d = o["data"]
    want = [o["ts_ns"], o["id"], o["ref"]] + [str(d.get(k, "-")) for k in ("duration_ns", "changes", "count")]
    assert all(isinstance(x, str) for x in want[:3]), "line %d: 64-bit fields are not strings: %s" % (n, line)
    assert f.split(" ") == want, "line %d: jq read %r, the line says %r" % (n, f, want)
    assert int(o["ts_ns"]) > 2**53, "line %d: ts_ns %s is not above 2^53; the test proves nothing" % (n, o["ts_ns"])
    big += 1
    assert json.loads(j) == o, "line %d: jq changed a value:\n  %s\n  %s" % (n, line, j)
assert {"exit", "completion", "transcript"} <= kinds, sorted(kinds)
print("%d lines, %d kinds: jq read every ts_ns (all above 2^53), id, ref and duration exactly" % (len(raw), len(kinds)))
EOF

# session.json: its 64-bit times are decimal strings too, exactly the lines' (python) and as jq reads them
"$jq" -r '[.start_ns, .end_ns, .files["system.jsonl"].first_ts_ns, .files["system.jsonl"].last_ts_ns] | join(" ")' \
  "$root/$sid/session.json" >"$tmp/jq.manifest"
python3 - "$root/$sid" "$tmp/jq.manifest" <<'EOF'
import json, sys
d = sys.argv[1]
m = json.load(open(d + "/session.json", encoding="utf-8"))
sysl = [json.loads(l) for l in open(d + "/system.jsonl", encoding="utf-8").read().splitlines()]
f = m["files"]["system.jsonl"]
want = [m["start_ns"], m["end_ns"], f["first_ts_ns"], f["last_ts_ns"]]
assert all(isinstance(x, str) and x.isdigit() and int(x) > 2**53 for x in want), "not decimal strings: %r" % want
assert [f["first_ts_ns"], f["last_ts_ns"]] == [sysl[0]["ts_ns"], sysl[-1]["ts_ns"]], (f, sysl[0], sysl[-1])
assert int(m["start_ns"]) <= int(f["first_ts_ns"]) <= int(f["last_ts_ns"]) <= int(m["end_ns"]), want
got = open(sys.argv[2], encoding="utf-8").read().split()
assert got == want, "jq read %r, session.json says %r" % (got, want)
print("session.json: start_ns, end_ns, first/last_ts_ns are exact decimal strings, equal to the lines'")
EOF
