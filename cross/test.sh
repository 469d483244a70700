#!/usr/bin/env bash
# Cross-builds edgespool for ARCH (cross/build.sh) and runs, under
# qemu-user, the unit tests, the fuzz corpora replays, the stripped size
# check and the integration tests labelled `qemu` (the agent and the CLI
# emulated, publishing to a native mosquitto on loopback; Python native).
# Exits non-zero on any failure. Extra arguments go to ctest.
#
#   cross/test.sh aarch64|armhf [CTEST ARGS...]
#
# mosquitto and python3 come from scripts/deps.sh.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
arch="${1:-}"
case "$arch" in
aarch64 | armhf) ;;
*)
  echo "usage: cross/test.sh aarch64|armhf [CTEST ARGS...]" >&2
  exit 2
  ;;
esac
shift
build="${ES_BUILD_DIR:-$root/build-$arch}"
ES_BUILD_DIR="$build" "$root/cross/build.sh" "$arch"
cd "$build"
ctest --output-on-failure --timeout 600 -L 'unit|qemu' "$@"
