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
# KEEP=1 keeps the temporary directory. Prints the samples as JSON lines,
# then a summary. Informative only; see docs/benchmarks.md.
set -euo pipefail

DURATION=${DURATION:-60s}
CONNS=${CONNS:-20}
SIZE=${SIZE:-1024}
HOP_CONNS=${HOP_CONNS:-10}

cd "$(dirname "$0")/.."
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hve-bench-e2e.XXXXXX")
HVE=$WORK/hve
SINK=$WORK/nexthop-sink
PIDS=()
cleanup() {
	for pid in "${PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	if [[ ${KEEP:-0} == 1 ]]; then
		echo "kept $WORK" >&2
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(go version | cut -d' ' -f3-), load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "building hve and the next hop ..." >&2
go build -o "$HVE" ./cmd/hve
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

# hve with the demo organisation.
DATA=$WORK/data
mkdir -p "$DATA"
"$HVE" serve --demo --data "$DATA" --smtp-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 --client-addr off \
	>"$WORK/serve.out" 2>"$WORK/serve.log" &
PIDS+=($!)
for _ in $(seq 100); do
	if grep -q '^  Password:' "$WORK/serve.out" 2>/dev/null && grep -q 'hve started' "$WORK/serve.log"; then
		break
	fi
	sleep 0.1
done
SMTP=$(awk '/SMTP endpoint:/ {print $3; exit}' "$WORK/serve.out")
PASSWORD=$(awk '/^  Password:/ {print $2; exit}' "$WORK/serve.out")
ADMIN=$(sed -n 's/.*admin=\(http:\/\/[^ ]*\).*/\1/p' "$WORK/serve.log" | head -1)
if [[ -z $SMTP || -z $PASSWORD || -z $ADMIN ]]; then
	cat "$WORK/serve.out" "$WORK/serve.log" >&2
	echo "could not read the SMTP address, admin address or password" >&2
	exit 1
fi

# sink.test is relayed to the next hop: its recipients need no mailboxes.
hve() { "$HVE" --server "$ADMIN" --data "$DATA" "$@"; }
hve domain add sink.test --type internal-relay >/dev/null
hve route set sink.test --type smtp --target "$HOP" --tls none --max-connections "$HOP_CONNS" >/dev/null
RCPTS=
for i in $(seq -w 1 10); do RCPTS+="${RCPTS:+,}r$i@sink.test"; done

depth() { curl -s "$ADMIN/healthz" | sed -n 's/.*"queue_depth": *\([0-9]*\).*/\1/p'; }
delivered() { tail -1 "$WORK/sink.out" | sed -n 's/.*"messages":\([0-9]*\).*/\1/p'; }

"$HVE" bench --addr "$SMTP" --auth "hr-notify@contoso.test:$PASSWORD" --rcpt-list "$RCPTS" \
	--conns "$CONNS" --rcpts 1 --size "$SIZE" --msgs 100000000 --duration "$DURATION" >"$WORK/bench.json" &
BENCH=$!
start=$(date +%s.%N)
maxdepth=0
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
