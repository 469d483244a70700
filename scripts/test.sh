#!/usr/bin/env bash
# The test command: installs what is missing, builds with warnings as
# errors, and runs every test (unit and integration) with ctest.
# Exits non-zero on any failure.
#
#   scripts/test.sh [--sanitize] [CTEST ARGS...]
#
# --sanitize builds into build-asan/ with AddressSanitizer and
# UndefinedBehaviorSanitizer and runs the same tests there (CI does both).
# Other arguments go to ctest (e.g. -L unit, -R journal).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${ES_BUILD_DIR:-$root/build}"
options=(-DES_WERROR=ON)
if [ "${1:-}" = "--sanitize" ]; then
  shift
  build="${ES_BUILD_DIR:-$root/build-asan}"
  options+=(-DES_SANITIZE=ON -DES_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=Debug)
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
fi
"$root/scripts/deps.sh"
ES_BUILD_DIR="$build" "$root/scripts/build.sh" "${options[@]}"
cd "$build"
ctest --output-on-failure --timeout 600 "$@"
