#!/usr/bin/env bash
# Installs what cross-building edgespool for ARCH needs, from Debian's
# packages, skipping whatever is already there (safe to run again):
#
#   cross/sysroot.sh aarch64|armhf
#
# Both: the cross compiler (gcc-<triple>), qemu-user, cmake, pkg-config.
# aarch64: the target's -dev libraries through multiarch (arm64 added as a
#   foreign architecture, libraries installed as pkg:arm64 into
#   /usr/lib/aarch64-linux-gnu; qemu-aarch64 finds them there by itself).
# armhf: a sysroot in out/sysroot-armhf (or $ES_SYSROOT) made from the
#   -dev packages and everything they depend on, fetched with apt-get by a
#   private apt state in out/apt-armhf (the machine's dpkg is not touched)
#   and unpacked with dpkg-deb -x. Absolute symlinks become relative so the
#   linker and `qemu-arm -L` resolve them inside the sysroot.
# Debian 12 (bookworm). Installing host packages needs root or sudo.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
arch="${1:-}"

# The target's libraries: what cmake/EsDeps.cmake finds, and the C library.
libs=(libc6-dev libpaho-mqtt-dev libssl-dev libsqlite3-dev libcjson-dev
  libcivetweb-dev libinih-dev libcurl4-openssl-dev libcmocka-dev libcrypt-dev
  librabbitmq-dev zlib1g-dev libzstd-dev)

die() {
  echo "sysroot: $*" >&2
  exit 1
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

# host_install PKG...: apt-get install those of PKG not installed yet.
host_install() {
  local missing=() p
  for p in "$@"; do
    installed "$p" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "sysroot: installing ${missing[*]}"
  as_root apt-get update -qq -o APT::Architectures="amd64,arm64" || true
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq \
    --no-install-recommends "${missing[@]}" >/dev/null
}

aarch64() {
  host_install gcc-aarch64-linux-gnu qemu-user cmake pkg-config
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    echo "sysroot: adding arm64 as a foreign architecture"
    as_root dpkg --add-architecture arm64
    # Only amd64 and arm64: an armhf index would be fetched too otherwise.
    as_root apt-get update -qq -o APT::Architectures="amd64,arm64"
  fi
  host_install "${libs[@]/%/:arm64}"
  echo "sysroot: aarch64 libraries installed (multiarch, /usr/lib/aarch64-linux-gnu)"
}

# armhf_apt ARGS...: apt-get with a private state for armhf alone.
armhf_apt() {
  local a="$root/out/apt-armhf"
  apt-get -q -o Dir::State="$a/state" -o Dir::State::status="$a/status" \
    -o Dir::Cache="$a/cache" -o APT::Architecture=armhf \
    -o APT::Architectures=armhf -o Dir::Etc::Preferences=/dev/null \
    -o Dir::Etc::PreferencesParts="$a/preferences.d" -o Debug::NoLocking=1 "$@"
}

armhf_update() {
  local a="$root/out/apt-armhf"
  # Some index (on some mirrors bookworm-security's) may fail to load:
  # carry on with the others as long as bookworm main is there.
  armhf_apt update || echo "sysroot: warning: apt-get update reported errors" >&2
  ls "$a"/state/lists/*_bookworm_main_binary-armhf_Packages* >/dev/null 2>&1 ||
    die "no armhf package index for bookworm main in $a/state/lists"
}

armhf_fetch() {
  local a="$root/out/apt-armhf"
  mkdir -p "$a/state/lists/partial" "$a/cache/archives/partial" "$a/preferences.d"
  touch "$a/status"
  ls "$a"/state/lists/*_bookworm_main_binary-armhf_Packages* >/dev/null 2>&1 || armhf_update
  # An empty dpkg status: apt resolves the whole closure of the -dev
  # packages and downloads it (cached: a second run downloads nothing).
  # If that fails with old lists (the mirror moved on), update once more.
  armhf_apt install -y -qq --download-only --no-install-recommends "${libs[@]}" >/dev/null ||
    {
      armhf_update
      armhf_apt install -y -qq --download-only --no-install-recommends "${libs[@]}" >/dev/null
    }
}

# relink DIR: every absolute symlink under DIR points inside DIR, relatively.
relink() {
  local d="$1" l t
  find "$d" -type l -lname '/*' -print0 | while IFS= read -r -d '' l; do
    t="$(readlink "$l")"
    ln -sfn "$(realpath -m --relative-to="$(dirname "$l")" "$d$t")" "$l"
  done
}

armhf() {
  local sysroot="${ES_SYSROOT:-$root/out/sysroot-armhf}" deb done_list
  host_install gcc-arm-linux-gnueabihf qemu-user cmake pkg-config
  armhf_fetch
  mkdir -p "$sysroot"
  done_list="$sysroot/.es-unpacked"
  touch "$done_list"
  for deb in "$root"/out/apt-armhf/cache/archives/*.deb; do
    grep -qxF "$(basename "$deb")" "$done_list" && continue
    dpkg-deb -x "$deb" "$sysroot"
    basename "$deb" >>"$done_list"
  done
  relink "$sysroot"
  [ -e "$sysroot/lib/ld-linux-armhf.so.3" ] || die "no ld-linux-armhf.so.3 in $sysroot"
  echo "sysroot: armhf sysroot ready in $sysroot ($(wc -l <"$done_list") packages)"
}

case "$arch" in
aarch64) aarch64 ;;
armhf) armhf ;;
*) die "usage: cross/sysroot.sh aarch64|armhf" ;;
esac
