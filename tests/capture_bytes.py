#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# capture_bytes.py DIR WANT_OUT WANT_IN N_OUT N_IN: the session's transcript and input bytes, decoded from its JSON lines, equal the files.
import base64
import json
import os
import sys


def raw(d):
    return base64.b64decode(d["data_b64"]) if "data_b64" in d else d["data"].encode()


def main():
    sdir, want_out, want_in, n_out, n_in = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    got = {"transcript": [], "input": []}
    for cls in ("system", "user"):
        with open(os.path.join(sdir, cls + ".jsonl"), "rb") as f:
            for line in f:
                o = json.loads(line)
                if o["event"] in got:
                    got[o["event"]].append((o["seq"], raw(o["data"])))
    bad = []
    for kind, path, n in (("transcript", want_out, n_out), ("input", want_in, n_in)):
        recs = sorted(got[kind])
        if len(recs) != n:
            bad.append(f"{kind}: {len(recs)} lines, want {n}")
        data = b"".join(d for _, d in recs)
        with open(path, "rb") as f:
            want = f.read()
        if data != want:
            bad.append(f"{kind}: {len(data)} bytes differ from the {len(want)} written")
    for b in bad:
        print("capture_bytes:", b, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
