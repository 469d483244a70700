#!/usr/bin/env bash
# Builds one libFuzzer target with clang (ASan + UBSan) from the repository's
# sources into a temporary directory, runs it on a copy of its seed corpus
# (tests/fuzz/corpus/TARGET/) for SECONDS, and fails on any crash, leak,
# timeout or sanitizer report, printing the crashing input in hex. Fails,
# never skips, when clang or its libFuzzer runtime is missing (Debian:
# packages clang and libclang-rt-14-dev, see scripts/deps.sh).
#
#   tests/fuzz/run_fuzz.sh SRCDIR TARGET [SECONDS]
#
# TARGET is link, event, config, topic or params (TARGET_fuzz.c here).
# SECONDS defaults to ES_FUZZ_SECONDS, else 30. Environment:
#   ES_FUZZ_KEEP=DIR       copy the grown corpus into DIR at the end
#   ES_FUZZ_ARTIFACTS=DIR  where crashing inputs are kept (default: .)
#   ES_FUZZ_BUILD=FILE     only build the fuzzer into FILE, run nothing
#   ES_FUZZ_ARGS="..."     more libFuzzer flags (-jobs=4 -workers=4 ...)
# See tests/fuzz/README.md for long runs.
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 SRCDIR TARGET [SECONDS]" >&2
  exit 2
fi
root=$(cd "$1" && pwd)
target="$2"
seconds="${3:-${ES_FUZZ_SECONDS:-30}}"
here="$root/tests/fuzz"
cc="${CLANG:-clang}"
common="$root/common"

# Sources and libraries per target: only what each needs. pkg-config's
# output is split into words on purpose.
# shellcheck disable=SC2207
case "$target" in
link)
  srcs=("$root/firmware-host/core/link.c"); incs=(-I"$root/firmware-host/core"); libs=()
  max_len=2048 ;;
event)
  srcs=("$common"/{event,jsoncheck,utf8,clock}.c); incs=(-I"$common" $(pkg-config --cflags libcjson))
  libs=($(pkg-config --libs libcjson)); max_len=16384 ;;
config)
  srcs=("$common"/config*.c "$common"/log.c); incs=(-I"$common")
  libs=($(pkg-config --libs inih) -lpthread); max_len=4096 ;;
topic)
  srcs=("$common"/{topic,utf8}.c); incs=(-I"$common"); libs=(); max_len=2048 ;;
batch)
  srcs=("$common"/{batch,batch_dict,event,grow,jsoncheck,utf8,clock,topic,log}.c)
  incs=(-I"$common" $(pkg-config --cflags libcjson))
  libs=($(pkg-config --libs libcjson zlib libzstd) -lpthread); max_len=8192 ;;
params)
  # es_japi_parse_u64 lives in japi.c, which needs the rest of es_common
  # (common/CMakeLists.txt's es_common: every file but httpc.c, es_httpc).
  srcs=($(ls "$common"/*.c | grep -v '/httpc\.c$')); incs=(-I"$common" $(pkg-config --cflags libcjson))
  libs=($(pkg-config --libs libcjson inih sqlite3 libcrypt openssl librabbitmq zlib libzstd) -lpaho-mqtt3as
        -lcivetweb -lpthread)
  max_len=256 ;;
*)
  echo "run_fuzz: FAIL: unknown target '$target'" >&2
  exit 2 ;;
esac

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

bin="$work/${target}_fuzz"
"$cc" -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
  -fno-sanitize-recover=all -fno-omit-frame-pointer "${incs[@]}" \
  "$here/${target}_fuzz.c" "${srcs[@]}" "${libs[@]}" -o "$bin"
if [ -n "${ES_FUZZ_BUILD:-}" ]; then
  cp "$bin" "$ES_FUZZ_BUILD"
  echo "run_fuzz: built $ES_FUZZ_BUILD"
  exit 0
fi

mkdir -p "$work/corpus" "$work/artifacts"
cp "$here/corpus/$target/"* "$work/corpus/"
echo "run_fuzz: ${target}_fuzz for ${seconds}s on $(find "$work/corpus" -type f | wc -l) seeds"
status=0
# shellcheck disable=SC2086 # ES_FUZZ_ARGS is a list of flags
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
  "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="$max_len" \
  -print_final_stats=1 -artifact_prefix="$work/artifacts/" ${ES_FUZZ_ARGS:-} \
  "$work/corpus" >"$work/fuzz.log" 2>&1 || status=$?
grep -E '^(stat::number_of_executed_units|stat::new_units_added)|^#[0-9]+ +DONE' \
  "$work/fuzz.log" || tail -n 3 "$work/fuzz.log"
if [ -n "${ES_FUZZ_KEEP:-}" ]; then
  mkdir -p "$ES_FUZZ_KEEP"
  cp "$work/corpus/"* "$ES_FUZZ_KEEP/"
  echo "run_fuzz: grown corpus ($(find "$work/corpus" -type f | wc -l) inputs) kept in $ES_FUZZ_KEEP"
fi
if [ $status -ne 0 ] || [ -n "$(ls -A "$work/artifacts")" ]; then
  echo "run_fuzz: FAIL: ${target}_fuzz exited $status; the log:" >&2
  tail -n 60 "$work/fuzz.log" >&2
  keep="${ES_FUZZ_ARTIFACTS:-.}"
  for a in "$work/artifacts/"*; do
    [ -e "$a" ] || continue
    cp "$a" "$keep/${target}-$(basename "$a")" 2>/dev/null || true
    echo "run_fuzz: crashing input $(basename "$a") ($(wc -c <"$a") bytes, kept as" \
      "$keep/${target}-$(basename "$a")):" >&2
    od -An -tx1 -v "$a" | head -n 64 >&2
  done
  exit 1
fi
echo "run_fuzz: no crash"
