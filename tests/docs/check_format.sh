#!/usr/bin/env bash
# Fails when a C file differs from what clang-format makes of it with the
# repository's .clang-format.
set -euo pipefail
root="$1"
cd "$root"
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find common edge-agent cli bench tests -name '*.[ch]')
bad=0
for f in $files; do
  if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
    echo "not formatted: $f (run: clang-format -i $f)" >&2
    bad=1
  fi
done
[ $bad -eq 0 ] && echo "every C file matches .clang-format"
exit $bad
