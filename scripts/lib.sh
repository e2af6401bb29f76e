# shellcheck shell=bash
# Shared by scripts/bench.sh, scripts/bench-e2e.sh and scripts/bench-suite.sh
# (source it after `set -euo pipefail` and after setting WORK, the
# script's temporary directory). It builds hve, starts and stops
# `hve serve --demo` nodes, and computes medians.

# machine_info prints one line about this machine to standard error.
machine_info() {
	echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(go version | cut -d' ' -f3-), load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
}

# build_hve: sets HVE to a freshly built hve binary in $WORK, or to
# $HVE_BIN when that is set (a binary the caller built already).
build_hve() {
	if [[ -n ${HVE_BIN:-} ]]; then
		HVE=$HVE_BIN
		return
	fi
	echo "building hve ..." >&2
	HVE=$WORK/hve
	go build -o "$HVE" ./cmd/hve
}

# start_hve DIR [serve flags...]: starts `hve serve --demo` on the data
# directory DIR with free loopback ports (extra flags go to serve, e.g.
# --config FILE or --pprof ADDR), waits until it is up and sets HVE_PID,
# SMTP (host:port), ADMIN (http://host:port) and PASSWORD (the demo
# account's, hr-notify@contoso.test). Returns 1, after printing the
# server's output, if it did not come up.
start_hve() {
	local dir=$1
	shift
	mkdir -p "$dir"
	"$HVE" serve --demo --data "$dir" --smtp-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 --client-addr off "$@" \
		>"$dir/serve.out" 2>"$dir/serve.log" &
	HVE_PID=$!
	local up=0
	for _ in $(seq 300); do
		if grep -q '^  Password:' "$dir/serve.out" 2>/dev/null && grep -q 'hve started' "$dir/serve.log"; then
			up=1
			break
		fi
		if ! kill -0 "$HVE_PID" 2>/dev/null; then
			break
		fi
		sleep 0.1
	done
	SMTP=$(awk '/SMTP endpoint:/ {print $3; exit}' "$dir/serve.out")
	PASSWORD=$(awk '/^  Password:/ {print $2; exit}' "$dir/serve.out")
	ADMIN=$(sed -n 's/.*admin=\(http:\/\/[^ ]*\).*/\1/p' "$dir/serve.log" | head -1)
	if [[ $up != 1 || -z $SMTP || -z $PASSWORD || -z $ADMIN ]]; then
		tail -20 "$dir/serve.out" "$dir/serve.log" >&2
		echo "hve serve did not start (or its SMTP address, admin address or password could not be read)" >&2
		stop_hve
		return 1
	fi
}

# stop_hve stops the node start_hve started last.
stop_hve() {
	if [[ -n ${HVE_PID:-} ]]; then
		stop_pid "$HVE_PID"
		HVE_PID=
	fi
}

# stop_pid PID: SIGTERM, then wait for it.
stop_pid() {
	kill -TERM "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# rss_kb PID [field]: the process's resident memory in KiB (VmRSS, or
# another field of /proc/PID/status such as VmHWM, the peak).
rss_kb() {
	awk -v f="${2:-VmRSS}:" '$1 == f {print $2}' "/proc/$1/status" 2>/dev/null || true
}

# field NAME: reads a number field from JSON lines on standard input.
field() { sed -n "s/.*\"$1\":\([0-9.e+-]*\).*/\1/p"; }

# median: the median of the numbers on standard input (empty for none).
median() { sort -g | awk '{v[NR]=$1} END {if (NR == 0) exit; if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
