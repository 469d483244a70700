#!/usr/bin/env bash
# bridge.sh - edgespool's cloud bridge against mosquitto's own bridge, end to
# end, in one run, on loopback, with real mosquitto brokers.
#
#   bench/bridge.sh [--quick] [--rounds K] [--agent-batch] [BUILD_DIR]
#                                                  (BUILD_DIR defaults to ./build)
#
# Builds nothing: it runs the programs of BUILD_DIR (configure with the default
# ES_BUILD_BENCH=ON). Every run feeds N events of ~300 B to the real edge-agent
# (journal.sync=full) through its HTTP front door (es-bench-http load: 4
# keep-alive connections, POSTs of 100 events) and times them from the first
# POST until a subscriber on the cloud broker (es-bench-cloud-sub, QoS 1) has
# received all N distinct event ids. Each round measures, one after the
# other and each with fresh brokers (three rounds or --rounds K, medians
# reported; --quick: 5,000 events and one round, a smoke run):
#   ours       agent -> edge mosquitto -> cloud-bridge (journal.sync=full,
#              de-duplicating inbox) -> cloud mosquitto -> subscriber
#   mosquitto  agent -> edge mosquitto, whose config bridges to the cloud
#              mosquitto (connection, topic edgespool/# out 1, cleansession
#              false) -> cloud mosquitto -> subscriber
#   direct     agent -> one mosquitto -> subscriber (no bridge: the reference)
# --agent-batch (or ES_BENCH_AGENT_BATCH=1): in "ours" the agent sends
# batches to the edge broker (mqtt.format batch, its default coding and
# caps), which the bridge reads (issue 15); the others are unchanged.
# Before each load the subscriber publishes probe events at the edge until
# one comes out in the cloud: the whole path is up before the clock starts.
#
# A benchmark reports, it does not judge: exit 0 whatever the figures. Exit 1
# when something broke (a program failed, a crash, a timeout, an event
# missing or delivered at QoS 0). Waits poll their condition with a deadline;
# nothing sleeps to synchronise.
set -uo pipefail

usage() {
	echo "usage: $0 [--quick] [--rounds K] [--agent-batch] [BUILD_DIR]" >&2
	exit 2
}

QUICK=0
AGENT_BATCH=${ES_BENCH_AGENT_BATCH:-0}
ROUNDS=
BUILD=./build
while (($#)); do
	case $1 in
	--quick) QUICK=1 ;;
	--agent-batch) AGENT_BATCH=1 ;;
	--rounds)
		[[ ${2:-} =~ ^[1-9][0-9]?$ ]] || usage
		ROUNDS=$2
		shift
		;;
	-*) usage ;;
	*) BUILD=$1 ;;
	esac
	shift
done

if ((QUICK)); then
	N=5000 ROUNDS=${ROUNDS:-1}
else
	N=100000 ROUNDS=${ROUNDS:-3}
fi
SIZE=300 THREADS=4 BATCH=100
FILTER='edgespool/+/+/ev/#'

HTTP=$BUILD/bench/es-bench-http
SUB=$BUILD/bench/es-bench-cloud-sub
AGENT=$BUILD/edge-agent/edge-agent
BRIDGE=$BUILD/cloud-bridge/cloud-bridge
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)

TMP=
EDGE_PID=
CLOUD_PID=
AGENT_PID=
BRIDGE_PID=
SUB_PID=
SAMPLER_PID=

# ---- failing and cleaning up -------------------------------------------------------

die() {
	echo "bridge.sh: FAILED: $*" >&2
	for log in "$TMP"/*.log; do
		[[ -s $log ]] || continue
		echo "---- tail of $(basename "$log") ----" >&2
		tail -n 20 "$log" >&2
	done
	exit 1
}

kill_wait() { # PID: SIGTERM, then SIGKILL if it is still there after 10 s
	local pid=$1 i
	[[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < 200; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
}

cleanup() {
	kill_wait "$SAMPLER_PID"
	kill_wait "$SUB_PID"
	kill_wait "$AGENT_PID"
	kill_wait "$BRIDGE_PID"
	kill_wait "$EDGE_PID"
	kill_wait "$CLOUD_PID"
	[[ -n $TMP ]] && rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- small helpers -----------------------------------------------------------------

field() { # LINE KEY: the value of key=value in a result line
	tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"
}

median() { # numbers...
	printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1}
		END {printf "%.0f\n", (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}

median1() { # numbers... : the median with one decimal
	printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1}
		END {printf "%.1f\n", (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}

ratio() { # A B: A/B with two decimals
	awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b > 0) ? a / b : 0}'
}

status_kb() { # PID FIELD: VmRSS or VmHWM of a live process, in kB
	awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status" 2>/dev/null
}

cpu_ticks() { # PID: user + system CPU time used so far, in clock ticks
	awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null
}

us_per_event() { # TICKS EVENTS: CPU microseconds per event
	awk -v t="$1" -v n="$2" -v hz="$CLK_TCK" 'BEGIN {printf "%.1f", t * 1e6 / hz / n}'
}

mb() { # kB -> MB with one decimal
	awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'
}

port_open() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

wait_port() { # PORT open|closed SECONDS
	local deadline=$((SECONDS + $3))
	while ((SECONDS <= deadline)); do
		if port_open "$1"; then [[ $2 == open ]] && return 0; else [[ $2 == closed ]] && return 0; fi
		sleep 0.02
	done
	die "port $1 still not $2 after $3 s"
}

free_port() { # a free loopback port not in use by this set-up yet
	local p
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		p=$("$HTTP" free-port) || die "no free port"
		[[ " ${USED_PORTS[*]} " == *" $p "* ]] || break
	done
	USED_PORTS+=("$p")
	echo "$p"
}

alive() { # PID NAME: dies unless the process is still running
	if [[ -z $1 ]] || ! kill -0 "$1" 2>/dev/null; then
		die "$2 died (see its log)"
	fi
}

# ---- the brokers -------------------------------------------------------------------

# make_broker_conf NAME PORT [BRIDGE_TO_PORT]: the broker of run.sh; with a
# third argument, also mosquitto's own bridge to the broker on that port.
make_broker_conf() {
	{
		echo "listener $2 127.0.0.1"
		echo "allow_anonymous true"
		echo "persistence false"
		echo "max_queued_messages 0"
		echo "log_dest stderr"
		[[ $(id -u) == 0 ]] && echo "user root"
		if [[ -n ${3:-} ]]; then
			echo "connection cloud"
			echo "address 127.0.0.1:$3"
			echo "remote_clientid es-bench-mosquitto-bridge"
			echo "bridge_protocol_version mqttv311"
			echo "try_private true"
			echo "cleansession false"
			echo "start_type automatic"
			echo "topic edgespool/# out 1"
		fi
	} >"$TMP/$1.conf"
}

# start_broker NAME PORT [BRIDGE_TO_PORT]: sets EDGE_PID or CLOUD_PID.
start_broker() {
	make_broker_conf "$@"
	"$MOSQUITTO" -c "$TMP/$1.conf" >>"$TMP/mosquitto-$1.log" 2>&1 &
	printf -v "${1^^}_PID" '%s' "$!"
	wait_port "$2" open 10
}

stop_brokers() {
	kill_wait "$EDGE_PID"
	kill_wait "$CLOUD_PID"
	EDGE_PID=''
	CLOUD_PID=
}

# ---- the agent and the bridge ------------------------------------------------------

# wait_healthz URL PID NAME T0: polls URL/healthz until 200 (es-bench-http).
wait_healthz() {
	timeout 60 "$HTTP" healthz --url "$1" --since "$4" --pid "$2" --timeout 30 >/dev/null ||
		die "$3 did not come up"
}

start_agent() { # EDGE_PORT [SETTING...]: sets AGENT_PID and AGENT_URL
	local port t0=$EPOCHREALTIME edge=$1
	shift
	port=$(free_port)
	AGENT_URL=http://127.0.0.1:$port
	"$AGENT" --node.id bench --node.site lab --mqtt.url "mqtt://127.0.0.1:$edge" \
		--journal.path "$TMP/agent.db" --journal.sync full --status.interval_s 10 \
		--http.listen "127.0.0.1:$port" --log.level warn "$@" >>"$TMP/agent.log" 2>&1 &
	AGENT_PID=$!
	wait_healthz "$AGENT_URL" "$AGENT_PID" "the agent" "$t0"
}

start_bridge() { # EDGE_PORT CLOUD_PORT: sets BRIDGE_PID and BRIDGE_URL
	local port t0=$EPOCHREALTIME
	port=$(free_port)
	BRIDGE_URL=http://127.0.0.1:$port
	"$BRIDGE" --node.id bench-bridge --node.site lab --edge.url "mqtt://127.0.0.1:$1" \
		--cloud.url "mqtt://127.0.0.1:$2" --journal.path "$TMP/bridge.db" \
		--journal.sync full --http.listen "127.0.0.1:$port" --log.level warn \
		--cloud.format events >>"$TMP/bridge.log" 2>&1 &
	BRIDGE_PID=$!
	wait_healthz "$BRIDGE_URL" "$BRIDGE_PID" "cloud-bridge" "$t0"
}

# stop_proc VAR NAME: SIGTERM the process in $VAR, wait (30 s at most) and
# require exit status 0.
stop_proc() {
	local -n pid=$1
	alive "$pid" "$2"
	kill -TERM "$pid"
	local deadline=$((SECONDS + 30)) rc
	while kill -0 "$pid" 2>/dev/null; do
		((SECONDS <= deadline)) || die "$2 did not stop within 30 s of SIGTERM"
		sleep 0.02
	done
	wait "$pid"
	rc=$?
	pid=
	((rc == 0)) || die "$2 exited with status $rc"
}

# ---- the cloud-side subscriber -----------------------------------------------------

# start_sub CLOUD_PORT EDGE_PORT: subscribes at the cloud, probes from the
# edge until a probe arrives; returns once it printed "ready".
start_sub() {
	: >"$TMP/sub.out"
	"$SUB" --url "mqtt://127.0.0.1:$1" --probe "mqtt://127.0.0.1:$2" -n "$N" \
		--filter "$FILTER" --timeout 600 >"$TMP/sub.out" 2>>"$TMP/sub.log" &
	SUB_PID=$!
	local deadline=$((SECONDS + 60))
	until grep -q '^ready ' "$TMP/sub.out"; do
		alive "$SUB_PID" "the cloud subscriber"
		((SECONDS <= deadline)) || die "no probe went through the bridge within 60 s"
		sleep 0.02
	done
}

# wait_sub: waits (with a deadline) for the subscriber to have all N ids and
# exit; sets SUB_LINE.
wait_sub() {
	local deadline=$((SECONDS + 660)) rc
	while kill -0 "$SUB_PID" 2>/dev/null; do
		((SECONDS <= deadline)) || die "the cloud subscriber did not finish"
		alive "$AGENT_PID" "the agent"
		sleep 0.02
	done
	wait "$SUB_PID"
	rc=$?
	SUB_PID=
	SUB_LINE=$(grep '^cloud_sub ' "$TMP/sub.out" | tail -n 1)
	((rc == 0)) || die "the cloud subscriber failed (status $rc): $SUB_LINE"
	[[ $(field "$SUB_LINE" distinct) == "$N" ]] || die "events missing: $SUB_LINE"
	[[ $(field "$SUB_LINE" qos0) == 0 && $(field "$SUB_LINE" overflow) == 0 ]] ||
		die "events arrived at QoS 0, or unexpected ids: $SUB_LINE"
}

# ---- one measured run ----------------------------------------------------------------

machine_ticks() { # "TOTAL IDLE": all CPUs' clock ticks so far, and the idle ones (with iowait)
	awk '$1 == "cpu" {print $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9, $5 + $6}' /proc/stat
}

pid_of() { # AGENT|EDGE|CLOUD|BRIDGE: that process's id
	local var=${1}_PID
	echo "${!var}"
}

# bridge_threads: cloud-bridge's CPU ticks by thread group, as "loop inbox
# rcv send http": the main loop thread; its other own threads (the inbox
# thread and the journal's writer); paho's receive and send threads; HTTP.
bridge_threads() {
	local t comm ticks
	local -A g=([loop]=0 [inbox]=0 [rcv]=0 [send]=0 [http]=0)
	for t in "/proc/$BRIDGE_PID/task/"*; do
		read -r comm <"$t/comm" 2>/dev/null || continue
		ticks=$(awk '{print $14 + $15}' "$t/stat" 2>/dev/null) || continue
		case $comm in
		MQTTAsync_rcv*) ((g[rcv] += ticks)) ;;
		MQTTAsync_send*) ((g[send] += ticks)) ;;
		civetweb*) ((g[http] += ticks)) ;;
		*) if [[ ${t##*/} == "$BRIDGE_PID" ]]; then ((g[loop] += ticks)); else ((g[inbox] += ticks)); fi ;;
		esac
	done
	echo "${g[loop]} ${g[inbox]} ${g[rcv]} ${g[send]} ${g[http]}"
}

# Samples cloud-bridge's /api/status every 500 ms during the run (a
# measurement, not a wait for anything), for its largest backlog.
start_sampler() {
	while kill -0 "$BRIDGE_PID" 2>/dev/null; do
		curl -s --max-time 1 "$BRIDGE_URL/api/status" | tr -d '\n'
		echo
		sleep 0.5
	done >"$TMP/bridge-samples.txt" 2>/dev/null &
	SAMPLER_PID=$!
}

stop_sampler() {
	kill_wait "$SAMPLER_PID"
	SAMPLER_PID=
	local line b h max_b=0 max_h=0
	while read -r line; do
		b=$(json_num "$line" backlog) h=$(json_num "$line" held)
		((${b:-0} > max_b)) && max_b=$b
		((${h:-0} > max_h)) && max_h=$h
	done <"$TMP/bridge-samples.txt"
	BACKLOG_MAX+="$max_b "
	HELD_MAX+="$max_h "
}

# measure KIND: runs the load with everything of the set-up up; records the
# rate, the CPU of each process and the peak RSS of the brokers and bridge.
measure() {
	local kind=$1 out p start end deadline bt0 bt1 i m0_total m0_idle m1_total m1_idle
	local -A t0 t1
	local -a procs=(AGENT EDGE) names=(loop inbox rcv send http) a b
	[[ -n $BRIDGE_PID ]] && procs+=(BRIDGE)
	[[ $CLOUD_PID != "$EDGE_PID" ]] && procs+=(CLOUD)
	for p in "${procs[@]}"; do
		t0[$p]=$(cpu_ticks "$(pid_of "$p")")
	done
	read -r m0_total m0_idle < <(machine_ticks)
	if [[ -n $BRIDGE_PID ]]; then
		bt0=$(bridge_threads)
		start_sampler
	fi
	out=$(timeout 900 "$HTTP" load --url "$AGENT_URL" -n "$N" -t "$THREADS" -b "$BATCH" \
		-s "$SIZE" --pid "$AGENT_PID" --timeout 600 2>>"$TMP/load.log") ||
		die "the load failed (status $?)"
	out=$(tail -n 1 <<<"$out")
	# The subscriber prints its line the moment it has all N ids, then exits.
	deadline=$((SECONDS + 660))
	until grep -q '^cloud_sub ' "$TMP/sub.out"; do
		((SECONDS <= deadline)) || die "the cloud subscriber did not finish"
		alive "$SUB_PID" "the cloud subscriber"
		sleep 0.01
	done
	for p in "${procs[@]}"; do
		t1[$p]=$(cpu_ticks "$(pid_of "$p")") || die "$p died"
	done
	[[ -n $BRIDGE_PID ]] && bt1=$(bridge_threads)
	read -r m1_total m1_idle < <(machine_ticks)
	wait_sub
	start=$(field "$out" start_wall) end=$(field "$SUB_LINE" done_wall)
	RATE[$kind]+="$(awk -v n="$N" -v a="$start" -v b="$end" 'BEGIN {printf "%.0f", n / (b - a)}') "
	AGENT_RATE[$kind]+="$(field "$out" rate) "
	DUPS[$kind]+="$(field "$SUB_LINE" dups) "
	EVENT_BYTES=$(field "$out" bytes)
	for p in "${procs[@]}"; do
		CPU[$kind.$p]+="$(us_per_event $((t1[$p] - t0[$p])) "$N") "
		HWM[$kind.$p]+="$(status_kb "$(pid_of "$p")" VmHWM) "
	done
	CPU[$kind.SUB]+="$(field "$SUB_LINE" cpu_us) "
	# Cores busy during the run, and how much of that the set-up's processes
	# (subscriber included) account for; the rest is the load generator, the
	# kernel's threads (fsync, softirq) and anything else on the machine.
	local mine=0
	for p in "${procs[@]}"; do
		((mine += t1[$p] - t0[$p]))
	done
	BUSY[$kind]+="$(awk -v t=$((m1_total - m0_total)) -v i=$((m1_idle - m0_idle)) -v c="$NPROC" \
		'BEGIN {printf "%.2f", (t - i) / t * c}') "
	SETUP_CORES[$kind]+="$(awk -v t=$((m1_total - m0_total)) -v m="$mine" -v c="$NPROC" \
		-v u="$(field "$SUB_LINE" cpu_us)" -v n="$N" -v s="$start" -v e="$end" \
		'BEGIN {printf "%.2f", m / t * c + u * n / 1e6 / (e - s)}') "
	if [[ -n $BRIDGE_PID ]]; then
		read -ra a <<<"$bt0"
		read -ra b <<<"$bt1"
		for i in "${!names[@]}"; do
			THREAD_CPU[${names[$i]}]+="$(us_per_event $((b[i] - a[i])) "$N") "
		done
		stop_sampler
		curl -sf --max-time 5 "$BRIDGE_URL/api/status" >"$TMP/bridge-status.json" ||
			die "cloud-bridge's /api/status did not answer"
		BRIDGE_STATUS=$(cat "$TMP/bridge-status.json")
	fi
}

# ---- the three set-ups -------------------------------------------------------------------

setup_begin() {
	USED_PORTS=()
	rm -f "$TMP"/agent.db* "$TMP"/bridge.db*
}

run_ours() {
	setup_begin
	local edge cloud
	cloud=$(free_port) edge=$(free_port)
	start_broker cloud "$cloud"
	start_broker edge "$edge"
	start_bridge "$edge" "$cloud"
	if ((AGENT_BATCH)); then
		start_agent "$edge" --mqtt.format batch
	else
		start_agent "$edge"
	fi
	start_sub "$cloud" "$edge"
	measure ours
	stop_proc AGENT_PID "the agent"
	stop_proc BRIDGE_PID "cloud-bridge"
	stop_brokers
}

run_mosquitto() {
	setup_begin
	local edge cloud
	cloud=$(free_port) edge=$(free_port)
	start_broker cloud "$cloud"
	start_broker edge "$edge" "$cloud"
	start_agent "$edge"
	start_sub "$cloud" "$edge"
	measure mosq
	stop_proc AGENT_PID "the agent"
	stop_brokers
}

run_direct() {
	setup_begin
	local edge
	edge=$(free_port)
	start_broker edge "$edge"
	CLOUD_PID=$EDGE_PID
	start_agent "$edge"
	start_sub "$edge" "$edge"
	measure direct
	stop_proc AGENT_PID "the agent"
	CLOUD_PID=
	stop_brokers
}

# ---- the report --------------------------------------------------------------------------

row() { # LABEL VALUE [NOTE]
	printf '  %-56s %10s   %s\n' "$1" "$2" "${3:-}"
}

verdict() { # VALUE OP LIMIT: "met" or "MISSED"
	awk -v v="$1" -v l="$3" -v op="$2" 'BEGIN {
		ok = (op == ">=") ? v >= l : v <= l
		print ok ? "met" : "MISSED" }'
}

per_round() { # "A1 A2 ..." "B1 B2 ...": A[i]/B[i] for each round
	local -a a b
	local i out=()
	read -ra a <<<"$1"
	read -ra b <<<"$2"
	for i in "${!a[@]}"; do
		out+=("$(ratio "${a[$i]}" "${b[$i]}")")
	done
	echo "${out[*]}"
}

mbs() { # kB...: each in MB, space-separated
	local k out=()
	for k in "$@"; do
		out+=("$(mb "$k")")
	done
	echo "${out[*]}"
}

max_kb() { # numbers...: the largest
	printf '%s\n' "$@" | sort -n | tail -n 1
}

json_num() { # JSON KEY: the first number after "KEY": (flat grep, enough here)
	grep -o "\"$2\":[0-9.]*" <<<"$1" | head -n 1 | cut -d: -f2
}

# cpu_row LABEL KIND: the median µs/event of each process and their sum.
cpu_row() {
	local kind=$2 p v sum=0 parts=()
	for p in AGENT EDGE BRIDGE CLOUD SUB; do
		if [[ -z ${CPU[$kind.$p]:-} ]]; then
			parts+=("-")
			continue
		fi
		# shellcheck disable=SC2086
		v=$(median1 ${CPU[$kind.$p]})
		parts+=("$v")
		sum=$(awk -v a="$sum" -v b="$v" 'BEGIN {printf "%.1f", a + b}')
	done
	printf '  %-28s %6s %6s %6s %6s %6s  = %6s\n' "$1" "${parts[@]}" "$sum"
}

report() {
	local ours mosq direct r1 r2
	# shellcheck disable=SC2086
	ours=$(median ${RATE[ours]}) mosq=$(median ${RATE[mosq]}) direct=$(median ${RATE[direct]})
	r1=$(ratio "$ours" "$mosq") r2=$(ratio "$ours" "$direct")
	echo
	echo "edgespool bridge benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), nproc $(nproc)," \
		"$(uname -r), mosquitto $("$MOSQUITTO" -h 2>/dev/null | sed -n 's/^mosquitto version //p')"
	echo "events of ${EVENT_BYTES:-$SIZE} B as journaled, QoS 1 end to end, journal.sync=full" \
		"(agent and cloud-bridge), $N events a run, HTTP load $THREADS x $BATCH-event POSTs"
	echo "end to end, events/s: first POST at the agent -> all $N distinct ids at the cloud" \
		"subscriber (median of $ROUNDS; runs in brackets)"
	if ((AGENT_BATCH)); then
		echo "  (ours: the agent sends batches to the edge broker, mqtt.format batch;" \
			"agent batches $(json_num "$BRIDGE_STATUS" batches_received) in the last run)"
	fi
	row "ours: agent -> edge -> cloud-bridge -> cloud" "$ours" "[${RATE[ours]% }]"
	row "mosquitto's bridge: agent -> edge =bridge=> cloud" "$mosq" "[${RATE[mosq]% }]"
	row "reference, no bridge: agent -> one broker -> sub" "$direct" "[${RATE[direct]% }]"
	echo "  the agent's own part (POST to nothing pending at the agent), events/s:"
	# shellcheck disable=SC2086
	row "  with ours / mosquitto's bridge / no bridge" \
		"$(median ${AGENT_RATE[ours]})" \
		"/ $(median ${AGENT_RATE[mosq]}) / $(median ${AGENT_RATE[direct]})"
	echo "ratios (of the medians; per round: the runs of one round are close in time)"
	row "ours/mosquitto's bridge" "${r1}x" "target >= 1.0x: $(verdict "$r1" ">=" 1.0)"
	row "  per round" "" "[$(per_round "${RATE[ours]}" "${RATE[mosq]}")]"
	row "ours/no bridge" "${r2}x" "[$(per_round "${RATE[ours]}" "${RATE[direct]}")]"
	row "mosquitto's bridge/no bridge" "$(ratio "$mosq" "$direct")x" \
		"[$(per_round "${RATE[mosq]}" "${RATE[direct]}")]"
	echo "duplicates at the cloud subscriber (messages - distinct ids), per run"
	row "ours / mosquitto's bridge / no bridge" "" \
		"[${DUPS[ours]% }] / [${DUPS[mosq]% }] / [${DUPS[direct]% }]"
	echo "CPU per event, microseconds (median of the runs), from the first POST to the last id"
	printf '  %-28s %6s %6s %6s %6s %6s  = %6s\n' "" agent edge bridge cloud sub total
	cpu_row "ours" ours
	cpu_row "mosquitto's bridge" mosq
	cpu_row "no bridge" direct
	echo "  (mosquitto's bridge runs inside the edge mosquitto: its cost is in 'edge')"
	echo "cores busy during the runs, of $NPROC: the set-up's own processes / the whole machine, per run"
	row "ours" "" "[${SETUP_CORES[ours]% }] / [${BUSY[ours]% }]"
	row "mosquitto's bridge" "" "[${SETUP_CORES[mosq]% }] / [${BUSY[mosq]% }]"
	row "no bridge" "" "[${SETUP_CORES[direct]% }] / [${BUSY[direct]% }]"
	echo "peak RSS (VmHWM after the run; largest of the runs, then each run)"
	# shellcheck disable=SC2086
	{
		row "cloud-bridge" "$(mb "$(max_kb ${HWM[ours.BRIDGE]})") MB" \
			"[$(mbs ${HWM[ours.BRIDGE]})]"
		row "edge mosquitto, bridging (mosquitto's bridge)" \
			"$(mb "$(max_kb ${HWM[mosq.EDGE]})") MB" "[$(mbs ${HWM[mosq.EDGE]})]"
		row "edge mosquitto, not bridging (ours; for comparison)" \
			"$(mb "$(max_kb ${HWM[ours.EDGE]})") MB" "[$(mbs ${HWM[ours.EDGE]})]"
		row "cloud mosquitto (ours / mosquitto's bridge)" \
			"$(mb "$(max_kb ${HWM[ours.CLOUD]})") MB" "/ $(mb "$(max_kb ${HWM[mosq.CLOUD]})") MB"
		row "edge-agent (ours / mosquitto's bridge / no bridge)" \
			"$(mb "$(max_kb ${HWM[ours.AGENT]})") MB" \
			"/ $(mb "$(max_kb ${HWM[mosq.AGENT]})") MB / $(mb "$(max_kb ${HWM[direct.AGENT]})") MB"
	}
	echo "inside cloud-bridge (ours)"
	# shellcheck disable=SC2086
	echo "  CPU per event by thread, microseconds (medians): main loop $(median1 ${THREAD_CPU[loop]})," \
		"inbox + journal writer $(median1 ${THREAD_CPU[inbox]}), paho receive" \
		"$(median1 ${THREAD_CPU[rcv]}), paho send $(median1 ${THREAD_CPU[send]}), HTTP" \
		"$(median1 ${THREAD_CPU[http]})"
	row "largest inbox backlog (journaled, not yet forwarded)" "" "[${BACKLOG_MAX% }]"
	row "largest number of rows held in memory to forward" "" "[${HELD_MAX% }]"
	echo "  counters after the last run: received $(json_num "$BRIDGE_STATUS" received)," \
		"journaled $(json_num "$BRIDGE_STATUS" journaled)," \
		"duplicates dropped $(json_num "$BRIDGE_STATUS" duplicates_dropped)," \
		"overload dropped $(json_num "$BRIDGE_STATUS" overload_dropped)," \
		"holes detected $(json_num "$BRIDGE_STATUS" holes_detected)," \
		"re-send requests $(json_num "$BRIDGE_STATUS" requests)"
}

# ---- main ------------------------------------------------------------------------------------

main() {
	local b r
	for b in "$HTTP" "$SUB" "$AGENT" "$BRIDGE"; do
		[[ -x $b ]] || die "$b is missing: build $BUILD first"
	done
	[[ -x $MOSQUITTO ]] || die "mosquitto is not installed"
	command -v curl >/dev/null || die "curl is not installed"
	TMP=$(mktemp -d "${TMPDIR:-/tmp}/es-bridge-bench.XXXXXX") || die "mktemp failed"
	CLK_TCK=$(getconf CLK_TCK)
	NPROC=$(nproc)
	declare -gA RATE AGENT_RATE DUPS CPU HWM THREAD_CPU BUSY SETUP_CORES
	BACKLOG_MAX=''
	HELD_MAX=''
	BRIDGE_STATUS=
	for ((r = 1; r <= ROUNDS; r++)); do
		echo "round $r of $ROUNDS: ours, mosquitto's bridge, no bridge" >&2
		run_ours
		run_mosquitto
		run_direct
	done
	report
}

main
