#!/usr/bin/env bash
# uplink.sh - edgespool's site bridge sending batches (cloud-bridge with
# --cloud.format batch) against mosquitto's own bridge, over a slow WAN link
# emulated on this machine, in one run: bytes on the wire per event, the
# drain of a backlog built while the link was down, and the latency of
# alarms posted during that drain.
#
#   bench/uplink.sh [--quick] [BUILD_DIR]      (BUILD_DIR defaults to ./build)
#
# Root is needed: two network namespaces, "site" and "cloud", joined by a
# veth pair (10.77.0.1/24 site, 10.77.0.2/24 cloud); the site side's egress
# is shaped by a token bucket (tbf 1mbit, burst 16kb, latency 400ms: a poor
# LTE uplink). This script makes the link and removes it on exit; bench/
# uplink.py, run inside the site namespace, starts the programs (the cloud
# side through `ip netns exec`), takes the link down and up, measures and
# reports. See bench/README.md, "The uplink over a shaped link".
#
# A benchmark reports, it does not judge: exit 0 whatever the figures (and
# "skipped: ..." when namespaces cannot be made here). Exit 1 when something
# broke: a program failed, a timeout passed, an event never arrived.
set -uo pipefail

usage() {
	echo "usage: $0 [--quick | --check] [BUILD_DIR]" >&2
	exit 2
}

# --check: the ctest scenario (it_uplink_shaped): ours only, asserting
# behaviour (every event once; an alarm posted during the drain passes the
# backlog), no figures judged; a set-up this machine cannot give exits 77,
# which ctest shows as skipped with the reason.
QUICK=()
SKIP_STATUS=0
BUILD=./build
while (($#)); do
	case $1 in
	--quick) QUICK=(--quick) ;;
	--check) QUICK=(--check) SKIP_STATUS=77 ;;
	-*) usage ;;
	*) BUILD=$1 ;;
	esac
	shift
done

skip() { # a set-up this machine cannot give: no figures, not a failure
	echo "uplink.sh: skipped: $*"
	exit "$SKIP_STATUS"
}

die() {
	echo "uplink.sh: FAILED: $*" >&2
	exit 1
}

HERE=$(cd "$(dirname "$0")" && pwd)
for b in edge-agent/edge-agent cloud-bridge/cloud-bridge cli/edgespool \
	firmware-host/firmware-host; do
	[[ -x $BUILD/$b ]] || die "$BUILD/$b is missing: build $BUILD first"
done
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
[[ -x $MOSQUITTO ]] || die "mosquitto is not installed"
command -v python3 >/dev/null || die "python3 is not installed"
((EUID == 0)) || skip "root is needed for network namespaces"
if ! command -v ip >/dev/null || ! command -v tc >/dev/null; then
	skip "ip and tc (iproute2) are needed"
fi

# Names unique to this run, so that two runs (or a leftover) never collide.
SITE=es-site-$$ CLOUD=es-cloud-$$
VS=es-s$$ VC=es-c$$ # interface names: at most 15 characters
NETNS_MADE=()
PY_PID=

cleanup() {
	local ns pid i
	if [[ -n $PY_PID ]] && kill -0 "$PY_PID" 2>/dev/null; then
		# Interrupted: uplink.py stops its programs and removes its files
		# on SIGTERM; give it the time its own stops may take.
		kill -TERM "$PY_PID" 2>/dev/null
		for ((i = 0; i < 1200; i++)); do
			kill -0 "$PY_PID" 2>/dev/null || break
			sleep 0.05
		done
	fi
	for ns in "${NETNS_MADE[@]}"; do
		# uplink.py stops what it started; anything left in our namespaces
		# (a crash of the helper) is ours too, by id.
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			kill -KILL "$pid" 2>/dev/null
		done
		ip netns delete "$ns" 2>/dev/null # takes its end of the veth pair with it
	done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# make_link: the two namespaces and the shaped veth between them; skips
# (exit 0) when this kernel or container will not give them.
make_link() {
	ip netns add "$SITE" 2>/dev/null || skip "cannot make a network namespace (ip netns add failed)"
	NETNS_MADE+=("$SITE")
	ip netns add "$CLOUD" 2>/dev/null || skip "cannot make a second network namespace"
	NETNS_MADE+=("$CLOUD")
	ip link add "$VS" netns "$SITE" type veth peer name "$VC" netns "$CLOUD" 2>/dev/null ||
		skip "cannot make a veth pair"
	if ! { ip -n "$SITE" addr add 10.77.0.1/24 dev "$VS" &&
		ip -n "$CLOUD" addr add 10.77.0.2/24 dev "$VC" &&
		ip -n "$SITE" link set lo up && ip -n "$CLOUD" link set lo up &&
		ip -n "$SITE" link set "$VS" up && ip -n "$CLOUD" link set "$VC" up; }; then
		die "cannot configure the veth pair"
	fi
	# Only the site's egress is shaped: an LTE uplink is the slow way.
	tc -n "$SITE" qdisc add dev "$VS" root tbf rate 1mbit burst 16kb latency 400ms 2>/dev/null ||
		skip "no tbf qdisc in this kernel (tc qdisc add ... tbf failed)"
}

# main: the link, then uplink.py inside the site namespace: its sockets (the
# HTTP posts to the agent), its view of /sys/class/net (the veth's
# counters) and its `ip link` commands are the site's. It runs in the
# background and is waited for, so that a signal runs the trap at once.
main() {
	make_link
	ip netns exec "$SITE" python3 "$HERE/uplink.py" "${QUICK[@]}" \
		--build "$(cd "$BUILD" && pwd)" --mosquitto "$MOSQUITTO" --cloud-ns "$CLOUD" \
		--site-if "$VS" &
	PY_PID=$!
	wait "$PY_PID"
}

main
