#!/usr/bin/env bash
# demo-events.sh - the demo's events, as they leave a real agent: a
# firmware-host fleet on a pty into a real edge-agent, publishing to a real
# mosquitto; every event published is written, one JSON line each, to OUT
# (a subscriber on <root>/+/+/ev/#). Used to measure batch codings
# (bench/batch-codings.sh) and to train the batch dictionary
# (scripts/batch-dict.sh).
#
#   bench/demo-events.sh [--devices N] [--rate R] [--seed S] [--site S] [--node N]
#                        [--count K] BUILD_DIR OUT
#
# Defaults: the demo's fleet (scripts/run.sh: 8 devices), 25 records/s per
# device so that it takes seconds, not hours; site "demo", node "gw-1";
# K = 2,500 records per device. Exits 0 once every record's event is in OUT,
# 1 when something failed (the logs' tails are printed).
set -uo pipefail

DEVICES=8 RATE=25 SEED=1 SITE=demo NODE=gw-1 COUNT=2500
while (($# > 2)); do
	case $1 in
	--devices) DEVICES=$2 ;;
	--rate) RATE=$2 ;;
	--seed) SEED=$2 ;;
	--site) SITE=$2 ;;
	--node) NODE=$2 ;;
	--count) COUNT=$2 ;;
	*)
		echo "usage: $0 [--devices N] [--rate R] [--seed S] [--site S] [--node N] [--count K] BUILD_DIR OUT" >&2
		exit 2
		;;
	esac
	shift 2
done
(($# == 2)) || {
	echo "usage: $0 [options] BUILD_DIR OUT" >&2
	exit 2
}
BUILD=$1 OUT=$2
AGENT=$BUILD/edge-agent/edge-agent
FW=$BUILD/firmware-host/firmware-host
HTTP=$BUILD/bench/es-bench-http
for b in "$AGENT" "$FW" "$HTTP"; do
	[[ -x $b ]] || {
		echo "demo-events: $b is missing: build $BUILD first" >&2
		exit 1
	}
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/es-demo-events.XXXXXX")
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null
	done
	rm -rf "$TMP"
}
trap cleanup EXIT

die() {
	echo "demo-events: FAILED: $*" >&2
	for log in "$TMP"/*.log; do
		[[ -s $log ]] && { echo "---- $(basename "$log")" >&2; tail -n 15 "$log" >&2; }
	done
	exit 1
}

wait_until() { # SECONDS WHAT COMMAND...: polls COMMAND every 50 ms
	local deadline=$((SECONDS + $1)) what=$2
	shift 2
	until "$@"; do
		((SECONDS <= deadline)) || die "timed out waiting for $what"
		sleep 0.05
	done
}

port=$("$HTTP" free-port) || die "no free port"
http=$("$HTTP" free-port) || die "no free port"
cat >"$TMP/mosquitto.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 0
$([[ $(id -u) == 0 ]] && echo "user root")
CONF
mosquitto -c "$TMP/mosquitto.conf" >"$TMP/mosquitto.log" 2>&1 &
PIDS+=($!)
wait_until 10 "mosquitto" bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null

mosquitto_sub -p "$port" -q 1 -t 'edgespool/+/+/ev/#' >"$OUT" 2>"$TMP/sub.log" &
PIDS+=($!)

"$FW" --devices "$DEVICES" --rate "$RATE" --seed "$SEED" --count "$COUNT" --timeout 600 \
	--link "pty:$TMP/tty" --ready "$TMP/ready" >"$TMP/fleet.log" 2>&1 &
FW_PID=$!
PIDS+=($FW_PID)
wait_until 10 "the fleet's pty" test -e "$TMP/ready"

"$AGENT" --node.site "$SITE" --node.id "$NODE" --mqtt.url "mqtt://127.0.0.1:$port" \
	--journal.path "$TMP/agent.db" --journal.sync normal --http.listen "127.0.0.1:$http" \
	--link.serial "$TMP/tty" --log.level warn >"$TMP/agent.log" 2>&1 &
PIDS+=($!)

want=$((DEVICES * COUNT))
have() {
	local n
	n=$(wc -l <"$OUT")
	((n >= want))
}
wait_until 900 "$want events on the broker" have
wait "$FW_PID" || die "firmware-host exited with status $?"
echo "demo-events: $(wc -l <"$OUT") events, $(wc -c <"$OUT") bytes in $OUT" >&2
