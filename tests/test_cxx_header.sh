#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_cxx_header.sh: fuguelog.h compiles as C11 and C++11/17/20 with gcc/g++ and clang/clang++, warning-free,
# and a filtered emit is a load of the word's address, one relaxed load, a compare, a branch (x86-64 asm).
set -euo pipefail
inc=${1:?usage: test_cxx_header.sh PRODUCER_DIR}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '#include <fuguelog.h>\nint64_t filtered(fl_session *s) { return fl_emit_transcript(s, 0, 1, "x", 1); }\n' >"$tmp/u.cc"
cp "$tmp/u.cc" "$tmp/u.c"

# The instructions of `filtered` up to its first return must be exactly:
# mov (s)->head.level_word; mov (word) [the relaxed load]; cmp/test; jcc; xor (return 0); ret.
check_asm() {
  local what=$1 asm=$2
  local ins
  ins=$(awk '/^(_Z8filtered[A-Za-z0-9_]*|filtered):/{on=1; next}
             on && /^[ \t]+[a-z]/ && $1 !~ /^\./ {print $1 " " $2; if ($1 ~ /^ret/) exit}' "$asm")
  local want=('^movq \(%rdi\),$' '^movq \(%rax\),$' '^(cmpb|testb) ' '^j(a|ae|b|be|ne|e|g|ge|l|le) ' '^xorl %eax,$' '^retq? ?$')
  local -a got
  mapfile -t got <<<"$ins"
  local ok=1 i
  [ "${#got[@]}" -eq 6 ] || ok=0
  for i in 0 1 2 3 4 5; do
    [[ ${got[$i]:-} =~ ${want[$i]} ]] || ok=0
  done
  if [ "$ok" = 0 ]; then
    echo "$what: the filtered path is not load, load, compare, branch:" >&2
    echo "$ins" >&2
    return 1
  fi
}

ran=0
for cc in gcc clang; do
  command -v "$cc" >/dev/null || continue
  "$cc" -std=c11 -Wall -Wextra -Werror -pedantic -I"$inc" -c "$tmp/u.c" -o "$tmp/u.o"
  if [ "$(uname -m)" = x86_64 ]; then
    "$cc" -std=c11 -O2 -I"$inc" -S "$tmp/u.c" -o "$tmp/u.s"
    check_asm "$cc C11" "$tmp/u.s"
  fi
  ran=$((ran + 1))
done
for cxx in g++ clang++; do
  command -v "$cxx" >/dev/null || continue
  for std in 11 17 20; do
    "$cxx" -std=c++$std -Wall -Wextra -Werror -pedantic -I"$inc" -c "$tmp/u.cc" -o "$tmp/u.o"
    if [ "$(uname -m)" = x86_64 ]; then
      "$cxx" -std=c++$std -O2 -I"$inc" -S "$tmp/u.cc" -o "$tmp/u.s"
      check_asm "$cxx C++$std" "$tmp/u.s"
    fi
    ran=$((ran + 1))
  done
done
[ "$ran" -gt 0 ] || { echo "no C or C++ compiler found: skipped"; exit 77; }
echo "fuguelog.h: $ran compiler/standard pairs, filtered path load+compare+branch"
