#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_rust.sh: the Rust binding (producer/rust) — cargo test --offline against this build's libfuguelog.a, the
# Rust structs checked against a C probe of fuguelog.h, then the pane example logging through the tracing
# Layer into a real fugue-logd, with a level change from outside (fugue-log level) partway; exact lines checked.
set -euo pipefail

build=${FL_BUILD_DIR:?FL_BUILD_DIR is set by ctest}
src=${FL_SOURCE_DIR:?FL_SOURCE_DIR is set by ctest}
tmp=${FL_TEST_TMP:?FL_TEST_TMP is set by ctest}
: "${FUGUE_SHM_PREFIX:?FUGUE_SHM_PREFIX is set by ctest}"
export FUGUE_SHM_PREFIX

if [ -n "${FL_SANITIZE:-}" ]; then
  # a sanitized libfuguelog.a needs the sanitizer runtime in the Rust link too; the plain build covers the binding
  echo "sanitized build ($FL_SANITIZE): the Rust binding is tested in the plain build only: skipped"
  exit 77
fi
command -v cargo >/dev/null ||
  { echo "cargo not found (scripts/deps.sh installs Debian's cargo when there is none): skipped"; exit 77; }
ls -d /usr/share/cargo/registry/tracing-0.1.* /usr/share/cargo/registry/tracing-subscriber-0.3.* >/dev/null 2>&1 ||
  { echo "Debian's crates missing (librust-tracing-dev, librust-tracing-subscriber-dev; scripts/deps.sh): skipped"; exit 77; }

rm -rf "$tmp"
mkdir -p "$tmp/root"
export CARGO_TARGET_DIR=$build/rust-target
export FUGUELOG_BUILD_DIR=$build/producer
# cargo reads .cargo/config.toml (the source replacement) from the directory it runs in
cd "$src/producer/rust"
# a lock file another cargo wrote (rustup's 1.95 writes format v4, Debian's 1.65 reads up to v3) is regenerated
rm -f Cargo.lock

# the C compiler's view of the header, for fuguelog-sys/tests/layout.rs
cat >"$tmp/probe.c" <<'EOF'
#include <fuguelog.h>
#include <stdio.h>
#define P(k, v) printf("%s %llu\n", k, (unsigned long long)(v))
#define O(t, p, f) P(p "." #f, offsetof(struct t, f))
int main(void)
{
	P("sizeof.fl_session_opts", sizeof(struct fl_session_opts));
	O(fl_session_opts, "opts", id); O(fl_session_opts, "opts", level); O(fl_session_opts, "opts", lanes);
	O(fl_session_opts, "opts", lane_size); O(fl_session_opts, "opts", full_policy);
	O(fl_session_opts, "opts", block_timeout_ns); O(fl_session_opts, "opts", shm_prefix);
	O(fl_session_opts, "opts", config_path); O(fl_session_opts, "opts", clock);
	O(fl_session_opts, "opts", attach_timeout_ns); O(fl_session_opts, "opts", reserved);
	P("sizeof.opts.reserved", sizeof(((struct fl_session_opts *)0)->reserved));
	P("sizeof.fl_stats", sizeof(struct fl_stats));
	O(fl_stats, "stats", emitted); O(fl_stats, "stats", admitted); O(fl_stats, "stats", dropped);
	O(fl_stats, "stats", lanes); O(fl_stats, "stats", lane_size); O(fl_stats, "stats", clock);
	O(fl_stats, "stats", attached); O(fl_stats, "stats", reserved);
	P("sizeof.fl__session_head", sizeof(struct fl__session_head));
	O(fl__session_head, "head", level_word);
	P("FUGUELOG_VERSION_NUMBER", FUGUELOG_VERSION_NUMBER);
	P("FL_LEVEL_SPAWNS", FL_LEVEL_SPAWNS); P("FL_LEVEL_SIGNALS", FL_LEVEL_SIGNALS);
	P("FL_LEVEL_PROMPTS", FL_LEVEL_PROMPTS); P("FL_LEVEL_FULL", FL_LEVEL_FULL);
	P("FL_KIND_SPAWN", FL_KIND_SPAWN); P("FL_KIND_INPUT", FL_KIND_INPUT); P("FL_KIND_DROPPED", FL_KIND_DROPPED);
	P("FL_KIND_MAX", FL_KIND_MAX); P("FL_CLASS_USER", FL_CLASS_USER); P("FL_FULL_BLOCK", FL_FULL_BLOCK);
	P("FL_CLOCK_REALTIME", FL_CLOCK_REALTIME); P("FL_CLOCK_TSC", FL_CLOCK_TSC);
	return 0;
}
EOF
"${FL_CC:-cc}" -std=c11 -I"$src/producer" -o "$tmp/probe" "$tmp/probe.c"
"$tmp/probe" >"$tmp/layout.txt"
export FUGUELOG_LAYOUT=$tmp/layout.txt

cargo test --offline

# the pane example against a private drainer
logd=$build/drainer/fugue-logd
flog=$build/drainer/fugue-log
sid=rust-pane
: >"$tmp/logging.conf"
"$logd" --foreground --root "$tmp/root" --config "$tmp/logging.conf" 2>"$tmp/fugue-logd.log" &
logd_pid=$!
cleanup() {
  kill "$logd_pid" 2>/dev/null || true
  wait "$logd_pid" 2>/dev/null || true
  rm -f "/dev/shm/${FUGUE_SHM_PREFIX}"*
}
trap cleanup EXIT
cargo run --offline --quiet --example pane -- \
  --session-id "$sid" --level prompts --fugue-log "$flog" | tee "$tmp/pane.out"
grep -qx "fugue-log level: prompts -> full" "$tmp/pane.out"
i=0
until grep -qs '"state":"ended"' "$tmp/root/$sid/session.json"; do
  i=$((i + 1))
  [ $i -le 300 ] || { echo "session $sid did not end in the drainer" >&2; cat "$tmp/fugue-logd.log" >&2; exit 1; }
  sleep 0.1
done
"$flog" --root "$tmp/root" cat "$sid" >"$tmp/cat.jsonl"

python3 - "$tmp/cat.jsonl" "$sid" <<'EOF'
import json, sys
path, sid = sys.argv[1:]
lines = [json.loads(l) for l in open(path, encoding='utf-8')]
assert [o['seq'] for o in lines] == list(range(1, len(lines) + 1)), 'seq not 1..N'
assert all(o['session'] == sid for o in lines)
def short(o):
    d = dict(o['data'])
    for k in ('duration_ns', 'pid', 'ppid'):
        if k in d:
            # duration_ns is 64-bit: a decimal string (docs/schema.md, schema 2)
            want = str if k == 'duration_ns' else int
            assert isinstance(d[k], want) and int(d[k]) > 0, (k, o)
            d[k] = '>0'
    return [o['class'], o['event'], d]
# where the drainer puts its `level` line depends on when it first looked at this short session
# (old is null when that was after the change); that it saw the one change to full is what counts here
levels = [o['data'] for o in lines if o['event'] == 'level']
assert len(levels) == 1 and levels[0]['new'] == 'full' and levels[0]['old'] in (None, 'prompts'), levels
got = [short(o) for o in lines if o['event'] != 'level']
want = [
    ['user', 'action', {'action': 'attach', 'target': sid, 'detail': 'pane opened'}],
    ['user', 'prompt', {'text': 'list the files'}],
    ['system', 'spawn', {'pid': '>0', 'ppid': '>0', 'argv': ['sh', '-c', "printf", "'one\\ntwo\\n'"], 'cwd': '/'}],
    ['system', 'exit', {'status': 0, 'signal': 0, 'duration_ns': '>0', 'abandoned': False}],
    ['system', 'completion', {'task': 'turn 1', 'outcome': 'ok', 'duration_ns': '>0'}],
    ['user', 'prompt', {'text': 'count to three'}],
    ['system', 'spawn', {'pid': '>0', 'ppid': '>0', 'argv': ['sh', '-c', "printf", "'three\\nfour\\n';", 'exit', '3'], 'cwd': '/'}],
    ['system', 'transcript', {'stream': 1, 'data': 'three\n'}],
    ['system', 'transcript', {'stream': 1, 'data': 'four\n'}],
    ['system', 'exit', {'status': 3, 'signal': 0, 'duration_ns': '>0', 'abandoned': False}],
    ['system', 'error', {'code': 0, 'message': 'warning: turn 2 ended with a failing command status=3', 'origin': 'pane'}],
    ['system', 'completion', {'task': 'turn 2', 'outcome': 'failed', 'duration_ns': '>0'}],
    ['user', 'action', {'action': 'detach', 'target': sid, 'detail': 'pane closed'}],
]
ok = got == want
if not ok:
    for i in range(max(len(got), len(want))):
        g = got[i] if i < len(got) else None
        w = want[i] if i < len(want) else None
        print(('   ' if g == w else '!! ') + json.dumps(g), '' if g == w else '\n   want ' + json.dumps(w))
sys.exit(0 if ok else 1)
EOF
echo "rust binding: cargo tests pass, pane session on disk line for line"
