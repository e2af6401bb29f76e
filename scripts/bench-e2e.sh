#!/usr/bin/env bash
# Measures hve end to end on this machine: submission (workload W1 of
# scripts/bench.sh: 1 KB, 1 recipient, 20 connections reused) and, at the
# same time, delivery of every accepted message over SMTP to a no-op next
# hop (scripts/nexthop-sink). Every second it samples hve's queue depth
# (/healthz) and what the next hop has received, so that one can see
# whether delivery keeps up with submission: if it does, the queue depth
# stays flat.
#
#   scripts/bench-e2e.sh                  # one run of 60 s
#   DURATION=20s scripts/bench-e2e.sh
#
# Settings (environment): DURATION (default 60s), CONNS (default 20),
# SIZE (default 1024), HOP_CONNS (the route's max_connections, default 10),
# KEEP=1 keeps the temporary directory, HVE_BIN (an hve binary to use
# instead of building one), HVE_SERVE_FLAGS (more flags for hve serve, such
# as --config FILE with another store). Prints the samples as JSON lines,
# then a summary. Informative only; see docs/benchmarks.md.
set -euo pipefail

DURATION=${DURATION:-60s}
CONNS=${CONNS:-20}
SIZE=${SIZE:-1024}
HOP_CONNS=${HOP_CONNS:-10}

cd "$(dirname "$0")/.."
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hve-bench-e2e.XXXXXX")
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
SINK=$WORK/nexthop-sink
PIDS=()
cleanup() {
	stop_hve
	for pid in "${PIDS[@]}"; do
		stop_pid "$pid"
	done
	if [[ ${KEEP:-0} == 1 ]]; then
		echo "kept $WORK" >&2
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT

machine_info
build_hve
echo "building the next hop ..." >&2
go build -o "$SINK" ./scripts/nexthop-sink

# The next hop, on a free loopback port.
"$SINK" -listen 127.0.0.1:0 >"$WORK/sink.out" 2>"$WORK/sink.log" &
PIDS+=($!)
for _ in $(seq 50); do
	grep -q 'listening on' "$WORK/sink.log" 2>/dev/null && break
	sleep 0.1
done
HOP=$(sed -n 's/.*listening on \(.*\)$/\1/p' "$WORK/sink.log")
[[ -n $HOP ]] || { cat "$WORK/sink.log" >&2; echo "the next hop did not start" >&2; exit 1; }

# hve with the demo organisation (HVE_SERVE_FLAGS: more flags for serve,
# e.g. --config FILE naming another store).
DATA=$WORK/data
# shellcheck disable=SC2086 # flags are meant to split
start_hve "$DATA" ${HVE_SERVE_FLAGS:-} || exit 1

# sink.test is relayed to the next hop: its recipients need no mailboxes.
hve() { "$HVE" --server "$ADMIN" --data "$DATA" "$@"; }
hve domain add sink.test --type internal-relay >/dev/null
hve route set sink.test --type smtp --target "$HOP" --tls none --max-connections "$HOP_CONNS" >/dev/null
RCPTS=
for i in $(seq -w 1 10); do RCPTS+="${RCPTS:+,}r$i@sink.test"; done

depth() { curl -s "$ADMIN/healthz" | sed -n 's/.*"queue_depth": *\([0-9]*\).*/\1/p'; }
delivered() { tail -1 "$WORK/sink.out" | sed -n 's/.*"messages":\([0-9]*\).*/\1/p'; }

start_depth=$(depth)
"$HVE" bench --addr "$SMTP" --auth "hr-notify@contoso.test:$PASSWORD" --rcpt-list "$RCPTS" \
	--conns "$CONNS" --rcpts 1 --size "$SIZE" --msgs 100000000 --duration "$DURATION" >"$WORK/bench.json" &
BENCH=$!
start=$(date +%s.%N)
maxdepth=0
last_depth=0
samples=0
sumdepth=0
while kill -0 "$BENCH" 2>/dev/null; do
	sleep 1
	d=$(depth)
	n=$(delivered)
	t=$(awk -v s="$start" -v n="$(date +%s.%N)" 'BEGIN {printf "%.0f", n - s}')
	echo "{\"t_s\":$t,\"queue_depth\":${d:-0},\"delivered\":${n:-0}}"
	((d > maxdepth)) && maxdepth=$d
	samples=$((samples + 1))
	sumdepth=$((sumdepth + d))
	last_depth=$d
done
wait "$BENCH"
end_depth=$(depth)
end_delivered=$(delivered)
drain_start=$(date +%s.%N)
for _ in $(seq 1200); do
	[[ $(depth) == 0 ]] && break
	sleep 0.1
done
drain=$(awk -v s="$drain_start" -v n="$(date +%s.%N)" 'BEGIN {printf "%.1f", n - s}')
sleep 1.2 # the next hop prints its count once a second

bench=$(cat "$WORK/bench.json")
accepted=$(sed -n 's/.*"accepted":\([0-9]*\).*/\1/p' <<<"$bench")
elapsed=$(sed -n 's/.*"elapsed_s":\([0-9.]*\).*/\1/p' <<<"$bench")
echo "bench: $bench"
echo
printf '%-44s %s\n' "accepted by hve (W1, $CONNS conns, $DURATION)" "$accepted messages, $(sed -n 's/.*"msgs_per_s":\([0-9.]*\).*/\1/p' <<<"$bench") msgs/s"
printf '%-44s %s\n' "delivered to the next hop during the run" "$end_delivered messages, $(awk -v n="$end_delivered" -v e="$elapsed" 'BEGIN {printf "%.1f", n / e}') msgs/s"
printf '%-44s %s\n' "queue depth (1 s samples)" "mean $((samples > 0 ? sumdepth / samples : 0)), max $maxdepth, at the end $end_depth"
printf '%-44s %s\n' "time to drain the rest after the run" "${drain} s"
printf '%-44s %s\n' "delivered in all" "$(delivered) messages (accepted $accepted)"
# One line for scripts (bench-suite.sh) to read.
echo "{\"e2e\":true,\"accepted\":${accepted:-0},\"msgs_per_s\":$(sed -n 's/.*"msgs_per_s":\([0-9.]*\).*/\1/p' <<<"$bench"),\"delivered_during\":${end_delivered:-0},\"depth_start\":${start_depth:-0},\"depth_last_sample\":$last_depth,\"depth_mean\":$((samples > 0 ? sumdepth / samples : 0)),\"depth_max\":$maxdepth,\"depth_end\":${end_depth:-0},\"drain_s\":$drain,\"delivered\":$(delivered)}"
