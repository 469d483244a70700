#!/usr/bin/env bash
# Fails when a C file differs from what clang-format makes of it with the
# repository's .clang-format. One clang-format process for all files (one per
# file took 100 s on a busy machine, near the test's time-out).
set -euo pipefail
root="$1"
cd "$root"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t files < <(git ls-files '*.c' '*.h')
else
  mapfile -t files < <(find common edge-agent cloud-bridge fleet-state cli bench tests firmware-host -name '*.[ch]')
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
if clang-format --dry-run --Werror "${files[@]}" >/dev/null 2>"$out"; then
  echo "every C file (${#files[@]}) matches .clang-format"
  exit 0
fi
# Its complaints read "FILE:LINE:COL: error: code should be clang-formatted".
bad=$(sed -n 's/^\([^:]*\):[0-9]*:[0-9]*: error: .*clang-formatted.*/\1/p' "$out" | sort -u)
if [ -z "$bad" ]; then
  cat "$out" >&2 # clang-format failed for another reason: say it
else
  for f in $bad; do echo "not formatted: $f (run: clang-format -i $f)" >&2; done
fi
exit 1
