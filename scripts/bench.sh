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
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
cleanup() {
	stop_hve
	if [[ ${KEEP:-0} == 1 ]]; then
		echo "kept $WORK" >&2
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT

machine_info
build_hve

# start_server DIR: start_hve, then ten mailboxes, so that a message can
# have ten distinct recipients (the demo has four people and two groups;
# groups would multiply the delivery work); sets RCPTS.
start_server() {
	local dir=$1
	start_hve "$dir" || exit 1
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
	stop_hve
done

# Medians of msgs/s, p50 and p99 per workload.
echo
printf '%-4s %-46s %10s %10s %10s %s\n' "" "workload" "msgs/s" "p50 ms" "p99 ms" "(median of $RUNS runs, $CONNS conns, $DURATION each)"
for w in "${WORKLOADS[@]}"; do
	name=${w%%|*}
	grep -q "^$name " "$RESULTS" || continue
	lines=$(grep "^$name " "$RESULTS")
	printf '%-4s %-46s %10s %10s %10s\n' "$name" "${w#*|}" \
		"$(field msgs_per_s <<<"$lines" | median)" "$(field p50_ms <<<"$lines" | median)" "$(field p99_ms <<<"$lines" | median)"
done
