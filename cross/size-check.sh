#!/usr/bin/env bash
# Fails when a program, stripped, is larger than its budget.
#
#   cross/size-check.sh STRIP ARCH BUDGETS PROGRAM...
#
# STRIP is the strip of the program's architecture (strip, or
# aarch64-linux-gnu-strip, ...); each PROGRAM is stripped into a temporary
# copy, never in place. BUDGETS (cross/size-budget.txt) has one line per
# program and architecture: NAME ARCH MAX_BYTES. ARCH is x86_64, aarch64 or
# armhf. Shared libraries are not counted: the programs link them.
set -euo pipefail
strip="$1" arch="$2" budgets="$3"
shift 3
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
rc=0
for prog in "$@"; do
  name="$(basename "$prog")"
  budget="$(awk -v n="$name" -v a="$arch" '$1 == n && $2 == a { print $3 }' "$budgets")"
  "$strip" -o "$tmp/$name" "$prog"
  size="$(stat -c %s "$tmp/$name")"
  if [ -z "$budget" ]; then
    echo "size: $name on $arch is $size bytes stripped, and has no budget in $budgets" >&2
    rc=1
    continue
  fi
  verdict="ok"
  if [ "$size" -gt "$budget" ]; then
    verdict="OVER BUDGET"
    rc=1
  fi
  printf '%-14s %-8s %9d bytes stripped, budget %9d: %s\n' "$name" "$arch" "$size" "$budget" "$verdict"
done
exit $rc
