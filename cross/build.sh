#!/usr/bin/env bash
# Cross-builds edgespool for ARCH into build-ARCH/ (or $ES_BUILD_DIR), with
# warnings as errors, checks the stripped programs against
# cross/size-budget.txt, and makes the .deb packages when the build has a
# CPack configuration. Extra arguments go to cmake's configure step.
#
#   cross/build.sh aarch64|armhf [CMAKE ARGS...]
#
# It first runs cross/sysroot.sh ARCH (the compiler, qemu-user and the
# target's libraries; a no-op when they are there).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
arch="${1:-}"
case "$arch" in
aarch64) triple=aarch64-linux-gnu ;;
armhf) triple=arm-linux-gnueabihf ;;
*)
  echo "usage: cross/build.sh aarch64|armhf [CMAKE ARGS...]" >&2
  exit 2
  ;;
esac
shift
build="${ES_BUILD_DIR:-$root/build-$arch}"

"$root/cross/sysroot.sh" "$arch"
# The benchmarks stay native: bench/footprint.py drives a cross agent from
# the native load tools.
cmake -S "$root" -B "$build" -DCMAKE_TOOLCHAIN_FILE="$root/cross/toolchain-$arch.cmake" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DES_WERROR=ON -DES_BUILD_BENCH=OFF "$@" >/dev/null
cmake --build "$build" -j "$(nproc)"

"$root/cross/size-check.sh" "$triple-strip" "$arch" "$root/cross/size-budget.txt" \
  "$build/edge-agent/edge-agent" "$build/cloud-bridge/cloud-bridge" \
  "$build/cli/edgespool" "$build/firmware-host/firmware-host" "$build/fleet-state/fleet-state"

# Packaging is the top-level CMakeLists' business (CPack); build it when
# the project has it.
if [ -f "$build/CPackConfig.cmake" ]; then
  cmake --build "$build" --target package
fi
