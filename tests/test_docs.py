#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""test_docs.py: every shell block of README.md and docs/*.md, run as written against this build.

Blocks fenced as ```sh, ```bash or ```shell run under `bash -e -o pipefail`
and must exit 0; ```console blocks run their `$ ` lines and must not fail to
find or parse a command (their output shows errors on purpose). Each block
gets a private world: HOME, FUGUE_LOG_DIR and FUGUE_SHM_PREFIX of its own,
PATH starting with the build's drainer/ (so fugue-logd and fugue-log are this
build's), and a private fugue-logd unless the block starts one itself.
Background jobs the block leaves, and a daemonized fugue-logd, are stopped
after it. A block that cannot run here (it builds or installs the project, or
needs root) is marked right before its fence with
    <!-- doc-test: skip (the reason) -->
and a skip without a reason is an error.
"""
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import time

SRC = os.environ.get("FL_SOURCE_DIR", os.path.join(os.path.dirname(__file__), ".."))
BUILD = os.environ["FL_BUILD_DIR"]
TMP = os.environ.get("FL_TEST_TMP", "/tmp/fl_test_docs")
PREFIX = os.environ.get("FUGUE_SHM_PREFIX", "flt-test_docs-")
FENCE = re.compile(r"^```(\w*)\s*$")
SKIP = re.compile(r"^<!--\s*doc-test:\s*skip\s*(\((.*)\))?\s*-->\s*$")
TIMEOUT = 120


def blocks(path):
    """(line, lang, text, skip_reason) of every fenced shell block in path."""
    out, lines = [], open(path, encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        lang, start = m.group(1), i
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        if lang in ("sh", "bash", "shell", "console"):
            k = start - 1
            while k >= 0 and not lines[k].strip():
                k -= 1
            skip = SKIP.match(lines[k]) if k >= 0 else None
            if skip and not (skip.group(2) or "").strip():
                sys.exit("%s:%d: a doc-test skip needs a reason in parentheses" % (path, k + 1))
            out.append((start + 1, lang, "\n".join(lines[start + 1:j]), skip.group(2) if skip else None))
        i = j + 1
    return out


def shm_cleanup(prefix):
    for name in glob.glob("/dev/shm/" + glob.escape(prefix) + "*"):
        try:
            os.unlink(name)
        except OSError:
            pass


def script_of(lang, text):
    if lang != "console":
        return "set -eo pipefail\n" + text + "\n"
    cmds = [l[2:] for l in text.split("\n") if l.startswith("$ ")]
    # each command may fail on purpose; not found (127) or not runnable (126) may not
    return "".join("( %s ) || { rc=$?; [ $rc -lt 126 ] || [ $rc -gt 127 ] || exit $rc; }\n" % c for c in cmds)


def run_block(n, path, line, lang, text):
    world = os.path.join(TMP, "block%d" % n)
    shutil.rmtree(world, ignore_errors=True)
    home = os.path.join(world, "home")
    logs = os.path.join(world, "logs")
    os.makedirs(home)
    os.makedirs(logs)
    prefix = "%sb%d-" % (PREFIX, n)
    env = dict(os.environ, HOME=home, FUGUE_LOG_DIR=logs, FUGUE_SHM_PREFIX=prefix,
               PATH=os.path.join(BUILD, "drainer") + ":" + os.environ.get("PATH", ""))
    env.pop("FUGUE_SESSION_LOG", None)
    drainer = None
    if "fugue-logd" not in text:
        drainer = subprocess.Popen([os.path.join(BUILD, "drainer", "fugue-logd"), "--foreground"],
                                   env=env, cwd=world, stderr=open(os.path.join(world, "fugue-logd.log"), "w"))
    # background jobs of the block end with it (a drainer it started, an emit left running)
    script = ("trap 'rc=$?; j=$(jobs -p); [ -z \"$j\" ] || kill $j 2>/dev/null; wait; exit $rc' EXIT\n" +
              script_of(lang, text))
    where = "%s:%d" % (os.path.relpath(path, SRC), line)
    try:
        p = subprocess.run(["bash", "-c", script], env=env, cwd=world, timeout=TIMEOUT,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        ok, why = p.returncode == 0, "exit %d" % p.returncode
        output = p.stdout.decode("utf-8", "replace")
    except subprocess.TimeoutExpired as e:
        ok, why, output = False, "no end after %d s" % TIMEOUT, (e.stdout or b"").decode("utf-8", "replace")
    finally:
        if drainer:
            drainer.send_signal(signal.SIGTERM)
            drainer.wait(60)
        pidf = os.path.join(logs, "fugue-logd.pid")
        if os.path.exists(pidf):  # the block daemonized one
            try:
                pid = int(open(pidf).read())
                os.kill(pid, signal.SIGTERM)
                for _ in range(600):
                    os.kill(pid, 0)
                    time.sleep(0.05)
            except (OSError, ValueError):
                pass
        shm_cleanup(prefix)
    print("%s %s (%s)" % ("ok  " if ok else "FAIL", where, lang))
    if not ok:
        print("  %s; the block:\n%s\n  its output:\n%s" % (why, "\n".join("    " + l for l in text.split("\n")),
                                                          "\n".join("    " + l for l in output.split("\n"))))
    return ok


def main():
    files = [os.path.join(SRC, "README.md")] + sorted(glob.glob(os.path.join(SRC, "docs", "*.md")))
    n = failed = skipped = 0
    for f in files:
        for line, lang, text, skip in blocks(f):
            n += 1
            if skip is not None:
                skipped += 1
                print("skip %s:%d (%s)" % (os.path.relpath(f, SRC), line, skip))
                continue
            failed += not run_block(n, f, line, lang, text)
    print("%d shell blocks: %d ran, %d failed, %d skipped" % (n, n - skipped, failed, skipped))
    if n - skipped == 0:
        sys.exit("no shell block ran: the extractor is broken")
    sys.exit(1 if failed else 0)


main()
