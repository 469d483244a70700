#!/usr/bin/env bash
# run.sh - edgespool's benchmark, in one run, on loopback, with a real mosquitto.
#
#   bench/run.sh [--quick] [BUILD_DIR]        (BUILD_DIR defaults to ./build)
#
# Builds nothing: it runs the programs of BUILD_DIR (configure with the default
# ES_BUILD_BENCH=ON). Measures, interleaved round by round (raw, naive,
# pipeline, http; three rounds or --rounds K, medians reported, because shared
# machines are noisy; --quick: small sizes and one round, a smoke run):
#   raw       es-bench-raw: plain paho MQTTAsync QoS 1, window 100 (the baseline)
#   naive     es-bench-naive: insert, publish, wait for PUBACK, update, one by one
#   pipeline  es-bench-pipeline: the real agent core, fed in-process by 4 threads
#   http      the real edge-agent binary, fed by es-bench-http (4 keep-alive
#             connections, POSTs of 100 events), end to end (pending back to 0)
# then the backlog test: 1,000,000 pending events in a journal, the agent
# started with the broker down (start-up time to /healthz, RSS), then the
# broker started and the drain timed.
#
# A benchmark reports, it does not judge: exit 0 whatever the figures. Exit 1
# when something broke (a program failed, a non-202, a crash, a timeout).
# Waits poll their condition with a deadline; nothing sleeps to synchronise.
set -uo pipefail

usage() {
	echo "usage: $0 [--quick] [--rounds K] [BUILD_DIR]" >&2
	exit 2
}

QUICK=0
ROUNDS=
BUILD=./build
while (($#)); do
	case $1 in
	--quick) QUICK=1 ;;
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
	N=5000 NAIVE_N=200 BACKLOG=20000 ROUNDS=${ROUNDS:-1}
else
	N=100000 NAIVE_N=2000 BACKLOG=1000000 ROUNDS=${ROUNDS:-3}
fi
SIZE=300 WINDOW=100 THREADS=4 BATCH=100

RAW=$BUILD/bench/es-bench-raw
NAIVE=$BUILD/bench/es-bench-naive
PIPE=$BUILD/bench/es-bench-pipeline
HTTP=$BUILD/bench/es-bench-http
AGENT=$BUILD/edge-agent/edge-agent
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)

TMP=
BROKER_PID=
AGENT_PID=
DRAIN_PID=

# ---- failing and cleaning up -------------------------------------------------------

die() {
	echo "run.sh: FAILED: $*" >&2
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
	kill_wait "$DRAIN_PID"
	kill_wait "$AGENT_PID"
	kill_wait "$BROKER_PID"
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

# ---- the broker --------------------------------------------------------------------

make_broker_conf() {
	{
		echo "listener $MQ_PORT 127.0.0.1"
		echo "allow_anonymous true"
		echo "persistence false"
		echo "max_queued_messages 0"
		echo "log_dest stderr"
		[[ $(id -u) == 0 ]] && echo "user root"
	} >"$TMP/mosquitto.conf"
}

start_broker() {
	"$MOSQUITTO" -c "$TMP/mosquitto.conf" >>"$TMP/mosquitto.log" 2>&1 &
	BROKER_PID=$!
	wait_port "$MQ_PORT" open 10
}

stop_broker() {
	kill_wait "$BROKER_PID"
	BROKER_PID=
	wait_port "$MQ_PORT" closed 10
}

broker_alive() {
	if [[ -z $BROKER_PID ]] || ! kill -0 "$BROKER_PID" 2>/dev/null; then
		die "mosquitto died"
	fi
}

# ---- the agent ---------------------------------------------------------------------

# start_agent JOURNAL [FLAGS...]: starts edge-agent and waits for /healthz 200;
# sets AGENT_PID, HTTP_URL and STARTUP_MS (from just before exec to that 200).
start_agent() {
	local journal=$1 port
	shift
	port=$("$HTTP" free-port) || die "no free port"
	HTTP_URL=http://127.0.0.1:$port
	local t0=$EPOCHREALTIME
	"$AGENT" --node.id bench --node.site lab --mqtt.url "mqtt://127.0.0.1:$MQ_PORT" \
		--journal.path "$journal" --journal.sync full --status.interval_s 10 \
		--http.listen "127.0.0.1:$port" --log.level warn "$@" >>"$TMP/agent.log" 2>&1 &
	AGENT_PID=$!
	local out
	out=$(timeout 60 "$HTTP" healthz --url "$HTTP_URL" --since "$t0" --pid "$AGENT_PID" \
		--timeout 30) || die "the agent did not come up"
	STARTUP_MS=$(field "$out" ms)
}

# stop_agent: SIGTERM, wait (30 s at most) and require exit status 0.
stop_agent() {
	kill -0 "$AGENT_PID" 2>/dev/null || die "the agent died (see agent.log)"
	kill -TERM "$AGENT_PID"
	local deadline=$((SECONDS + 30)) rc
	while kill -0 "$AGENT_PID" 2>/dev/null; do
		((SECONDS <= deadline)) || die "the agent did not stop within 30 s of SIGTERM"
		sleep 0.02
	done
	wait "$AGENT_PID"
	rc=$?
	AGENT_PID=
	((rc == 0)) || die "the agent exited with status $rc"
}

# ---- one round of each throughput measurement --------------------------------------

# run_prog NAME TIMEOUT CMD...: runs a benchmark program and echoes its result
# line, with broker_us= (the broker's CPU per event of the run) added.
run_prog() {
	local name=$1 limit=$2 out b0 b1
	shift 2
	broker_alive
	b0=$(cpu_ticks "$BROKER_PID")
	out=$(timeout "$limit" "$@" 2>>"$TMP/$name.log") || die "$name failed (status $?)"
	b1=$(cpu_ticks "$BROKER_PID") || die "mosquitto died"
	out=$(echo "$out" | tail -n 1)
	echo "$out broker_us=$(us_per_event $((b1 - b0)) "$(field "$out" n)")"
}

round_raw() {
	local out
	out=$(run_prog raw 300 "$RAW" --url "$MQ_URL" -n "$N" -w "$WINDOW" -s "$SIZE") || exit 1
	RAW_RATES+=("$(field "$out" rate)")
	RAW_CPU+=("$(field "$out" cpu_us)+$(field "$out" broker_us)")
}

round_naive() {
	local out
	out=$(run_prog naive 600 "$NAIVE" --url "$MQ_URL" --db "$TMP/naive.db" -n "$NAIVE_N" \
		-s "$SIZE") || exit 1
	rm -f "$TMP"/naive.db*
	NAIVE_RATES+=("$(field "$out" rate)")
	NAIVE_CPU+=("$(field "$out" cpu_us)+$(field "$out" broker_us)")
}

round_pipeline() {
	local out
	out=$(run_prog pipeline 900 "$PIPE" --url "$MQ_URL" --journal "$TMP/pipe.db" -n "$N" \
		-p "$THREADS" -b "$BATCH" -s "$SIZE" --sync full) || exit 1
	rm -f "$TMP"/pipe.db*
	PIPE_RATES+=("$(field "$out" rate)")
	PIPE_INGEST+=("$(field "$out" ingest_rate)")
	PIPE_CPU+=("$(field "$out" cpu_us)+$(field "$out" broker_us)")
	EVENT_BYTES=$(field "$out" bytes)
}

round_http() {
	local out hwm a0 a1
	start_agent "$TMP/http.db"
	a0=$(cpu_ticks "$AGENT_PID")
	out=$(run_prog http 900 "$HTTP" load --url "$HTTP_URL" -n "$N" -t "$THREADS" -b "$BATCH" \
		-s "$SIZE" --pid "$AGENT_PID" --timeout 600) || exit 1
	a1=$(cpu_ticks "$AGENT_PID") || die "the agent died under load"
	hwm=$(status_kb "$AGENT_PID" VmHWM) || die "the agent died under load"
	HTTP_CPU+=("$(us_per_event $((a1 - a0)) "$N")+$(field "$out" broker_us)")
	stop_agent
	rm -f "$TMP"/http.db*
	HTTP_POSTED+=("$(field "$out" posted_rate)")
	HTTP_RATES+=("$(field "$out" rate)")
	((hwm > PEAK_KB)) && PEAK_KB=$hwm
	HTTP_STARTUP+=("$STARTUP_MS")
}

# ---- the backlog -----------------------------------------------------------------------

# Samples the agent's VmRSS every 100 ms for 3 s (a measurement window, not a
# wait for anything) and sets RSS_LATER_KB to the largest.
sample_rss() {
	local i kb
	RSS_LATER_KB=0
	for ((i = 0; i < 30; i++)); do
		sleep 0.1
		kb=$(status_kb "$AGENT_PID" VmRSS) || die "the agent died"
		((kb > RSS_LATER_KB)) && RSS_LATER_KB=$kb
	done
}

backlog_fill() {
	local out
	out=$(run_prog fill 3600 "$PIPE" --fill --journal "$TMP/backlog.db" -n "$BACKLOG" \
		-s "$SIZE") || exit 1
	FILL_LINE=$out
	JOURNAL_MB=$(du -m "$TMP/backlog.db" | cut -f1)
}

# Warm start (the file is in the page cache right after the fill), stop, then
# a cold start with the journal's pages dropped from the page cache.
backlog_starts() {
	start_agent "$TMP/backlog.db" --mqtt.backoff_max_ms 1s
	WARM_MS=$STARTUP_MS
	stop_agent
	sync "$TMP/backlog.db" # only clean pages can be dropped
	dd if="$TMP/backlog.db" iflag=nocache count=0 status=none
	dd if="$TMP/backlog.db-wal" iflag=nocache count=0 status=none 2>/dev/null
	start_agent "$TMP/backlog.db" --mqtt.backoff_max_ms 1s
	COLD_MS=$STARTUP_MS
	RSS_HEALTHZ_KB=$(status_kb "$AGENT_PID" VmRSS) || die "the agent died at start-up"
	sample_rss
}

backlog_drain() {
	"$HTTP" drain --url "$HTTP_URL" --pid "$AGENT_PID" --timeout 3000 \
		>"$TMP/drain.out" 2>>"$TMP/drain.log" &
	DRAIN_PID=$!
	start_broker
	local rc
	wait "$DRAIN_PID"
	rc=$?
	DRAIN_PID=
	((rc == 0)) || die "the drain measurement failed"
	DRAIN_LINE=$(tail -n 1 "$TMP/drain.out")
	DRAIN_HWM_KB=$(status_kb "$AGENT_PID" VmHWM) || die "the agent died while draining"
	stop_agent
}

run_backlog() {
	backlog_fill
	stop_broker
	backlog_starts
	backlog_drain
}

# ---- the report --------------------------------------------------------------------------

row() { # LABEL VALUE [NOTE]
	printf '  %-46s %14s   %s\n' "$1" "$2" "${3:-}"
}

verdict() { # VALUE OP LIMIT: "met" or "MISSED"
	awk -v v="$1" -v l="$3" -v op="$2" 'BEGIN {
		ok = (op == ">=") ? v >= l : (op == "<=") ? v <= l : v < l
		print ok ? "met" : "MISSED" }'
}

target() { # VALUE OP LIMIT TEXT
	echo "target $2 $4: $(verdict "$1" "$2" "$3")"
}

per_round() { # ARRAY_A ARRAY_B: A[i]/B[i] for each round
	local -n a=$1 b=$2
	local i out=()
	for i in "${!a[@]}"; do
		out+=("$(ratio "${a[$i]}" "${b[$i]}")")
	done
	echo "${out[*]}"
}

report_throughput() {
	RAW_M=$(median "${RAW_RATES[@]}")
	NAIVE_M=$(median "${NAIVE_RATES[@]}")
	PIPE_M=$(median "${PIPE_RATES[@]}")
	HTTP_M=$(median "${HTTP_RATES[@]}")
	local r1 r2 r3 r4
	echo "throughput, events/s (median of $ROUNDS; runs in brackets)"
	row "raw paho MQTTAsync QoS 1, window $WINDOW" "$RAW_M" "[${RAW_RATES[*]}]"
	row "naive: insert, publish, PUBACK, update" "$NAIVE_M" "[${NAIVE_RATES[*]}]"
	row "agent pipeline in-process (append->PUBACK)" "$PIPE_M" "[${PIPE_RATES[*]}]"
	row "  its journal ingest alone (appends/s)" "$(median "${PIPE_INGEST[@]}")" \
		"[${PIPE_INGEST[*]}]"
	row "agent HTTP front door, end to end" "$HTTP_M" "[${HTTP_RATES[*]}]"
	row "  its POSTs alone (202s/s)" "$(median "${HTTP_POSTED[@]}")" "[${HTTP_POSTED[*]}]"
	echo "CPU per event, microseconds: the measured process + mosquitto, per run"
	row "raw paho (publisher)" "" "[${RAW_CPU[*]}]"
	row "naive (publisher)" "" "[${NAIVE_CPU[*]}]"
	row "agent pipeline (whole process)" "" "[${PIPE_CPU[*]}]"
	row "agent HTTP (edge-agent; load generator not counted)" "" "[${HTTP_CPU[*]}]"
	r1=$(ratio "$PIPE_M" "$RAW_M") r2=$(ratio "$HTTP_M" "$RAW_M")
	r3=$(ratio "$PIPE_M" "$NAIVE_M") r4=$(ratio "$HTTP_M" "$NAIVE_M")
	echo "ratios (of the medians; per round: the runs of one round are close in time)"
	row "agent/raw, pipeline in-process" "${r1}x" "$(target "$r1" ">=" 0.9 0.9x)"
	row "  per round" "[$(per_round PIPE_RATES RAW_RATES)]"
	row "agent/raw, HTTP end to end" "${r2}x" "$(target "$r2" ">=" 0.9 0.9x)"
	row "  per round" "[$(per_round HTTP_RATES RAW_RATES)]"
	row "agent/naive, pipeline in-process" "${r3}x" "$(target "$r3" ">=" 10 10x)"
	row "agent/naive, HTTP end to end" "${r4}x" "$(target "$r4" ">=" 10 10x)"
}

report_memory_and_backlog() {
	local peak_mb rss1 rss2 drain_rate drain_hwm dl
	peak_mb=$(mb "$PEAK_KB") rss1=$(mb "$RSS_HEALTHZ_KB") rss2=$(mb "$RSS_LATER_KB")
	drain_rate=$(field "$DRAIN_LINE" rate) drain_hwm=$(mb "$DRAIN_HWM_KB")
	dl=$(ratio "$drain_rate" "$PIPE_M")
	echo "memory"
	row "agent peak RSS under HTTP load (VmHWM)" "$peak_mb MB" "$(target "$peak_mb" "<=" 16 "16 MB")"
	echo "backlog: $BACKLOG pending events, journal ${JOURNAL_MB} MB, broker down" \
		"(filled at $(field "$FILL_LINE" rate) events/s: journal code, sync=normal)"
	row "start-up to /healthz 200, cold page cache" "$COLD_MS ms" "$(target "$COLD_MS" "<" 1000 "1 s")"
	row "start-up to /healthz 200, warm page cache" "$WARM_MS ms" "$(target "$WARM_MS" "<" 1000 "1 s")"
	row "RSS when /healthz answers" "$rss1 MB" "$(target "$rss1" "<=" 16 "16 MB")"
	row "RSS, largest over the next 3 s" "$rss2 MB" "$(target "$rss2" "<=" 16 "16 MB")"
	row "drain once the broker is up (events/s)" "$drain_rate" \
		"($(field "$DRAIN_LINE" events) events in $(field "$DRAIN_LINE" s) s)"
	row "peak RSS after the drain (VmHWM)" "$drain_hwm MB" "$(target "$drain_hwm" "<=" 16 "16 MB")"
	row "drain/live (live = pipeline median)" "${dl}x" "$(target "$dl" ">=" 0.9 0.9x)"
	row "drain/live (live = HTTP end-to-end median)" "$(ratio "$drain_rate" "$HTTP_M")x"
}

report() {
	echo
	echo "edgespool benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), nproc $(nproc)," \
		"$(uname -r), mosquitto $("$MOSQUITTO" -h 2>/dev/null | sed -n 's/^mosquitto version //p')"
	echo "events of ${EVENT_BYTES:-$SIZE} B as journaled (raw payloads $SIZE B), QoS 1," \
		"window $WINDOW, journal.sync=full, $N events a run, naive $NAIVE_N"
	report_throughput
	report_memory_and_backlog
	echo "agent start-ups during the HTTP runs (empty journal): ${HTTP_STARTUP[*]} ms"
}

# ---- main ------------------------------------------------------------------------------------

main() {
	local b
	for b in "$RAW" "$NAIVE" "$PIPE" "$HTTP" "$AGENT"; do
		[[ -x $b ]] || die "$b is missing: build $BUILD first"
	done
	[[ -x $MOSQUITTO ]] || die "mosquitto is not installed"
	TMP=$(mktemp -d "${TMPDIR:-/tmp}/es-bench.XXXXXX") || die "mktemp failed"
	MQ_PORT=$("$HTTP" free-port) || die "no free port"
	MQ_URL=mqtt://127.0.0.1:$MQ_PORT
	RAW_RATES=() NAIVE_RATES=() PIPE_RATES=() PIPE_INGEST=() HTTP_RATES=() HTTP_POSTED=()
	RAW_CPU=() NAIVE_CPU=() PIPE_CPU=() HTTP_CPU=() HTTP_STARTUP=() PEAK_KB=0
	CLK_TCK=$(getconf CLK_TCK)
	make_broker_conf
	start_broker
	local r
	for ((r = 1; r <= ROUNDS; r++)); do
		echo "round $r of $ROUNDS: raw, naive, pipeline, http" >&2
		round_raw
		round_naive
		round_pipeline
		round_http
	done
	echo "backlog: filling $BACKLOG pending events" >&2
	run_backlog
	report
}

main
