#!/usr/bin/env bash
# The test command: installs what is missing, builds with warnings as
# errors, and runs every test (unit and integration) with ctest.
# Exits non-zero on any failure.
#
#   scripts/test.sh [--sanitize] [--repeat N] [--load] [CTEST ARGS...]
#
# --sanitize builds into build-asan/ with AddressSanitizer and
# UndefinedBehaviorSanitizer and runs the same tests there (CI does both).
# --repeat N hunts flaky tests: runs the selection N times (by default the
# integration, fault and cluster labels: -L 'integration|fault|cluster'),
# every run to its end, each run's output in <build>/repeat/run-K.log, then
# prints a table of each test's failures and slowest time.
# --load keeps one core busy with stress-ng (--cpu 1) while the tests run,
# the machine of a user who has other work going on.
# Other arguments go to ctest (e.g. -L unit, -R journal).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${ES_BUILD_DIR:-$root/build}"
options=(-DES_WERROR=ON)
repeat=0
load=0
while [ $# -gt 0 ]; do
  case "$1" in
    --sanitize)
      build="${ES_BUILD_DIR:-$root/build-asan}"
      options+=(-DES_SANITIZE=ON -DES_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=Debug)
      export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
      export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
      shift ;;
    --repeat)
      repeat="${2:-}"
      if ! [[ "$repeat" =~ ^[1-9][0-9]*$ ]]; then
        echo "test.sh: --repeat needs a number of runs (1 or more)" >&2
        exit 2
      fi
      shift 2 ;;
    --load) load=1; shift ;;
    *) break ;;
  esac
done
"$root/scripts/deps.sh"
ES_BUILD_DIR="$build" "$root/scripts/build.sh" "${options[@]}"
cd "$build"

stress_pid=""
stop_load() {
  if [ -n "$stress_pid" ]; then
    kill "$stress_pid" 2>/dev/null || true
    wait "$stress_pid" 2>/dev/null || true
    stress_pid=""
  fi
}
if [ "$load" = 1 ]; then
  stress-ng --cpu 1 --timeout 0 --quiet &
  stress_pid=$!
  trap stop_load EXIT
  trap 'stop_load; exit 130' INT TERM
  echo "test.sh: one core kept busy by stress-ng --cpu 1 (pid $stress_pid)"
fi

if [ "$repeat" = 0 ]; then
  status=0
  ctest --output-on-failure --timeout 600 "$@" || status=$?
  stop_load
  exit $status
fi

# ---- --repeat N ----------------------------------------------------------------
selection=("$@")
if ! printf '%s\n' "$@" | grep -qxE -- '-L|-LE|-R|-E|--label-regex|--tests-regex'; then
  selection=(-L 'integration|fault|cluster' "$@")
fi
mkdir -p repeat
rm -f repeat/run-*.log
failed_runs=0
for ((k = 1; k <= repeat; k++)); do
  echo "test.sh: run $k of $repeat: ctest ${selection[*]}"
  if ! ctest --output-on-failure --timeout 600 "${selection[@]}" >"repeat/run-$k.log" 2>&1; then
    failed_runs=$((failed_runs + 1))
  fi
  grep -E '(tests passed|Test +#[0-9]+: .*(Failed|Timeout|Exception|Not Run))' \
    "repeat/run-$k.log" | sed 's/^/  /' || true
done
stop_load
# One line a test: how many runs it failed, and its slowest time.
awk -v runs="$repeat" '
  match($0, /Test +#[0-9]+: [^ ]+ /) {
    split(substr($0, RSTART, RLENGTH), f, " ")
    name = f[3]
    if (!(name in seen)) { seen[name] = 1; order[++n] = name }
    bad = ($0 ~ /\*\*\*(Failed|Timeout|Exception)|Not Run/) ? 1 : 0
    skipped = ($0 ~ /Skipped/) ? 1 : 0
    fails[name] += bad; skips[name] += skipped
    if (match($0, /[0-9.]+ sec/)) {
      t = substr($0, RSTART, RLENGTH - 4) + 0
      if (t > slowest[name]) slowest[name] = t
    }
  }
  END {
    printf "\n%-34s %8s %9s\n", "test (" runs " runs)", "failed", "slowest"
    for (i = 1; i <= n; i++) {
      name = order[i]
      note = skips[name] ? "  (skipped " skips[name] ")" : ""
      printf "%-34s %4d/%-3d %8.1fs%s\n", name, fails[name], runs, slowest[name], note
    }
  }' repeat/run-*.log
echo
echo "test.sh: $((repeat - failed_runs)) of $repeat runs passed; logs in $build/repeat/"
[ "$failed_runs" = 0 ]
