#!/usr/bin/env bash
# Measures hve's SMTP submission throughput on this machine, end to end:
# builds hve, starts `hve serve --demo` on a fresh temporary data directory
# for each workload, runs `hve bench` against it RUNS times, prints every
# result as a JSON line and then a table of medians.
#
#   scripts/bench.sh                 # all workloads, 3 runs of 20 s each
#   DURATION=10s RUNS=1 scripts/bench.sh W1 W4
#   RUNS=5 DURATION=10s scripts/bench.sh W1 W1L   # the cost of the limits engine
#
# Settings (environment): DURATION (per run, default 20s), RUNS (default 3),
# CONNS (default 20), MSGS (cap per run, default 1000000: runs are bounded
# by DURATION), KEEP=1 keeps the temporary directory.
#
# The numbers are informative only; no test asserts them. See
# docs/benchmarks.md.
set -euo pipefail

DURATION=${DURATION:-20s}
RUNS=${RUNS:-3}
CONNS=${CONNS:-20}
MSGS=${MSGS:-1000000}

cd "$(dirname "$0")/.."
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hve-bench.XXXXXX")
HVE=$WORK/hve
SERVER_PID=

stop_server() {
	if [[ -n $SERVER_PID ]]; then
		kill -TERM "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
		SERVER_PID=
	fi
}
cleanup() {
	stop_server
	if [[ ${KEEP:-0} == 1 ]]; then
		echo "kept $WORK" >&2
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(go version | cut -d' ' -f3-), load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "building hve ..." >&2
go build -o "$HVE" ./cmd/hve

# start_server DIR: starts hve serve --demo on free loopback ports and sets
# SMTP, ADMIN and PASSWORD from what it prints.
start_server() {
	local dir=$1
	mkdir -p "$dir"
	"$HVE" serve --demo --data "$dir" --smtp-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 --client-addr off \
		>"$dir/serve.out" 2>"$dir/serve.log" &
	SERVER_PID=$!
	for _ in $(seq 100); do
		if grep -q '^  Password:' "$dir/serve.out" 2>/dev/null && grep -q 'hve started' "$dir/serve.log"; then
			break
		fi
		if ! kill -0 "$SERVER_PID" 2>/dev/null; then
			cat "$dir/serve.log" >&2
			echo "hve serve exited" >&2
			exit 1
		fi
		sleep 0.1
	done
	SMTP=$(awk '/SMTP endpoint:/ {print $3; exit}' "$dir/serve.out")
	PASSWORD=$(awk '/^  Password:/ {print $2; exit}' "$dir/serve.out")
	ADMIN=$(sed -n 's/.*admin=\(http:\/\/[^ ]*\).*/\1/p' "$dir/serve.log" | head -1)
	if [[ -z $SMTP || -z $PASSWORD || -z $ADMIN ]]; then
		cat "$dir/serve.out" "$dir/serve.log" >&2
		echo "could not read the SMTP address, admin address or password" >&2
		exit 1
	fi
	# Ten mailboxes, so that a message can have ten distinct recipients
	# (the demo has four people and two groups; groups would multiply the
	# delivery work).
	RCPTS=
	for i in $(seq -w 1 10); do
		"$HVE" mailbox create --server "$ADMIN" --data "$dir" --address "bench$i@contoso.test" --name "bench$i" >/dev/null
		RCPTS+="${RCPTS:+,}bench$i@contoso.test"
	done
}

# name|hve bench flags
WORKLOADS=(
	"W1|--rcpts 1 --size 1024"
	"W2|--rcpts 10 --size 1024"
	"W3|--rcpts 1 --size 102400"
	"W4|--rcpts 1 --size 1024 --reconnect-per-message"
	"W4o|--rcpts 1 --size 1024 --reconnect-per-message --oauth"
	# W1 with limits on: a tenant daily limit and an account cap with a
	# warning level, all too high to be reached, so that every recipient
	# goes through the limits engine (docs/limits.md).
	"W1L|--rcpts 1 --size 1024 --limits"
)
SELECTED=("$@")

RESULTS=$WORK/results
: >"$RESULTS"
for w in "${WORKLOADS[@]}"; do
	name=${w%%|*}
	flags=${w#*|}
	if [[ ${#SELECTED[@]} -gt 0 && " ${SELECTED[*]} " != *" $name "* ]]; then
		continue
	fi
	start_server "$WORK/data-$name"
	auth=(--auth "hr-notify@contoso.test:$PASSWORD")
	if [[ $flags == *--limits* ]]; then
		flags=${flags/ --limits/}
		"$HVE" tenant set --server "$ADMIN" --data "$WORK/data-$name" --daily-recipient-limit 1000000000 >/dev/null
		"$HVE" account set --server "$ADMIN" --data "$WORK/data-$name" hr-notify@contoso.test \
			--daily-recipient-limit 1000000000 --warn-at 90 >/dev/null
	fi
	if [[ $flags == *--oauth* ]]; then
		# W4o: sign in with XOAUTH2 and a token of hve's own token service.
		flags=${flags/ --oauth/}
		app=$("$HVE" app create --server "$ADMIN" --data "$WORK/data-$name" --name bench --json)
		app_id=$(sed -n 's/.*"app_id": *"\([^"]*\)".*/\1/p' <<<"$app")
		secret=$(sed -n 's/.*"secret": *"\([^"]*\)".*/\1/p' <<<"$app")
		"$HVE" app grant --server "$ADMIN" --data "$WORK/data-$name" "$app_id" Mail.Send >/dev/null
		"$HVE" account allow-app --server "$ADMIN" --data "$WORK/data-$name" hr-notify@contoso.test "$app_id" >/dev/null
		token=$(curl -s "$ADMIN/oauth2/token" -d grant_type=client_credentials -d "client_id=$app_id" \
			--data-urlencode "client_secret=$secret" | sed -n 's/.*"access_token": *"\([^"]*\)".*/\1/p')
		auth=(--xoauth2 "hr-notify@contoso.test:$token")
	fi
	for run in $(seq "$RUNS"); do
		# shellcheck disable=SC2086 # flags are meant to split
		line=$("$HVE" bench --addr "$SMTP" "${auth[@]}" --rcpt-list "$RCPTS" \
			--conns "$CONNS" --msgs "$MSGS" --duration "$DURATION" $flags)
		echo "$name run $run: $line"
		echo "$name $line" >>"$RESULTS"
	done
	stop_server
done

# Medians of msgs/s, p50 and p99 per workload.
field() { sed -n "s/.*\"$1\":\([0-9.e+-]*\).*/\1/p"; }
median() { sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
echo
printf '%-4s %-46s %10s %10s %10s %s\n' "" "workload" "msgs/s" "p50 ms" "p99 ms" "(median of $RUNS runs, $CONNS conns, $DURATION each)"
for w in "${WORKLOADS[@]}"; do
	name=${w%%|*}
	grep -q "^$name " "$RESULTS" || continue
	lines=$(grep "^$name " "$RESULTS")
	printf '%-4s %-46s %10s %10s %10s\n' "$name" "${w#*|}" \
		"$(field msgs_per_s <<<"$lines" | median)" "$(field p50_ms <<<"$lines" | median)" "$(field p99_ms <<<"$lines" | median)"
done
