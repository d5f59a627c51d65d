#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_no_testing.sh: -DBUILD_TESTING=OFF configures and builds the library and tools on a machine without cmocka.
set -euo pipefail
src=${FL_SOURCE_DIR:?FL_SOURCE_DIR is set by ctest}
tmp=${FL_TEST_TMP:?FL_TEST_TMP is set by ctest}
real=$(command -v pkg-config) || { echo "pkg-config missing: skipped"; exit 77; }
rm -rf "$tmp" && mkdir -p "$tmp/bin"
# a pkg-config that has never heard of cmocka
cat >"$tmp/bin/pkg-config" <<EOF2
#!/bin/sh
for a in "\$@"; do case \$a in cmocka*) exit 1 ;; esac; done
exec "$real" "\$@"
EOF2
chmod +x "$tmp/bin/pkg-config"
# the fake really hides it: with testing on, configure must fail
if cmake -S "$src" -B "$tmp/on" -DPKG_CONFIG_EXECUTABLE="$tmp/bin/pkg-config" >"$tmp/on.log" 2>&1; then
  echo "configure with BUILD_TESTING=ON passed without cmocka: the check proves nothing" >&2
  exit 1
fi
cmake -S "$src" -B "$tmp/off" -DBUILD_TESTING=OFF -DPKG_CONFIG_EXECUTABLE="$tmp/bin/pkg-config" \
  >"$tmp/off.log" 2>&1 || { cat "$tmp/off.log" >&2; exit 1; }
cmake --build "$tmp/off" -j2 --target fuguelog fuguelog_static fugue-log fugue-logd >>"$tmp/off.log" 2>&1 ||
  { tail -30 "$tmp/off.log" >&2; exit 1; }
"$tmp/off/drainer/fugue-log" --help >/dev/null
echo "BUILD_TESTING=OFF: library and tools built without cmocka"
