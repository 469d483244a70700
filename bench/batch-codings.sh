#!/usr/bin/env bash
# batch-codings.sh - bytes per event of each batch coding, per batch size,
# on the demo's events as a real agent publishes them: the measurement
# behind the uplink's choice of coding (docs/decisions.md).
#
#   bench/batch-codings.sh [--events FILE] [--dict FILE]... [--sizes 1,2,5,10,100] [BUILD_DIR]
#
# Without --events it first captures 20,000 events with bench/demo-events.sh
# (the demo's fleet of 8 firmware-host devices through a real edge-agent;
# node demo/gw-1, seed 1: not the events the dictionaries were trained on).
# Each coding runs es-bench-batch (bench/batch_codings.c): consecutive events
# cut into batches of each size, encoded, decoded again and compared (for the
# codings of this build's own dictionaries and those without one). A --dict
# FILE adds zstd and deflate with that file as the dictionary (candidates,
# e.g. `zstd --train` output of other sizes: encoded only).
# Prints one table: payload bytes per event for each size, then the MQTT
# 3.1.1 bytes per event (framing on the batch topic and the PUBACK added) at
# size 1 and 100, and the CPU microseconds per event to encode at size 1 and
# 100. A measurement: exit 0 unless a program failed.
set -uo pipefail

EVENTS=
DICTS=()
SIZES=1,2,5,10,100
BUILD=./build
while (($#)); do
	case $1 in
	--events) EVENTS=$2 && shift ;;
	--dict) DICTS+=("$2") && shift ;;
	--sizes) SIZES=$2 && shift ;;
	-*)
		echo "usage: $0 [--events FILE] [--dict FILE]... [--sizes LIST] [BUILD_DIR]" >&2
		exit 2
		;;
	*) BUILD=$1 ;;
	esac
	shift
done
here=$(cd "$(dirname "$0")" && pwd)
BIN=$BUILD/bench/es-bench-batch
[[ -x $BIN ]] || {
	echo "batch-codings: $BIN is missing: build $BUILD first" >&2
	exit 1
}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/es-batch-codings.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
if [[ -z $EVENTS ]]; then
	EVENTS=$TMP/events.ndjson
	"$here/demo-events.sh" "$BUILD" "$EVENTS" || exit 1
fi

# The codings compared: "label coding level [dict file]".
runs=("identity identity 0" "deflate-1 deflate 1" "deflate-6 deflate 6" "deflate-9 deflate 9")
for l in 1 3 6 9 15 19; do runs+=("zstd-$l zstd $l"); done
for l in 6 9; do runs+=("deflate-$l+d1 deflate,d1 $l"); done
for l in 1 3 6 9 15 19; do runs+=("zstd-$l+d1 zstd,d1 $l"); done
for f in "${DICTS[@]}"; do
	n=$(basename "$f")
	runs+=("deflate-9+$n deflate 9 $f" "zstd-3+$n zstd 3 $f" "zstd-9+$n zstd 9 $f" "zstd-19+$n zstd 19 $f")
done

field() { # LINE KEY
	tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"
}

IFS=, read -ra sizes <<<"$SIZES"
printf '%-22s' "coding"
for s in "${sizes[@]}"; do printf '%8s' "n=$s"; done
printf '   %s\n' "| mqtt311 n=${sizes[0]} n=${sizes[-1]} | enc us n=${sizes[0]} n=${sizes[-1]} | dec us n=${sizes[-1]}"
for r in "${runs[@]}"; do
	read -r label coding level dict <<<"$r"
	args=(--events "$EVENTS" --coding "$coding" --level "$level" --sizes "$SIZES" --label "$label")
	[[ -n ${dict:-} ]] && args+=(--dict "$dict")
	out=$("$BIN" "${args[@]}") || {
		echo "batch-codings: $label failed" >&2
		exit 1
	}
	mapfile -t lines <<<"$out"
	printf '%-22s' "$label"
	for l in "${lines[@]}"; do printf '%8s' "$(field "$l" per_event)"; done
	printf '   | %7s %6s | %7s %6s | %6s\n' "$(field "${lines[0]}" mqtt311_per_event)" \
		"$(field "${lines[-1]}" mqtt311_per_event)" "$(field "${lines[0]}" enc_us)" \
		"$(field "${lines[-1]}" enc_us)" "$(field "${lines[-1]}" dec_us)"
done
echo "payload bytes per event ($(wc -l <"$EVENTS") events of $(awk '{s += length($0)} END {printf "%.0f", s / NR}' "$EVENTS") B on average)"
