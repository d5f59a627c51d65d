#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# test_function_size.py: fails naming file:function:lines for any function in drainer/ whose body is over 80 lines.
"""Usage: test_function_size.py [--max N] [--list] [DIR]

Scans every .c file under DIR (default: drainer/ next to this tests/ folder)
with a brace-depth scanner that skips comments, strings and character
literals. A function is a top-level '{' ... '}' block whose text before the
'{' ends in ')' (so struct, enum and initializer bodies are not counted); its
length is the lines from the '{' to the '}' inclusive. --list prints every
function with its length, longest first.
"""
import os
import re
import sys

MAX_LINES = 80

# Functions that other branches are splitting in parallel with this test; each
# name leaves this list when that split lands, and the list should then be empty.
# A name here that is no longer over the limit is reported, to be taken out.
ALLOWED = set()


def strip(text):
    """text with comments, strings and char literals blanked out (newlines kept, so line numbers hold)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif ch in "\"'":
            j = i + 1
            while j < n and text[j] != ch and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(ch + re.sub(r"[^\n]", " ", text[i + 1 : j - 1]) + ch)
            i = j
        elif ch == "#" and (i == 0 or text[i - 1] == "\n"):
            # a preprocessor line (with its continuations): a macro's braces are not a function
            j = i
            while True:
                k = text.find("\n", j)
                if k < 0:
                    k = n
                    break
                if k > 0 and text[k - 1] == "\\":
                    j = k + 1
                    continue
                break
            out.append(re.sub(r"[^\n]", " ", text[i:k]))
            i = k
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def functions(path=None, source=None):
    """(name, first line, line count) of each function defined in the file at path (or in source)."""
    if source is None:
        with open(path, encoding="utf-8", errors="replace") as f:
            source = f.read()
    text = strip(source)
    found = []
    depth, start, head_from = 0, 0, 0
    for i, ch in enumerate(text):
        if ch == "{":
            if depth == 0:
                start = i
                head = text[head_from:i]
                m = re.search(r"([A-Za-z_]\w*)\s*\([^;{}]*\)\s*$", head)
                name = m.group(1) if m and m.group(1) not in ("if", "for", "while", "switch") else None
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                if name:
                    first = text.count("\n", 0, start) + 1
                    last = text.count("\n", 0, i) + 1
                    found.append((name, first, last - first + 1))
                head_from = i + 1
        elif ch == ";" and depth == 0:
            head_from = i + 1
    return found


def self_check():
    """The scanner on a made-up file: a scanner that miscounts would let every long function pass."""
    body = "\n".join(f"\tx += {i}; /* }} */ s = \"{{\";" for i in range(85))
    src = (
        "#define M(a) { a }\n"
        "static const struct s t = {1, 2};\n"
        "struct q {\n\tint a;\n};\n"
        f"static int long_one(int x)\n{{\n\tchar *s;\n{body}\n\tif (x) {{\n\t\tx = '}}';\n\t}}\n\treturn x;\n}}\n"
        "int short_one(void)\n{\n\treturn 0;\n}\n"
    )
    got = functions(source=src)
    want = [("long_one", 7, 85 + 7), ("short_one", 100, 3)]
    if got != want:
        print(f"scanner self-check failed: got {got}, want {want}", file=sys.stderr)
        return 1
    return 0


def main(argv):
    if self_check():
        return 1
    limit, listing, root = MAX_LINES, False, None
    args = list(argv[1:])
    while args:
        a = args.pop(0)
        if a == "--max":
            limit = int(args.pop(0))
        elif a == "--list":
            listing = True
        else:
            root = a
    if root is None:
        root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "drainer")
    rows = []
    for d, _, files in os.walk(root):
        for fn in sorted(files):
            if fn.endswith(".c"):
                p = os.path.join(d, fn)
                rel = os.path.relpath(p, os.path.join(root, ".."))
                rows += [(rel, name, first, n) for name, first, n in functions(p)]
    if not rows:
        print(f"no functions found under {root}: the scanner is broken", file=sys.stderr)
        return 1
    if listing:
        for rel, name, first, n in sorted(rows, key=lambda r: -r[3]):
            print(f"{n:5d} {rel}:{first}:{name}")
        return 0
    bad = [r for r in rows if r[3] > limit and (r[0], r[1]) not in ALLOWED]
    long_ones = {(r[0], r[1]) for r in rows if r[3] > limit}
    for rel, name in sorted(ALLOWED - long_ones):
        print(f"{rel}:{name} is allowed over {limit} lines but is not (or is gone): take it out of ALLOWED")
    for rel, name, first, n in bad:
        print(f"{rel}:{first}:{name}: {n} lines (at most {limit}): split it into named steps", file=sys.stderr)
    print(f"{len(rows)} functions read, {len(bad)} over {limit} lines that are not in ALLOWED")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
