# SPDX-License-Identifier: MIT
# deps.sh: sourced by the entry scripts; installs the Debian packages fuguelog needs, quietly.
FL_PACKAGES=(cmake make gcc pkg-config python3 lz4 liburcu-dev liblz4-dev libprotobuf-c-dev
             protobuf-c-compiler libcmocka-dev libinih-dev)
# only the tests need these; scripts/test installs them (scripts/demo does not)
FL_TEST_PACKAGES=(rsyslog clang-format librust-tracing-dev librust-tracing-subscriber-dev tmux bsdutils jq)
# the Rust binding's test (tests/test_rust.sh) uses the machine's cargo, else Debian's
command -v cargo >/dev/null || FL_TEST_PACKAGES+=(cargo)

# fl_install_deps [extra packages...]: installs what is missing; fast when nothing is.
fl_install_deps() {
  local want=("${FL_PACKAGES[@]}" "$@") missing=() p
  for p in "${want[@]}"; do
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "fuguelog needs these Debian packages: ${missing[*]}" >&2
    echo "install them as root: apt-get install -y ${missing[*]}" >&2
    return 1
  fi
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# fl_build DIR [cmake args...]: configures (once) and builds into DIR.
fl_build() {
  local dir=$1; shift
  cmake -S "$FL_ROOT" -B "$dir" "$@" >/dev/null
  cmake --build "$dir" -j"$(nproc)"
}
