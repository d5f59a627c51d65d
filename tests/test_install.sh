#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_install.sh: `cmake --install` into a temp prefix, then build and run a program against the
# installed header: with pkg-config (shared and static) and as an outside CMake project (find_package).
set -euo pipefail

build=${FL_BUILD_DIR:?FL_BUILD_DIR is set by ctest}
tmp=${FL_TEST_TMP:?FL_TEST_TMP is set by ctest}
cc=${FL_CC:-cc}
command -v pkg-config >/dev/null || { echo "pkg-config missing: skipped"; exit 77; }

prefix=$tmp/prefix
rm -rf "$prefix"
mkdir -p "$tmp"
cmake --install "$build" --prefix "$prefix" >/dev/null

pcdir=$(dirname "$(find "$prefix" -name fuguelog.pc -print -quit)")
[ -f "$pcdir/fuguelog.pc" ] || { echo "no fuguelog.pc installed under $prefix" >&2; exit 1; }
[ -f "$prefix/include/fuguelog.h" ] || { echo "no fuguelog.h installed in $prefix/include" >&2; exit 1; }
export PKG_CONFIG_PATH=$pcdir
# no --define-variable: the installed .pc file must find the prefix it was installed into
pcflags=()
[ "$(pkg-config --variable=includedir fuguelog)" -ef "$prefix/include" ] ||
  { echo "fuguelog.pc's includedir is $(pkg-config --variable=includedir fuguelog), not $prefix/include" >&2; exit 1; }

# sanitizer builds: the installed library needs the same runtime in the program
san=()
case ${FL_SANITIZE:-} in
  address) san=(-fsanitize=address,undefined) ;;
  thread) san=(-fsanitize=thread) ;;
esac

cat >"$tmp/user.c" <<'EOF'
/* A library user: only the installed header. */
#include <fuguelog.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	fl_session *s;
	char why[256] = "";
	struct fl_session_opts o = {.id = argv[1], .level = FL_LEVEL_PROMPTS, .lanes = 1, .lane_size = 4096};
	if (argc < 2 || fl_session_open(&s, &o, why, sizeof why) != 0) {
		fprintf(stderr, "open: %s\n", why);
		return 1;
	}
	const char *av[] = {"user", "--flag"};
	int ok = fl_version() == FUGUELOG_VERSION_NUMBER && fl_emit_spawn(s, 0, 1, 0, av, 2, "/") > 0 && fl_emit_prompt(s, 0, "hi", 2) > 0 &&
		 fl_emit_transcript(s, 0, 1, "x", 1) == 0 && fl_get_level(s) == FL_LEVEL_PROMPTS &&
		 fl_level_parse("full") == FL_LEVEL_FULL && !strcmp(fl_kind_name(1), "spawn");
	struct fl_stats st;
	fl_session_stats(s, &st);
	ok = ok && st.emitted == 2 && st.admitted == 2 && st.dropped == 0;
	printf("%s %s emitted=%llu\n", fl_session_id(s), ok ? "ok" : "WRONG", (unsigned long long)st.emitted);
	fl_session_close(s);
	return ok ? 0 : 1;
}
EOF

shm_prefix=${FUGUE_SHM_PREFIX:-fugue-}
cleanup() {
  rm -f "/dev/shm/${shm_prefix}install-shared" "/dev/shm/${shm_prefix}install-static" \
    "/dev/shm/${shm_prefix}cmake-shared" "/dev/shm/${shm_prefix}cmake-static"
}
trap cleanup EXIT
cleanup

# shared: resolved from the prefix, not from the build tree
read -ra cflags <<<"$(pkg-config "${pcflags[@]}" --cflags fuguelog)"
read -ra libs <<<"$(pkg-config "${pcflags[@]}" --libs fuguelog)"
"$cc" "${san[@]}" -o "$tmp/user-shared" "$tmp/user.c" "${cflags[@]}" "${libs[@]}"
libdir=$(pkg-config "${pcflags[@]}" --variable=libdir fuguelog)
LD_LIBRARY_PATH=$libdir ldd "$tmp/user-shared" | grep >/dev/null "$libdir/libfuguelog.so" ||
  { echo "user-shared does not load libfuguelog.so from $libdir" >&2; exit 1; }
LD_LIBRARY_PATH=$libdir "$tmp/user-shared" install-shared | grep -x >/dev/null "install-shared ok emitted=2"

# static: the archive itself, plus its private dependencies from --static
read -ra slibs <<<"$(pkg-config "${pcflags[@]}" --static --libs fuguelog)"
for i in "${!slibs[@]}"; do
  [ "${slibs[$i]}" = -lfuguelog ] && slibs[$i]=-l:libfuguelog.a
done
"$cc" "${san[@]}" -o "$tmp/user-static" "$tmp/user.c" "${cflags[@]}" "${slibs[@]}"
if ldd "$tmp/user-static" | grep >/dev/null libfuguelog; then
  echo "user-static still needs libfuguelog.so" >&2
  exit 1
fi
"$tmp/user-static" install-static | grep -x >/dev/null "install-static ok emitted=2"

# an outside CMake project: find_package(fuguelog) and the two imported targets
mkdir -p "$tmp/proj"
cp "$tmp/user.c" "$tmp/proj/user.c"
cat >"$tmp/proj/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.21)
project(fuguelog_user LANGUAGES C)
find_package(fuguelog 0.2 REQUIRED)
add_executable(user-shared user.c)
target_link_libraries(user-shared PRIVATE fuguelog::fuguelog)
add_executable(user-static user.c)
target_link_libraries(user-static PRIVATE fuguelog::fuguelog_static)
EOF
rm -rf "$tmp/proj/build" "$tmp/proj/build9"
cmake -S "$tmp/proj" -B "$tmp/proj/build" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="$cc" \
  -DCMAKE_C_FLAGS="${san[*]}" -DCMAKE_EXE_LINKER_FLAGS="${san[*]}" >"$tmp/proj.log" 2>&1 ||
  { cat "$tmp/proj.log" >&2; echo "find_package(fuguelog) failed against $prefix" >&2; exit 1; }
cmake --build "$tmp/proj/build" >>"$tmp/proj.log" 2>&1 || { cat "$tmp/proj.log" >&2; exit 1; }
# the imported shared target comes from the prefix (CMake's build rpath points there); the static one is linked in
ldd "$tmp/proj/build/user-shared" | grep >/dev/null "$prefix/lib.*/libfuguelog.so" ||
  { echo "cmake user-shared does not load $prefix's libfuguelog.so" >&2; exit 1; }
if ldd "$tmp/proj/build/user-static" | grep >/dev/null libfuguelog; then
  echo "cmake user-static still needs libfuguelog.so" >&2
  exit 1
fi
"$tmp/proj/build/user-shared" cmake-shared | grep -x >/dev/null "cmake-shared ok emitted=2"
"$tmp/proj/build/user-static" cmake-static | grep -x >/dev/null "cmake-static ok emitted=2"
# the ConfigVersion file refuses a version this is not
sed -i 's/find_package(fuguelog 0.2 REQUIRED)/find_package(fuguelog 9.0 REQUIRED)/' "$tmp/proj/CMakeLists.txt"
if cmake -S "$tmp/proj" -B "$tmp/proj/build9" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null 2>&1; then
  echo "find_package(fuguelog 9.0) accepted version $(pkg-config --modversion fuguelog)" >&2
  exit 1
fi
echo "installed library works: pkg-config shared and static, find_package shared and static"
