#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# soak.sh: sessions at full, random level flips and fugue-logd SIGKILLs for N minutes; then every admitted event is checked exactly once.
#
#   tests/soak/soak.sh [--minutes N | --seconds N] [--sessions S] [--rate EPS] [--build DIR] [--keep]
#
# Each session is one `fugue-log emit --event all` process (two threads, level
# full, at most EPS events/s each, default 20000). Meanwhile a random session's
# level is set to a random level every 0.1-1 s, and fugue-logd is SIGKILLed
# and restarted every 1-4 s (mid-write, mid-rotation, mid-compression: files
# rotate at 256K). At the end one last drainer finishes every session and
# tests/check_jsonl.py checks each directory: valid lines, seq gapless over
# both files and all lz4 segments, no producer id twice, the number of
# producer lines equal to what emit says it admitted, and the dropped counts
# equal to what it says it dropped. Unique ids plus equal counts is exactly once.
# Exit 0 when every session passes. Scratch goes to a temp dir, removed unless --keep.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
secs=600 sessions=8 rate=20000 build=$src/build keep=0
while [ $# -gt 0 ]; do
  case $1 in
    --minutes) secs=$(($2 * 60)); shift ;;
    --seconds) secs=$2; shift ;;
    --sessions) sessions=$2; shift ;;
    --rate) rate=$2; shift ;;
    --build) build=$2; shift ;;
    --keep) keep=1 ;;
    -h|--help) sed -n '3,17p' "$0"; exit 0 ;;
    *) echo "soak.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
logd=$build/drainer/fugue-logd
cli=$build/drainer/fugue-log
for b in "$logd" "$cli"; do
  [ -x "$b" ] || { echo "soak.sh: $b is not built (scripts/test builds it; or pass --build DIR)" >&2; exit 2; }
done

work=${FL_TEST_TMP:-$(mktemp -d /tmp/fuguelog-soak.XXXXXX)}
mkdir -p "$work"
root=$work/root
rm -rf "$root" "$work/fugue-logd.log" # a reused FL_TEST_TMP must not carry old sessions
conf=$work/soak.conf
export FUGUE_SHM_PREFIX=${FUGUE_SHM_PREFIX:-soak$$-}
printf 'max_file_size = 256K\n' >"$conf"
pids=()
drainer=0

cleanup() {
  local p
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  [ "$drainer" -gt 0 ] && kill -9 "$drainer" 2>/dev/null || true
  rm -f /dev/shm/"$FUGUE_SHM_PREFIX"* 2>/dev/null || true
  if [ $keep = 0 ] && [ -z "${FL_TEST_TMP:-}" ]; then rm -rf "$work"; fi
}
trap cleanup EXIT

start_drainer() {
  "$logd" --foreground --root "$root" --config "$conf" 2>>"$work/fugue-logd.log" &
  drainer=$!
}

echo "soak: $sessions sessions at full for ${secs}s (<= $rate events/s each), scratch $work"
start_drainer
levels=(spawns signals prompts full)
for i in $(seq 1 "$sessions"); do
  "$cli" --root "$root" emit --event all --session-id "soak-$i" --level full --threads 2 \
    --duration "$secs" --rate "$rate" >"$work/emit-$i.json" 2>"$work/emit-$i.err" &
  pids+=($!)
done

end=$((SECONDS + secs))
kills=0 flips=0 next_kill=$((SECONDS + 1 + RANDOM % 4))
while [ $SECONDS -lt $end ]; do
  sleep "0.$((1 + RANDOM % 9))"
  i=$((1 + RANDOM % sessions))
  "$cli" level "soak-$i" "${levels[$((RANDOM % 4))]}" >/dev/null 2>&1 && flips=$((flips + 1)) || true
  if [ $SECONDS -ge $next_kill ]; then
    kill -9 "$drainer" 2>/dev/null || true
    wait "$drainer" 2>/dev/null || true
    kills=$((kills + 1))
    start_drainer
    next_kill=$((SECONDS + 1 + RANDOM % 4))
  fi
done

fail=0
for p in "${pids[@]}"; do wait "$p" || fail=1; done
pids=()
[ $fail = 0 ] || { echo "soak: an emit process failed; see $work/emit-*.err" >&2; keep=1; exit 1; }

# one last, clean drainer finishes every session
deadline=$((SECONDS + 300))
for i in $(seq 1 "$sessions"); do
  until grep -q '"state":"ended"' "$root/soak-$i/session.json" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || { echo "soak: soak-$i never ended; see $work" >&2; keep=1; exit 1; }
    sleep 0.2
  done
done
kill -TERM "$drainer"
wait "$drainer" || { echo "soak: fugue-logd did not stop cleanly" >&2; keep=1; exit 1; }
drainer=0

total=0
for i in $(seq 1 "$sessions"); do
  read -r admitted dropped < <(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["admitted"], j["dropped"])' "$work/emit-$i.json")
  if ! python3 "$src/tests/check_jsonl.py" --gapless --unique-ids --state ended \
      --expect "producer_lines=$admitted" --expect "drops=$dropped" "$root/soak-$i" >"$work/check-$i.json"; then
    echo "soak: soak-$i FAILED (admitted $admitted, dropped $dropped); see $work/check-$i.json" >&2
    fail=1
  fi
  total=$((total + admitted))
done
segs=$(find "$root" -name '*.jsonl.lz4' | wc -l)
echo "soak: $total events admitted over $sessions sessions, each found exactly once: $([ $fail = 0 ] && echo yes || echo NO);" \
  "$kills drainer kills, $flips level flips, $segs lz4 segments"
[ $fail = 0 ] || keep=1
exit $fail
