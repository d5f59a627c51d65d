#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""test_run.py: fugue-log run against the real script(1), scriptreplay and tmux, through a private fugue-logd.

Each check runs a real program on a real PTY, lets a real fugue-logd write the
session, and reads the files back: output bytes equal script(1)'s, exit codes
pass through, exports play in scriptreplay and parse as asciicast, input is
recorded only when it should be, and an interactive session under tmux works.
"""
import base64, json, os, shutil, signal, subprocess, sys, time

BUILD = os.environ["FL_BUILD_DIR"]
TMP = os.environ.get("FL_TEST_TMP", "/tmp/fl_test_run")
PREFIX = os.environ.get("FUGUE_SHM_PREFIX", "flt-test_run-")
FL = os.path.join(BUILD, "drainer", "fugue-log")
WAIT = 60  # seconds a step may take on a loaded machine before the test gives up

for tool in ("script", "scriptreplay"):
    if not shutil.which(tool):
        print("skipped: %s is not installed (util-linux / bsdutils)" % tool)
        sys.exit(77)

shutil.rmtree(TMP, ignore_errors=True)
ROOT = os.path.join(TMP, "logs")
HOME = os.path.join(TMP, "home")
os.makedirs(ROOT)
os.makedirs(HOME)
ENV = dict(os.environ, HOME=HOME, FUGUE_LOG_DIR=ROOT, FUGUE_SHM_PREFIX=PREFIX, TERM="xterm", LC_ALL="C.UTF-8",
           PATH=os.path.join(BUILD, "drainer") + ":" + os.environ.get("PATH", ""))
ENV.pop("FUGUE_SESSION_LOG", None)
failures = []


def check(ok, what):
    print("%s %s" % ("ok  " if ok else "FAIL", what))
    if not ok:
        failures.append(what)
    return ok


def wait_ended(sid):
    path = os.path.join(ROOT, sid, "session.json")
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        try:
            if json.load(open(path)).get("state") == "ended":
                return True
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    return False


def events(sid):
    """The session's lines in seq order, as cat prints them (each one must be JSON)."""
    out = subprocess.run([FL, "cat", sid], env=ENV, stdout=subprocess.PIPE, check=True).stdout
    return [json.loads(l) for l in out.decode().splitlines()]


def raw(d, key="data"):
    return base64.b64decode(d[key + "_b64"]) if key + "_b64" in d else d[key].encode()


def transcript(evs):
    return b"".join(raw(e["data"]) for e in evs if e["event"] == "transcript")


def run(sid, cmd, stdin=b"", opts=("--level", "full"), sh=True):
    argv = [FL, "run", "--session-id", sid] + list(opts) + ["--"] + (["sh", "-c", cmd] if sh else cmd)
    p = subprocess.run(argv, env=ENV, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=WAIT,
                       cwd=TMP)
    check(wait_ended(sid), "%s: session ended on disk" % sid)
    return p.returncode, p.stdout


def script_bytes(cmd, stdin=b""):
    """What script(1) records for cmd, its header line and footer stripped."""
    log = os.path.join(TMP, "script.log")
    subprocess.run(["script", "-q", "-E", "never", "-c", cmd, log], env=ENV, input=stdin, stdout=subprocess.DEVNULL,
                   timeout=WAIT, cwd=TMP, check=True)
    data = open(log, "rb").read()
    data = data[data.index(b"\n") + 1:]  # "Script started on ..."
    foot = data.rfind(b"\nScript done on ")
    return data[:foot] if foot >= 0 else data


def main():
    drainer = subprocess.Popen([os.path.join(BUILD, "drainer", "fugue-logd"), "--foreground"], env=ENV, cwd=TMP,
                               stderr=open(os.path.join(TMP, "fugue-logd.log"), "w"))
    try:
        tests()
    finally:
        drainer.send_signal(signal.SIGTERM)
        drainer.wait(WAIT)
        for n in os.listdir("/dev/shm"):
            if n.startswith(PREFIX):
                os.unlink(os.path.join("/dev/shm", n))
    if failures:
        print("%d failed: %s" % (len(failures), "; ".join(failures)))
        return 1
    return 0


def tests():
    lsdir = os.path.join(TMP, "lsdir")
    os.makedirs(os.path.join(lsdir, "sub"))
    open(os.path.join(lsdir, "plain.txt"), "w").close()
    exe = os.path.join(lsdir, "tool.sh")
    open(exe, "w").close()
    os.chmod(exe, 0o755)
    same = [
        ("printf", r"printf 'a\033[1mbold\033[0m \303\251 \377\376 bad\r\n\tend\n'", b""),
        ("ls", "ls --color=always " + lsdir, b""),
        ("python", "python3 -c 'import sys; print(\"h\\u00e9llo\"); sys.stdout.write(\"\\x1b[31mred\\x1b[0m\\n\")'",
         b""),
        ("resize", "stty rows 30 cols 100; stty size", b""),
        ("seq", "seq 1 200000", b""),  # about 1.3 MB: many reads into the ring, the lane wrapping
        ("input", "read x; echo got:$x; read y; echo then:$y", b"abc\ndef\n"),
    ]
    for name, cmd, stdin in same:
        # --block: a lane that fills up waits for the drainer, so every byte must be on disk
        rc, out = run("same-" + name, cmd, stdin, opts=("--level", "full", "--block"))
        want = script_bytes(cmd, stdin)
        evs = events("same-" + name)
        got = transcript(evs)
        check(rc == 0, "%s: exit 0 (got %d)" % (name, rc))
        check(got == want, "%s: recorded bytes equal script(1)'s (%r vs %r)" % (name, got[:80], want[:80]))
        check(out == want, "%s: stdout equals script(1)'s" % name)
        kinds = [e["event"] for e in evs]
        check("dropped" not in kinds, "%s: nothing dropped with --block" % name)
        check(kinds.count("spawn") == 1 and kinds.count("exit") == 1 and kinds[0] == "spawn",
              "%s: one spawn first, one exit" % name)
        st = [e for e in evs if e["event"] == "state"]
        check(len(st) == 1 and st[0]["data"]["reason"] == "start TERM=xterm" and st[0]["data"]["to"] == "0x0",
              "%s: the start state says TERM and the size" % name)
        sp = [e for e in evs if e["event"] == "spawn"][0]["data"]
        check(sp["argv"] == ["sh", "-c", cmd] and sp["cwd"] == TMP, "%s: spawn has argv and cwd" % name)
        if name == "input":
            inp = b"".join(raw(e["data"]) for e in evs if e["event"] == "input")
            check(inp == stdin, "input: the piped bytes are recorded as input at full (%r)" % inp)
        if name == "printf":
            check_exports("same-printf", got)
        if name == "seq":
            sizes = [len(raw(e["data"])) for e in evs if e["event"] == "transcript"]
            # FL_PTY_CHUNK (drainer/cli/pty.h): two PTY reads per record and per write to stdout, at most
            check(max(sizes) <= 8192, "seq: no transcript record above 8 KiB (largest %d)" % max(sizes))

    for code, cmd in ((0, "true"), (3, "exit 3"), (130, "kill -INT $$"), (137, "kill -9 $$")):
        sid = "exit-%d" % code
        rc, _ = run(sid, cmd)
        check(rc == code, "exit %d passed through (got %d)" % (code, rc))
        ex = [e for e in events(sid) if e["event"] == "exit"]
        sig = code - 128 if code > 128 else 0
        check(len(ex) == 1 and ex[0]["data"]["signal"] == sig and ex[0]["data"]["status"] == (0 if sig else code),
              "exit %d: the exit event has status and signal" % code)

    rc, _ = run("noinput", "cat >/dev/null", b"secret\n", opts=("--level", "full", "--no-input"))
    evs = events("noinput")
    check(rc == 0 and not [e for e in evs if e["event"] == "input"], "--no-input: no input event at full")
    rc, _ = run("signals", "read x; echo $x", b"secret\n", opts=("--level", "signals"))
    kinds = [e["event"] for e in events("signals")]
    check(rc == 0 and "input" not in kinds and "transcript" not in kinds and kinds.count("exit") == 1,
          "level signals: neither input nor transcript, still spawn and exit")
    rc, _ = run("missing", ["no-such-program-h9"], sh=False)
    check(rc == 127, "a missing program exits 127 (got %d)" % rc)

    tmux_session()
    tmux_resize_first()
    tmux_job_control()


def check_exports(sid, want):
    tm, log = os.path.join(TMP, "x.tm"), os.path.join(TMP, "x.log")
    subprocess.run([FL, "export", sid, "--format", "script", "--timing", tm, "--output", log], env=ENV, check=True)
    for how in ("-B", "-O"):
        p = subprocess.run(["scriptreplay", "-T", tm, how, log], stdout=subprocess.PIPE, timeout=WAIT)
        # scriptreplay ends what it plays with a newline of its own
        check(p.returncode == 0 and p.stdout == want + b"\n", "scriptreplay %s plays the export byte for byte" % how)
    cast = subprocess.run([FL, "export", sid, "--format", "asciicast"], env=ENV, stdout=subprocess.PIPE,
                          check=True).stdout.decode("utf-8")
    lines = [json.loads(l) for l in cast.splitlines()]
    head = lines[0]
    check(head["version"] == 2 and head["width"] == 80 and head["height"] == 24 and head["command"].startswith("sh -c")
          and isinstance(head["timestamp"], int), "asciicast header")
    outs = "".join(l[2] for l in lines[1:] if l[1] == "o")
    check(outs == want.decode("utf-8", "replace"), "asciicast output events concatenate to the transcript")
    times = [l[0] for l in lines[1:]]
    check(times == sorted(times), "asciicast times never go back")
    rp = subprocess.run([FL, "replay", sid, "--no-timing"], env=ENV, stdout=subprocess.PIPE, check=True).stdout
    check(rp == want, "replay --no-timing writes the transcript")
    rp = subprocess.run([FL, "replay", sid, "--speed", "50"], env=ENV, stdout=subprocess.PIPE, check=True).stdout
    check(rp == want, "replay --speed 50 writes the transcript")
    tr = subprocess.run([FL, "cat", sid, "--output", "transcript"], env=ENV, stdout=subprocess.PIPE, check=True).stdout
    check(tr == want, "cat --output transcript writes the transcript")
    tx = subprocess.run([FL, "cat", sid, "--output", "text"], env=ENV, stdout=subprocess.PIPE, check=True).stdout
    tl = tx.decode().splitlines()
    check(len(tl) == len(events(sid)) and all(l.split()[3] in ("spawn", "state", "transcript", "exit") for l in tl),
          "cat --output text: one line per event with its kind")


def tmux_session():
    if not shutil.which("tmux"):
        print("skipped the tmux check: tmux is not installed")
        return
    sock = PREFIX + "tmux"
    rcf = os.path.join(TMP, "tmux.rc")
    tm = ["tmux", "-L", sock, "-f", "/dev/null"]
    subprocess.run(tm + ["new-session", "-d", "-x", "80", "-y", "24",
                         "%s run --level full --session-id tmux -- cat; echo $? > %s; sleep 30" % (FL, rcf)],
                   env=ENV, check=True)
    try:
        def screen():
            return subprocess.run(tm + ["capture-pane", "-p"], env=ENV, stdout=subprocess.PIPE).stdout.decode()

        deadline = time.monotonic() + WAIT
        while not os.path.exists(os.path.join(ROOT, "tmux")) and time.monotonic() < deadline:
            time.sleep(0.05)
        subprocess.run(tm + ["send-keys", "hello tmux", "Enter"], env=ENV, check=True)
        while screen().count("hello tmux") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        check(screen().count("hello tmux") == 2, "tmux: the typed line is echoed and cat prints it back")
        subprocess.run(tm + ["resize-window", "-x", "100", "-y", "30"], env=ENV, check=True)
        while time.monotonic() < deadline and not [e for e in events("tmux") if e["event"] == "state" and
                                                   e["data"]["to"] == "30x100"]:
            time.sleep(0.05)  # the resize is on disk before the end is typed
        subprocess.run(tm + ["send-keys", "C-d"], env=ENV, check=True)
        while not os.path.exists(rcf) and time.monotonic() < deadline:
            time.sleep(0.05)
        check(os.path.exists(rcf) and open(rcf).read().strip() == "0", "tmux: C-d ends cat, run exits 0")
        check(wait_ended("tmux"), "tmux: session ended on disk")
        evs = events("tmux")
        inp = b"".join(raw(e["data"]) for e in evs if e["event"] == "input")
        check(inp == b"hello tmux\r\x04", "tmux: the typed bytes are the recorded input (%r)" % inp)
        st = [e["data"]["to"] for e in evs if e["event"] == "state"]
        check(st[0] == "24x80" and "30x100" in st, "tmux: start size 24x80 and the resize to 30x100 (%r)" % st)
        check(b"hello tmux" in transcript(evs), "tmux: the transcript holds the echo")
    finally:
        subprocess.run(tm + ["kill-server"], env=ENV, stderr=subprocess.DEVNULL)


def tmux_resize_first():
    """A terminal with a size, resized before the program writes anything: the exports' headers carry the
    start size and the resize comes first, before any output."""
    if not shutil.which("tmux"):
        print("skipped the tmux resize check: tmux is not installed")
        return
    sock = PREFIX + "tmuxr"
    rcf = os.path.join(TMP, "tmuxr.rc")
    tm = ["tmux", "-L", sock, "-f", "/dev/null"]
    # no echo, so nothing is output until stty prints the size it has after the resize
    subprocess.run(tm + ["new-session", "-d", "-x", "90", "-y", "20",
                         "%s run --level full --session-id rfirst -- sh -c 'stty -echo; read x; stty size'; "
                         "echo $? > %s; sleep 30" % (FL, rcf)], env=ENV, check=True)
    try:
        deadline = time.monotonic() + WAIT
        while not os.path.exists(os.path.join(ROOT, "rfirst")) and time.monotonic() < deadline:
            time.sleep(0.05)
        subprocess.run(tm + ["resize-window", "-x", "100", "-y", "30"], env=ENV, check=True)
        while time.monotonic() < deadline and not [e for e in events("rfirst") if e["event"] == "state" and
                                                   e["data"]["to"] == "30x100"]:
            time.sleep(0.05)
        subprocess.run(tm + ["send-keys", "Enter"], env=ENV, check=True)
        while not os.path.exists(rcf) and time.monotonic() < deadline:
            time.sleep(0.05)
        check(wait_ended("rfirst"), "resize first: session ended on disk")
    finally:
        subprocess.run(tm + ["kill-server"], env=ENV, stderr=subprocess.DEVNULL)
    evs = events("rfirst")
    st = [e["data"]["to"] for e in evs if e["event"] == "state"]
    check(len(st) == 2 and st[0] != "0x0" and st[1] == "30x100", "resize first: the start size, then 30x100 (%r)" % st)
    rows, cols = (int(v) for v in st[0].split("x"))
    lines = [json.loads(l) for l in subprocess.run([FL, "export", "rfirst", "--format", "asciicast"], env=ENV,
                                                   stdout=subprocess.PIPE, check=True).stdout.decode().splitlines()]
    head = lines[0]
    check(head["width"] == cols and head["height"] == rows,
          "resize first: the asciicast header has the start size %s (%r)" % (st[0], head))
    kinds = [l[1] for l in lines[1:]]
    check(kinds and kinds[0] == "r" and lines[1][2] == "100x30" and kinds.count("r") == 1 and "o" in kinds,
          "resize first: the one resize is the first event, as COLSxROWS (%r)" % lines[1:3])
    outs = "".join(l[2] for l in lines[1:] if l[1] == "o")
    check(outs == transcript(evs).decode() and "30 100" in outs, "resize first: the output is stty's new size")
    tmf, log = os.path.join(TMP, "r.tm"), os.path.join(TMP, "r.log")
    subprocess.run([FL, "export", "rfirst", "--format", "script", "--timing", tmf, "--output", log], env=ENV,
                   check=True)
    tl = open(tmf).read().splitlines()
    body = [l for l in tl if not l.startswith("H ")]
    check("H 0.000000 COLUMNS %d" % cols in tl and "H 0.000000 LINES %d" % rows in tl and body and
          body[0].startswith("S ") and body[0].endswith("SIGWINCH ROWS=30 COLS=100"),
          "resize first: the script timing file has the start size, then the resize before any output (%r)" % tl[:8])


def tmux_job_control():
    """Under a real bash: Ctrl-Z and fg, and SIGTERM to run, each give the terminal back as it was."""
    if not shutil.which("tmux") or not shutil.which("bash"):
        print("skipped the job control check: tmux or bash is not installed")
        return
    sock = PREFIX + "tmuxjc"
    tm = ["tmux", "-L", sock, "-f", "/dev/null"]
    env = dict(ENV, PS1="$ ")
    subprocess.run(tm + ["new-session", "-d", "-x", "80", "-y", "24", "bash --norc --noprofile -i"], env=env,
                   check=True, cwd=TMP)
    deadline = time.monotonic() + WAIT

    def screen():
        return subprocess.run(tm + ["capture-pane", "-p"], env=env, stdout=subprocess.PIPE).stdout.decode()

    def keys(*k):
        subprocess.run(tm + ["send-keys"] + list(k), env=env, check=True)

    def until(pred):
        while not pred() and time.monotonic() < deadline:
            time.sleep(0.05)
        return pred()

    def stty_file(name):
        path = os.path.join(TMP, name)
        keys("stty -g > %s.tmp && mv %s.tmp %s" % (path, path, path), "Enter")
        until(lambda: os.path.exists(path))
        return open(path).read().strip() if os.path.exists(path) else None

    try:
        before = stty_file("stty.before")
        keys("%s run --level full --session-id jc -- cat" % FL, "Enter")
        until(lambda: os.path.exists(os.path.join(ROOT, "jc")))
        keys("one", "Enter")
        check(until(lambda: screen().count("one") >= 2), "job control: cat echoes under bash")
        keys("C-z")
        check(until(lambda: "Stopped" in screen()), "job control: Ctrl-Z stops the session, bash says Stopped")
        check(stty_file("stty.stopped") == before, "job control: while stopped the terminal is as it was")
        tty = subprocess.run(tm + ["display", "-p", "#{pane_tty}"], env=env, stdout=subprocess.PIPE).stdout.strip()
        keys("fg", "Enter")
        # cfmakeraw clears opost, readline does not: "two" typed before raw mode would arrive cooked (\n)
        check(until(lambda: b"-opost" in subprocess.run(["stty", "-F", tty, "-a"], stdout=subprocess.PIPE).stdout),
              "job control: after fg the terminal is in raw mode again")
        keys("two", "Enter")
        check(until(lambda: screen().count("two") >= 2), "job control: after fg cat reads and prints again")
        keys("C-d")
        check(wait_ended("jc"), "job control: C-d after fg ends the session")
        inp = b"".join(raw(e["data"]) for e in events("jc") if e["event"] == "input")
        check(inp == b"one\r\x1atwo\r\x04", "job control: the recorded input (%r)" % inp)
        check(stty_file("stty.after") == before, "job control: after the end the terminal is as it was")

        rcf = os.path.join(TMP, "term.rc")
        keys("%s run --session-id term -- sleep 100; echo $? > %s" % (FL, rcf), "Enter")
        spawn = []
        until(lambda: os.path.exists(os.path.join(ROOT, "term")) and
              [spawn.append(e) for e in events("term") if e["event"] == "spawn"])
        if check(spawn != [], "SIGTERM: the spawn is on disk"):
            os.kill(spawn[0]["data"]["ppid"], signal.SIGTERM)
        until(lambda: os.path.exists(rcf) and open(rcf).read().strip())
        check(os.path.exists(rcf) and open(rcf).read().strip() == "143",
              "SIGTERM to run: passed to CMD, run exits 128+15")
        check(stty_file("stty.term") == before, "SIGTERM: the terminal is restored")
    finally:
        subprocess.run(tm + ["kill-server"], env=env, stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    sys.exit(main())
