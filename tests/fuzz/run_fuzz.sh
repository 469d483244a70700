#!/usr/bin/env bash
# Builds the link's libFuzzer target with clang (ASan + UBSan) from the
# repository's sources into a temporary directory, runs it on a copy of the
# seed corpus for N seconds, and fails on any crash, leak or sanitizer
# report. Fails, never skips, when clang or its libFuzzer runtime is missing
# (Debian: packages clang and libclang-rt-14-dev, see scripts/deps.sh).
#
#   tests/fuzz/run_fuzz.sh [seconds]      (default 30, or ES_FUZZ_SECONDS)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
seconds="${1:-${ES_FUZZ_SECONDS:-30}}"
cc="${CLANG:-clang}"

if ! command -v "$cc" >/dev/null 2>&1; then
  echo "run_fuzz: FAIL: $cc not found (install clang: scripts/deps.sh)" >&2
  exit 2
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/es-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

# A trivial target first, so a missing runtime says so rather than looking
# like a bug in ours.
printf '#include <stdint.h>\n#include <stddef.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' >"$work/probe.c"
if ! "$cc" -fsanitize=fuzzer "$work/probe.c" -o "$work/probe" 2>"$work/probe.log"; then
  echo "run_fuzz: FAIL: $cc cannot link a libFuzzer target (is libclang-rt-14-dev installed?):" >&2
  sed 's/^/  /' "$work/probe.log" >&2
  exit 2
fi

core="$root/firmware-host/core"
"$cc" -g -O1 -std=c99 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
  -I"$core" "$here/link_fuzz.c" "$core/link.c" -o "$work/link_fuzz"

mkdir -p "$work/corpus" "$work/artifacts"
cp "$here/corpus/link/"* "$work/corpus/"
echo "run_fuzz: link_fuzz for ${seconds}s on $(ls "$work/corpus" | wc -l) seeds"
status=0
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  "$work/link_fuzz" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 \
  -artifact_prefix="$work/artifacts/" "$work/corpus" >"$work/fuzz.log" 2>&1 || status=$?
tail -n 5 "$work/fuzz.log"
if [ $status -ne 0 ] || [ -n "$(ls -A "$work/artifacts")" ]; then
  echo "run_fuzz: FAIL: link_fuzz exited $status; the log:" >&2
  tail -n 60 "$work/fuzz.log" >&2
  for a in "$work/artifacts/"*; do
    [ -e "$a" ] || continue
    echo "run_fuzz: crashing input $(basename "$a"): $(od -An -tx1 "$a" | head -c 600)" >&2
  done
  exit 1
fi
echo "run_fuzz: no crash"
