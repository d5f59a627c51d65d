#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_rsyslog.sh: two private rsyslogd instances ship a live session's active files (imfile -> TCP -> omfile)
# through many rotations; every line must arrive exactly once, in order, byte for byte.
#
# Sender: imfile (inotify) on <root>/*/system.jsonl and <root>/*/user.jsonl, the same globs as
# contrib/shipping/rsyslog/fuguelog-imfile.conf, forwarded with omfwd over TCP (octet-counted
# framing, RFC 5424 with the class in APP-NAME) to 127.0.0.1:<free port>.
# Receiver: imtcp on that port, omfile writes "%msg%\n" to <out>/<app-name>.jsonl.
# Nothing of the system rsyslog is used: no imuxsock, no imklog, private config, pid file, work
# directory and port.
set -euo pipefail

build=${FL_BUILD_DIR:?FL_BUILD_DIR is set by ctest}
tmp=${FL_TEST_TMP:?FL_TEST_TMP is set by ctest}
: "${FUGUE_SHM_PREFIX:?FUGUE_SHM_PREFIX is set by ctest}"
export FUGUE_SHM_PREFIX

rsyslogd=${FL_RSYSLOGD:-$(command -v rsyslogd || echo /usr/sbin/rsyslogd)}
if [ -z "$rsyslogd" ] || [ ! -x "$rsyslogd" ]; then
  echo "rsyslogd not installed (Debian package rsyslog): skipped"
  exit 77
fi
command -v python3 >/dev/null || { echo "python3 missing: skipped"; exit 77; }

logd=$build/drainer/fugue-logd
flog=$build/drainer/fugue-log
[ -x "$logd" ] && [ -x "$flog" ] || { echo "fugue-logd/fugue-log not built in $build" >&2; exit 1; }

rm -rf "$tmp"
mkdir -p "$tmp"/{root,out,send.work,recv.work}
root=$tmp/root
out=$tmp/out
sid=rsyslog-ship
sid2=rsyslog-long

pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -f "/dev/shm/${FUGUE_SHM_PREFIX}$sid" "/dev/shm/${FUGUE_SHM_PREFIX}$sid2"
}
trap cleanup EXIT

# wait_for SECONDS CMD...: bounded polling until CMD succeeds (no timing assertion: only a limit)
wait_for() {
  local limit=$1 i=0; shift
  while ! "$@"; do
    i=$((i + 1))
    [ $i -le $((limit * 10)) ] || return 1
    sleep 0.1
  done
}
alive() { kill -0 "$1" 2>/dev/null; }

# A free loopback port: bind port 0, read it back, release it. Another process could take it before
# the receiver binds; the receiver then fails to listen and the wait below says so.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
listening() { python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1])),0.5).close()' "$port" 2>/dev/null; }

# Receiver: raw message bytes, nothing escaped; rsyslog's own messages go to a side file.
cat >"$tmp/recv.conf" <<EOF
global(workDirectory="$tmp/recv.work" maxMessageSize="256k" net.enableDNS="off"
       parser.escapeControlCharactersOnReceive="off" parser.escape8BitCharactersOnReceive="off")
module(load="imtcp")
template(name="raw" type="string" string="%msg%\n")
template(name="byclass" type="string" string="$out/%app-name%.jsonl")
ruleset(name="in") {
  action(type="omfile" dynaFile="byclass" template="raw" flushOnTXEnd="on" asyncWriting="off")
}
input(type="imtcp" address="127.0.0.1" port="$port" ruleset="in")
action(type="omfile" file="$tmp/recv.internal.log")
EOF

# Sender: the tested recipe, with the root and the port filled in.
sed -e "s|@ROOT@|$root|g" -e "s|@TARGET@|127.0.0.1|g" -e "s|@PORT@|$port|g" \
    -e "s|@WORKDIR@|$tmp/send.work|g" \
    "${FL_SOURCE_DIR:?}/contrib/shipping/rsyslog/fuguelog-imfile.conf" >"$tmp/send.conf"
# Test harness only: rsyslog's own messages to a side file, and a probe input whose line reaching the
# receiver proves imfile watches and the TCP path is up before the producer starts.
cat >>"$tmp/send.conf" <<EOF
action(type="omfile" file="$tmp/send.internal.log")
input(type="imfile" file="$tmp/probe.log" tag="fl-probe" ruleset="fuguelog_ship")
EOF

"$rsyslogd" -N1 -f "$tmp/recv.conf" >"$tmp/recv.check" 2>&1 || { cat "$tmp/recv.check" >&2; exit 1; }
"$rsyslogd" -N1 -f "$tmp/send.conf" >"$tmp/send.check" 2>&1 || { cat "$tmp/send.check" >&2; exit 1; }

"$rsyslogd" -n -f "$tmp/recv.conf" -i "$tmp/recv.pid" >"$tmp/recv.stderr" 2>&1 &
recv=$!
pids+=("$recv")
if ! wait_for 20 listening; then
  echo "receiver rsyslogd did not listen on 127.0.0.1:$port" >&2
  cat "$tmp/recv.stderr" "$tmp/recv.internal.log" >&2 2>/dev/null || true
  exit 1
fi

# A private drainer that rotates every 16K.
printf 'max_file_size = 16K\nretention = 0\nmax_session_size = 0\n' >"$tmp/logging.conf"
"$logd" --foreground --root "$root" --config "$tmp/logging.conf" 2>"$tmp/fugue-logd.log" &
pids+=($!)

# The sender starts before the session exists: imfile must pick the files up from the glob.
"$rsyslogd" -n -f "$tmp/send.conf" -i "$tmp/send.pid" >"$tmp/send.stderr" 2>&1 &
send=$!
pids+=("$send")
probed() { grep -q '^probe$' "$out/fl-probe.jsonl" 2>/dev/null; }
probe_once() { alive "$send" && { echo probe >>"$tmp/probe.log"; wait_for 2 probed; }; }
probe() { local i; for i in $(seq 15); do probe_once && return 0; alive "$send" || return 1; done; return 1; }
if ! probe; then
  echo "the sender rsyslogd does not forward (probe line never arrived)" >&2
  cat "$tmp/send.stderr" "$tmp/send.internal.log" >&2 2>/dev/null || true
  exit 1
fi

# The producer, at full: every kind, with UTF-8 text, quotes, backslashes and a tab (escaped in
# JSON), at a steady rate, then a burst of 8 transcript lines as fast as it can.
text=$'h\xc3\xa9llo \xe2\x9c\x93 "q" \\ \t end'
# A second session at the same time writes 10K transcript lines (above rsyslog's default 8k
# maxMessageSize), so a segment holds one or two lines. Rates keep each segment alive for a while:
# a tailer can only ship a file it opened before the file was renamed (docs/shipping.md).
"$flog" emit --event transcript --count 12 --rate 3 --size 10K --text "$text" --level full \
  --block --session-id "$sid2" >"$tmp/emit2.json" &
emit2=$!
"$flog" emit --event all --count "${FL_RSYSLOG_COUNT:-250}" --rate "${FL_RSYSLOG_RATE:-40}" --size 300 \
  --text "$text" --level full --block --session-id "$sid" --burst 8 >"$tmp/emit.json"
wait "$emit2"
cat "$tmp/emit.json" "$tmp/emit2.json"

ended() {
  grep -q '"state":"ended"' "$root/$sid/session.json" 2>/dev/null &&
    grep -q '"state":"ended"' "$root/$sid2/session.json" 2>/dev/null
}
wait_for 60 ended || { echo "session did not end" >&2; exit 1; }

# What the shipper must deliver: each class of each session, as fugue-log cat reads it back from
# the archives and the active files. The receiver's file of a class holds both sessions, each in
# its own order; the comparison splits it by session.
for s in "$sid" "$sid2"; do
  for c in system user; do "$flog" --root "$root" cat "$s" --class $c >"$tmp/want.$s.$c.jsonl"; done
done
cat "$tmp/want.$sid.system.jsonl" "$tmp/want.$sid2.system.jsonl" >"$tmp/want.system.jsonl"
cat "$tmp/want.$sid.user.jsonl" "$tmp/want.$sid2.user.jsonl" >"$tmp/want.user.jsonl"
want_sys=$(wc -l <"$tmp/want.system.jsonl")
want_usr=$(wc -l <"$tmp/want.user.jsonl")
echo "expected: system $want_sys lines, user $want_usr lines"

arrived() {
  [ "$(cat "$out/fl-system.jsonl" 2>/dev/null | wc -l)" -ge "$want_sys" ] &&
    [ "$(cat "$out/fl-user.jsonl" 2>/dev/null | wc -l)" -ge "$want_usr" ]
}
wait_for 90 arrived || echo "not everything arrived in time; comparing what did" >&2

# Stop the sender first (it finishes its queue), then the receiver: late duplicates would show.
kill "$send"; wait "$send" 2>/dev/null || true
kill "$recv"; wait "$recv" 2>/dev/null || true

python3 - "$root" "$tmp" "$out" "$sid" "$sid2" <<'EOF'
import json, os, re, sys
root, tmp, out = sys.argv[1:4]
sids = sys.argv[4:]
ok = True
def fail(msg):
    global ok
    ok = False
    print('FAIL:', msg)
def parse(l):
    try:
        return json.loads(l)
    except ValueError:
        return None  # cut or mangled in transit: counted below
def lines(path):
    return open(path, 'rb').read().split(b'\n')[:-1] if os.path.exists(path) else []
for sid in sids:
    segs = [f for f in os.listdir(f'{root}/{sid}') if re.fullmatch(r'(system|user)\.\d{6,}\.jsonl(\.lz4)?', f)]
    print(f'{sid}: {len(segs)} rotations')
    if len(segs) < 5:
        fail(f'{sid}: only {len(segs)} rotations')
for cls in ('system', 'user'):
    got_all = lines(f'{out}/fl-{cls}.jsonl')
    bad = [l for l in got_all if not isinstance(parse(l), dict)]
    if bad:
        fail(f'{cls}: {len(bad)} received lines are not JSON objects, e.g. {bad[0][:120]!r} ({len(bad[0])} bytes)')
    got_all = [l for l in got_all if isinstance(parse(l), dict)]
    for sid in sids:
        want = lines(f'{tmp}/want.{sid}.{cls}.jsonl')
        # the receiver's file holds every session of the class; keep this session's lines, in order
        got = [l for l in got_all if json.loads(l)['session'] == sid]
        seqs = [json.loads(l)['seq'] for l in want]
        # the long-line session has transcript lines only: its user file is empty
        if (not want and sid == sids[0]) or seqs != sorted(set(seqs)):
            fail(f'{sid} {cls}: the session files are empty or not in seq order')
        gseq = [json.loads(l)['seq'] for l in got]
        dup = len(gseq) - len(set(gseq))
        lost = sorted(set(seqs) - set(gseq))
        order = gseq == sorted(gseq)
        print(f'{sid} {cls}: want {len(want)} got {len(got)} duplicates {dup} lost {len(lost)} '
              f'in seq order {order} bytes {sum(map(len, got))}', lost[:10])
        if got != want:
            fail(f'{sid} {cls}: received lines differ from the session files')
            for i, (a, b) in enumerate(zip(want, got)):
                if a != b:
                    print(f'  first difference at line {i + 1}:\n  want {a[:160]!r}\n  got  {b[:160]!r}')
                    break
    if len(got_all) != sum(len(lines(f'{tmp}/want.{sid}.{cls}.jsonl')) for sid in sids):
        fail(f'{cls}: the receiver has {len(got_all)} lines in all, not what the sessions have')
sys.exit(0 if ok else 1)
EOF
