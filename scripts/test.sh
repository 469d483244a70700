#!/usr/bin/env bash
# The test command: installs what is missing, builds with warnings as
# errors, and runs every test (unit and integration) with ctest.
# Exits non-zero on any failure. Extra arguments go to ctest (e.g. -L unit).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${ES_BUILD_DIR:-$root/build}"
"$root/scripts/deps.sh"
ES_BUILD_DIR="$build" "$root/scripts/build.sh" -DES_WERROR=ON
cd "$build"
ctest --output-on-failure --timeout 600 "$@"
