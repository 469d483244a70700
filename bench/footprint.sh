#!/usr/bin/env bash
# The edge agent's footprint on one architecture: stripped size, RSS idle
# and under load, the rate it sustained, journal bytes per event (see
# bench/footprint.py and bench/README.md, "Footprint"). It builds nothing.
#
#   bench/footprint.sh [native|aarch64|armhf] [footprint.py options]
#
# native uses ./build (or $ES_BUILD_DIR); aarch64 and armhf use build-ARCH/
# from cross/build.sh and run the agent under qemu-user, which counts in
# the RSS (the emulator and its translated code). Options: --rate N
# (events/s offered, default 5000), --seconds S (default 20).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
arch="${1:-native}"
[ $# -gt 0 ] && shift
case "$arch" in
native)
  build="${ES_BUILD_DIR:-$root/build}" strip=strip wrap="" cli="$build/cli/edgespool"
  ;;
aarch64)
  build="${ES_BUILD_DIR:-$root/build-aarch64}" strip=aarch64-linux-gnu-strip
  wrap="qemu-aarch64" cli="$build/tests/integration/edgespool-emu"
  ;;
armhf)
  build="${ES_BUILD_DIR:-$root/build-armhf}" strip=arm-linux-gnueabihf-strip
  wrap="qemu-arm -L ${ES_SYSROOT:-$root/out/sysroot-armhf}"
  cli="$build/tests/integration/edgespool-emu"
  ;;
*)
  echo "usage: bench/footprint.sh [native|aarch64|armhf] [--rate N] [--seconds S]" >&2
  exit 2
  ;;
esac
echo "arch=$arch cpu=$(uname -m) nproc=$(nproc)"
extra=()
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
if [ -n "$wrap" ]; then
  # The emulator's own share: a program that only waits, linked like the
  # agent (dynamically, with the target's C library).
  printf '#include <unistd.h>\nint main(void) { pause(); return 0; }\n' >"$tmp/pause.c"
  cc="${strip%-strip}-gcc"
  sysroot=()
  [ "$arch" = armhf ] && sysroot=(--sysroot="${ES_SYSROOT:-$root/out/sysroot-armhf}")
  "$cc" "${sysroot[@]}" -O2 -o "$tmp/pause" "$tmp/pause.c"
  extra=(--baseline "$tmp/pause")
fi
ES_TEST_WRAP="$wrap" python3 "$root/bench/footprint.py" --agent "$build/edge-agent/edge-agent" \
  --cli "$cli" --strip "$strip" "${extra[@]}" "$@"
