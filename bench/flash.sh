#!/usr/bin/env bash
# What the journals cost a flash card, and the daemons' own memory: bytes
# written per event, commits and fsyncs per second, arrival-to-commit
# latency, RSS and USS of the agent, the bridge and fleet-state, for the
# device link and HTTP (see bench/flash.py and bench/README.md, "Flash and
# memory"). It builds nothing.
#
#   bench/flash.sh [BUILD_DIR] [flash.py options: --seconds S, --only dev20,http1,
#                   --agent-arg=--journal.linger_ms --agent-arg=0, --json FILE]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${ES_BUILD_DIR:-$root/build}"
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
  build="$1"
  shift
fi
exec python3 "$root/bench/flash.py" --agent "$build/edge-agent/edge-agent" \
  --cli "$build/cli/edgespool" --bridge "$build/cloud-bridge/cloud-bridge" \
  --fw "$build/firmware-host/firmware-host" --fleet "$build/fleet-state/fleet-state" "$@"
