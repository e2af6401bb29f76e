#!/usr/bin/env bash
# The benchmark suite of docs/benchmarks.md: runs the same workloads, in
# one run on this machine, against
#
#   postfix  Postfix as an authenticated submission server (STARTTLS, SASL
#            through Dovecot, queue on the same disk, relaying to Postfix's
#            smtp-sink, which discards), configured as in
#            shared/bench-reference, in a configuration directory of its own
#   sink     a no-op Go SMTP sink with STARTTLS and AUTH (hve bench-sink)
#   durable  the same sink writing every message to a file and fsyncing it
#            before the 250, with group commit (hve bench-sink --durable)
#   hve      hve serve --demo on the embedded store, relaying to a no-op
#            next hop (scripts/nexthop-sink)
#   pg       the same on the PostgreSQL store (a fresh database)
#   nostore  hve as the hve target, built with the tag hve_discard_spool:
#            the embedded store does not write the spool's batches nor
#            the delivery outcomes (nothing else changes: sessions,
#            sign-in, trace events made, delivery from memory to the
#            next hop). A measurement, not a server: what hve reaches if
#            its store cost nothing (W1-W3 only)
#
# and prints a table with msgs/s, p50 and p99 of the MAIL..250 transaction,
# the server's CPU time per accepted message (from /proc), the ratios
# (hve/Postfix, hve/durable sink, PG/embedded, nostore/durable sink) and which targets of the
# scale issue are met. Every server uses the same self-signed
# RSA-2048 certificate. Workloads (hve bench; STARTTLS + AUTH PLAIN):
#
#   W1  1 KB body, 1 recipient, CONNS connections, each reused
#   W2  as W1 with 10 recipients
#   W3  as W1 with a 100 KB body
#   W4  as W1 with a new connection (STARTTLS + AUTH) for every message
#   W5  W5_CONNS connections opened and signed in first, all idle for
#       W5_IDLE, then all active for W5_DURATION; a fresh server for each
#       run, its resident memory (VmRSS) sampled 4 times a second (not
#       Postfix: its reference configuration allows 200 smtpd processes)
#   HALF  W1 against hve and pg at half their median W1 rate (--rate): the
#       p99 at half the maximum rate; each node first gets HALF_WARMUP (5s)
#       at that rate, not counted
#   E2E   scripts/bench-e2e.sh: W1 for E2E_DURATION with delivery to a
#       next hop, queue depth sampled every second (hve and pg)
#
#   scripts/bench-suite.sh                       # everything, 3 runs of 20 s
#   DURATION=5s RUNS=1 W5_CONNS=200 E2E_DURATION=10s scripts/bench-suite.sh
#   TARGETS="hve sink" scripts/bench-suite.sh W1 W4
#   PROFILE=1 TARGETS=hve RUNS=1 scripts/bench-suite.sh W1 W4   # CPU profiles
#
# Settings (environment): RUNS (default 3; each figure is a median),
# DURATION (per run, default 20s), CONNS (default 20), TARGETS (default
# "postfix sink durable hve pg nostore"), W5_CONNS (2000), W5_IDLE (10s),
# W5_DURATION (DURATION), E2E_DURATION (60s), HOP_CONNS (hve's connections
# to its next hop, default 20 like Postfix's destination concurrency),
# PG_BASE (default postgres://postgres@127.0.0.1:5432: the suite creates
# and drops a database there with psql), PF_PORT (2587), PF_SINK_PORT
# (2626), PROFILE=1 (CPU profiles of hve through --pprof during the first
# W1 and W4 runs and the second HALF run, and `go tool pprof -top` of each), HALF_RATE (the
# rate of HALF in msgs/s instead of half the W1 median, to compare two
# trees at one rate without running W1), OUT (where results
# and profiles are kept, default /var/tmp/hve-bench-suite-DATE), KEEP=1
# (keep the temporary directory with every server's logs).
#
# It must run as root (Postfix and Dovecot with a configuration of their
# own), and installs Postfix, Dovecot and openssl from Debian packages if
# they are missing. A target that does not start is reported as failed and
# the suite goes on. The numbers are informative only; no test asserts them.
set -euo pipefail

RUNS=${RUNS:-3}
DURATION=${DURATION:-20s}
CONNS=${CONNS:-20}
TARGETS=${TARGETS:-postfix sink durable hve pg nostore}
W5_CONNS=${W5_CONNS:-2000}
W5_IDLE=${W5_IDLE:-10s}
W5_DURATION=${W5_DURATION:-$DURATION}
E2E_DURATION=${E2E_DURATION:-60s}
HALF_WARMUP=${HALF_WARMUP:-5s}
HOP_CONNS=${HOP_CONNS:-20}
PG_BASE=${PG_BASE:-postgres://postgres@127.0.0.1:5432}
PF_PORT=${PF_PORT:-2587}
PF_SINK_PORT=${PF_SINK_PORT:-2626}
PROFILE=${PROFILE:-0}
MSGS=100000000 # runs are bounded by time
SELECTED=("$@")
if [[ ${#SELECTED[@]} -eq 0 ]]; then
	SELECTED=(W1 W2 W3 W4 W5 HALF E2E)
fi
selected() { [[ " ${SELECTED[*]} " == *" $1 "* ]]; }
wanted() { [[ " $TARGETS " == *" $1 "* ]]; }

cd "$(dirname "$0")/.."
REPO=$PWD
# Under /var/tmp: on the same disk as everything else (not a tmpfs), and
# reachable by the postfix user.
WORK=$(mktemp -d /var/tmp/hve-suite.XXXXXX)
chmod 755 "$WORK"
OUT=${OUT:-/var/tmp/hve-bench-suite-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

declare -A ADDR AUTHS FROM RCPTS PID ADMINS STATE
PIDS=()
PG_DBS=()
PF_CONF=$WORK/postfix/conf
cleanup() {
	set +e
	if [[ -n ${PF_STARTED:-} ]]; then
		postfix -c "$PF_CONF" stop >/dev/null 2>&1
	fi
	for pid in "${PID[@]}" "${PIDS[@]}"; do
		stop_pid "$pid"
	done
	for db in "${PG_DBS[@]}"; do
		psql "$PG_BASE/postgres?sslmode=disable" -qAtc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1
	done
	if [[ ${KEEP:-0} == 1 ]]; then
		echo "kept $WORK" >&2
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# --- what the suite needs -------------------------------------------------
missing=()
if wanted postfix; then
	command -v postfix >/dev/null 2>&1 || missing+=(postfix)
	command -v dovecot >/dev/null 2>&1 || missing+=(dovecot-core)
fi
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [[ ${#missing[@]} -gt 0 ]]; then
	if [[ $(id -u) != 0 ]]; then
		echo "missing ${missing[*]}; run as root to install them" >&2
		exit 1
	fi
	log "installing ${missing[*]} ..."
	export DEBIAN_FRONTEND=noninteractive
	# Postfix's package is configured by hand below, not by debconf.
	echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
	apt-get update </dev/null >/dev/null
	apt-get install -y --no-install-recommends "${missing[@]}" </dev/null >/dev/null
fi
if wanted postfix && [[ $(id -u) != 0 ]]; then
	echo "the postfix target needs root (Postfix and Dovecot with their own configuration); run as root or set TARGETS without postfix" >&2
	exit 1
fi

machine_info
echo "tree: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' plus uncommitted changes'), $(date -u '+%Y-%m-%d %H:%M UTC')" >&2
echo "suite: RUNS=$RUNS DURATION=$DURATION CONNS=$CONNS TARGETS=\"$TARGETS\" W5_CONNS=$W5_CONNS W5_IDLE=$W5_IDLE E2E_DURATION=$E2E_DURATION workloads: ${SELECTED[*]}" >&2
build_hve
go build -o "$WORK/nexthop-sink" ./scripts/nexthop-sink
if wanted nostore; then
	go build -tags hve_discard_spool -o "$WORK/hve-nostore" ./cmd/hve
fi

# One self-signed RSA-2048 certificate for every server.
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=bench.local \
	-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
	-keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
chmod 644 "$WORK/key.pem" "$WORK/cert.pem"

# wait_port PORT [PID]: until something accepts on 127.0.0.1:PORT (10 s).
wait_port() {
	for _ in $(seq 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
			return 0
		fi
		if [[ -n ${2:-} ]] && ! kill -0 "$2" 2>/dev/null; then
			return 1
		fi
		sleep 0.1
	done
	return 1
}

RCPTS_EXAMPLE=$(printf 'r%02d@example.com,' $(seq 10))
RCPTS_EXAMPLE=${RCPTS_EXAMPLE%,}
RCPTS_SINK=$(printf 'r%02d@sink.test,' $(seq 10))
RCPTS_SINK=${RCPTS_SINK%,}

# --- Postfix + Dovecot, as in shared/bench-reference ---------------------
start_postfix() {
	local pf=$WORK/postfix dc=$WORK/dovecot
	mkdir -p "$PF_CONF" "$pf/queue" "$pf/data" "$dc/run" "$dc/state"
	chown postfix:postfix "$pf/data"
	echo "bench:{PLAIN}benchpass" >"$dc/users"
	cat >"$PF_CONF/main.cf" <<EOF
# Postfix 3.7 benchmark instance (shared/bench-reference/main.cf): authenticated
# submission on 127.0.0.1:$PF_PORT only, in a configuration directory of its own.
compatibility_level = 3.6
config_directory = $PF_CONF
queue_directory = $pf/queue
data_directory = $pf/data
meta_directory = /etc/postfix
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = bench.local
mydomain = bench.local
myorigin = \$myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtp_dns_support_level = disabled
smtp_host_lookup = native
lmtp_host_lookup = native
smtpd_peername_lookup = no
relay_domains = example.com
transport_maps = inline:{ example.com=smtp:[127.0.0.1]:$PF_SINK_PORT }
default_transport = error:bench instance delivers only to example.com
relay_transport = error:bench instance delivers only to example.com
local_transport = error:no local delivery
smtp_tls_security_level = none
default_destination_concurrency_limit = 20
smtp_destination_concurrency_limit = 20
smtpd_tls_cert_file = $WORK/cert.pem
smtpd_tls_key_file = $WORK/key.pem
smtpd_tls_security_level = may
smtpd_tls_session_cache_database = btree:\${data_directory}/smtpd_scache
smtpd_sasl_type = dovecot
smtpd_sasl_path = private/auth
smtpd_sasl_auth_enable = no
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_recipient_restrictions = permit_sasl_authenticated, reject
default_process_limit = 200
message_size_limit = 52428800
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
anvil_rate_time_unit = 60s
maillog_file = $pf/maillog
maillog_file_prefixes = $pf
biff = no
append_dot_mydomain = no
readme_directory = no
alias_maps =
alias_database =
EOF
	sed "s/^2587 /$PF_PORT /" /dev/stdin >"$PF_CONF/master.cf" <<'EOF'
2587      inet  n       -       n       -       -       smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=encrypt
  -o smtpd_tls_auth_only=yes
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
  -o smtpd_recipient_restrictions=permit_sasl_authenticated,reject
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
	cat >"$dc/dovecot.conf" <<EOF
# Dovecot as Postfix's SASL server only (shared/bench-reference/dovecot.conf).
protocols =
listen = 127.0.0.1
base_dir = $dc/run
state_dir = $dc/state
log_path = $dc/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $dc/users
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}
service auth {
  unix_listener $pf/queue/private/auth {
    mode = 0660
    user = postfix
    group = postfix
  }
}
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
EOF
	# postfix check creates the queue directories with their owners.
	if ! postfix -c "$PF_CONF" check >"$pf/check.log" 2>&1; then
		cat "$pf/check.log" >&2
		return 1
	fi
	dovecot -F -c "$dc/dovecot.conf" >"$dc/stdout.log" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 100); do
		[[ -S $pf/queue/private/auth ]] && break
		sleep 0.1
	done
	if [[ ! -S $pf/queue/private/auth ]]; then
		cat "$dc/stdout.log" "$dc/dovecot.log" >&2 2>/dev/null
		echo "dovecot did not start" >&2
		return 1
	fi
	smtp-sink -c -u nobody "127.0.0.1:$PF_SINK_PORT" 1024 >"$pf/smtp-sink.out" 2>&1 &
	PIDS+=($!)
	postfix -c "$PF_CONF" start-fg >"$pf/master.log" 2>&1 &
	PF_STARTED=$!
	PIDS+=($!)
	if ! wait_port "$PF_PORT" "$PF_STARTED" || ! wait_port "$PF_SINK_PORT"; then
		cat "$pf/master.log" "$pf/maillog" >&2 2>/dev/null
		echo "postfix did not start" >&2
		return 1
	fi
	ADDR[postfix]=127.0.0.1:$PF_PORT
	AUTHS[postfix]=bench:benchpass
	FROM[postfix]=bench@example.com
	RCPTS[postfix]=$RCPTS_EXAMPLE
}

# postfix_depth: messages in Postfix's queue.
postfix_depth() {
	find "$WORK/postfix/queue/"{maildrop,incoming,active,deferred,hold} -type f 2>/dev/null | wc -l
}

# --- the sinks ------------------------------------------------------------
# start_sink NAME [--durable DIR]
start_sink() {
	local name=$1
	shift
	# A log left by an earlier instance would be read before the new one
	# truncates it.
	rm -f "$WORK/$name.log" "$WORK/$name.out"
	"$HVE" bench-sink --addr 127.0.0.1:0 --cert "$WORK/cert.pem" --key "$WORK/key.pem" "$@" \
		>"$WORK/$name.out" 2>"$WORK/$name.log" &
	PID[$name]=$!
	for _ in $(seq 100); do
		grep -q 'listening on' "$WORK/$name.log" 2>/dev/null && break
		sleep 0.1
	done
	ADDR[$name]=$(sed -n 's/.*listening on \(.*\)$/\1/p' "$WORK/$name.log")
	if [[ -z ${ADDR[$name]} ]]; then
		cat "$WORK/$name.log" >&2
		return 1
	fi
	AUTHS[$name]=bench:benchpass
	FROM[$name]=bench@example.com
	RCPTS[$name]=$RCPTS_EXAMPLE
}

# --- hve ------------------------------------------------------------------
HOP_STARTED=
start_hop() {
	[[ -n $HOP_STARTED ]] && return
	"$WORK/nexthop-sink" -listen 127.0.0.1:0 -every 1h >"$WORK/hop.out" 2>"$WORK/hop.log" &
	PIDS+=($!)
	for _ in $(seq 50); do
		grep -q 'listening on' "$WORK/hop.log" 2>/dev/null && break
		sleep 0.1
	done
	HOP=$(sed -n 's/.*listening on \(.*\)$/\1/p' "$WORK/hop.log")
	[[ -n $HOP ]] || { cat "$WORK/hop.log" >&2; return 1; }
	HOP_STARTED=1
}

# new_pg_db: creates a fresh database and sets PG_CONFIG to a config file
# naming it as the store.
new_pg_db() {
	local db
	db=hve_bench_$$_$((${#PG_DBS[@]} + 1))
	command -v psql >/dev/null 2>&1 || { echo "psql is not installed" >&2; return 1; }
	psql "$PG_BASE/postgres?sslmode=disable" -qAtc "CREATE DATABASE $db" >/dev/null || return 1
	PG_DBS+=("$db")
	PG_CONFIG=$WORK/$db.toml
	echo "store = \"$PG_BASE/$db?sslmode=disable\"" >"$PG_CONFIG"
}

# start_hve_target NAME [pprof address]: a fresh hve node (embedded for
# hve, a fresh PostgreSQL database for pg) relaying sink.test to the next
# hop, with the suite's certificate.
HVE_N=0
start_hve_target() {
	local name=$1 pprof=${2:-} dir flags=()
	HVE_N=$((HVE_N + 1))
	dir=$WORK/$name-$HVE_N
	mkdir -p "$dir"
	cp "$WORK/cert.pem" "$dir/tls.crt"
	cp "$WORK/key.pem" "$dir/tls.key"
	chmod 600 "$dir/tls.key"
	if [[ $name == pg ]]; then
		new_pg_db || return 1
		flags+=(--config "$PG_CONFIG")
	fi
	[[ -n $pprof ]] && flags+=(--pprof "$pprof")
	start_hop || return 1
	if [[ $name == nostore ]]; then
		HVE=$WORK/hve-nostore start_hve "$dir" "${flags[@]}" || return 1
	else
		start_hve "$dir" "${flags[@]}" || return 1
	fi
	PID[$name]=$HVE_PID
	HVE_PID=
	ADMINS[$name]=$ADMIN
	"$HVE" --server "$ADMIN" --data "$dir" domain add sink.test --type internal-relay >/dev/null || return 1
	"$HVE" --server "$ADMIN" --data "$dir" route set sink.test --type smtp --target "$HOP" --tls none \
		--max-connections "$HOP_CONNS" >/dev/null || return 1
	ADDR[$name]=$SMTP
	AUTHS[$name]=hr-notify@contoso.test:$PASSWORD
	FROM[$name]=hr-notify@contoso.test
	RCPTS[$name]=$RCPTS_SINK
}

hve_depth() { curl -s "${ADMINS[$1]}/healthz" | sed -n 's/.*"queue_depth": *\([0-9]*\).*/\1/p'; }

# start_target NAME: starts it, or marks it failed.
start_target() {
	local name=$1 ok=1
	log "starting $name ..."
	case $name in
	postfix) start_postfix || ok=0 ;;
	sink) start_sink sink || ok=0 ;;
	durable) start_sink durable --durable "$WORK/durable-spool" || ok=0 ;;
	hve | pg | nostore)
		local pprof=
		[[ $PROFILE == 1 ]] && pprof=127.0.0.1:$((6060 + ${#name}))
		start_hve_target "$name" "$pprof" || ok=0
		;;
	esac
	if [[ $ok == 1 ]]; then
		STATE[$name]=up
	else
		STATE[$name]=failed
		log "$name did not start: reported as failed"
	fi
}

stop_target() {
	local name=$1
	if [[ -n ${PID[$name]:-} ]]; then
		stop_pid "${PID[$name]}"
		unset "PID[$name]"
	fi
}

# settle NAME: waits (at most 120 s) until the target's queue is empty, so
# that delivery left over from one run does not load the next.
settle() {
	local name=$1 d
	for _ in $(seq 240); do
		case $name in
		postfix) d=$(postfix_depth) ;;
		hve | pg | nostore) d=$(hve_depth "$name") ;;
		*) return 0 ;;
		esac
		[[ ${d:-0} == 0 ]] && return 0
		sleep 0.5
	done
	log "$name: queue not empty after 120 s ($d)"
}

workload_flags() {
	case $1 in
	W1) echo "--rcpts 1 --size 1024" ;;
	W2) echo "--rcpts 10 --size 1024" ;;
	W3) echo "--rcpts 1 --size 102400" ;;
	W4) echo "--rcpts 1 --size 1024 --reconnect-per-message" ;;
	esac
}

RESULTS=$OUT/results.jsonl
: >"$RESULTS"

# cpu_ticks PID: CPU time (clock ticks) used by PID and its descendants,
# including the descendants that have ended (Postfix's smtpd processes
# come and go).
cpu_ticks() {
	local pids=$1 all
	all=$(ps -eo pid=,ppid=)
	local frontier=$1 next
	while [[ -n $frontier ]]; do
		next=$(awk -v f=" $frontier " 'index(f, " " $2 " ") {printf "%s ", $1}' <<<"$all")
		pids+=" $next"
		frontier=${next% }
	done
	local total=0 p
	for p in $pids; do
		total=$((total + $(awk '{sub(/^.*\) /, ""); print $12 + $13 + $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
	done
	echo "$total"
}
TICKS=$(getconf CLK_TCK)
# server_pid NAME: the process whose CPU time is the target's (Postfix: its
# master and every process under it; not Dovecot or the discarding sink,
# as hve's next hop is not counted either).
server_pid() {
	case $1 in
	postfix) echo "${PF_STARTED:-}" ;;
	*) echo "${PID[$1]:-}" ;;
	esac
}

# bench NAME WORKLOAD [hve bench flags...]: one run; appends
# "NAME WORKLOAD {json}" to RESULTS.
# load NAME [hve bench flags]: hve bench against a target, its JSON line on
# stdout.
load() {
	local name=$1
	shift
	"$HVE" bench --addr "${ADDR[$name]}" --auth "${AUTHS[$name]}" --from "${FROM[$name]}" \
		--rcpt-list "${RCPTS[$name]}" --msgs "$MSGS" "$@" 2>>"$OUT/bench-errors.log"
}

bench() {
	local name=$1 w=$2 line pid c0=0 c1=0
	shift 2
	pid=$(server_pid "$name")
	[[ -n $pid ]] && c0=$(cpu_ticks "$pid")
	line=$(load "$name" "$@") || true
	[[ -n $line ]] || line='{"failed":true}'
	if [[ -n $pid && $line != *failed* ]]; then
		# The server's CPU time over the run, and per accepted message.
		c1=$(cpu_ticks "$pid")
		line="${line%\}},\"server_cpu_s\":$(awk -v d=$((c1 - c0)) -v t="$TICKS" 'BEGIN {printf "%.2f", d / t}'),\"cpu_ms_per_msg\":$(awk -v d=$((c1 - c0)) -v t="$TICKS" -v n="$(field accepted <<<"$line")" 'BEGIN {if (n > 0) printf "%.3f", d / t * 1000 / n; else print 0}')}"
	fi
	echo "$name $w $line" >>"$RESULTS"
	log "$name $w: $line"
}

# profile NAME WORKLOAD: a CPU profile of the node during the run that
# starts now, through --pprof.
profile_bg() {
	local name=$1 w=$2 secs
	secs=$(($(sed 's/s$//' <<<"$DURATION") - 2))
	((secs < 1)) && secs=1
	curl -s "http://127.0.0.1:$((6060 + ${#name}))/debug/pprof/profile?seconds=$secs" -o "$OUT/$name-$w.pprof" &
	PROF_PID=$!
}

# profile_done NAME WORKLOAD: waits for the profile profile_bg started, if
# any, and writes its `go tool pprof -top`.
profile_done() {
	[[ -n $PROF_PID ]] || return 0
	wait "$PROF_PID" || true
	go tool pprof -top "$HVE" "$OUT/$1-$2.pprof" >"$OUT/$1-$2.top.txt" 2>/dev/null || true
}

# --- W1..W4, then HALF ---------------------------------------------------
# Runs are interleaved (run 1 of every target, then run 2, ...) so that a
# change in the machine's load touches every target alike. Postfix and the
# sinks stay up (idle, they cost nothing); an hve node is started fresh for
# each run and stopped after it, so that its background work (delivery,
# usage metering, trace) does not load the other targets' runs.
PHASE1=()
for w in W1 W2 W3 W4; do selected "$w" && PHASE1+=("$w"); done
is_node() { [[ $1 == hve || $1 == pg || $1 == nostore ]]; }
if [[ ${#PHASE1[@]} -gt 0 ]]; then
	for t in $TARGETS; do is_node "$t" || start_target "$t"; done
	for run in $(seq "$RUNS"); do
		for t in $TARGETS; do
			is_node "$t" && [[ ${STATE[$t]:-} != failed ]] && start_target "$t"
			[[ ${STATE[$t]} == up ]] || continue
			for w in "${PHASE1[@]}"; do
				[[ $t == nostore && $w == W4 ]] && continue
				PROF_PID=
				if [[ $PROFILE == 1 && $run == 1 ]] && is_node "$t"; then
					profile_bg "$t" "$w"
				fi
				# shellcheck disable=SC2046 # flags are meant to split
				bench "$t" "$w" --conns "$CONNS" --duration "$DURATION" $(workload_flags "$w")
				profile_done "$t" "$w"
				settle "$t"
			done
			is_node "$t" && stop_target "$t"
		done
	done
fi

# med NAME WORKLOAD FIELD: the median over the runs.
# med TARGET WORKLOAD FIELD: the median of a field over the runs; empty
# (not an error) when the workload was not run.
med() { { grep "^$1 $2 " "$RESULTS" || true; } | { grep -v '"failed"' || true; } | field "$3" | median; }

if selected HALF; then
	for t in hve pg; do
		wanted "$t" && [[ ${STATE[$t]:-} != failed ]] || continue
		if [[ -n ${HALF_RATE:-} ]]; then
			rate=$HALF_RATE
		else
			max=$(med "$t" W1 msgs_per_s)
			if [[ -z $max ]]; then
				log "$t: no W1 figure to halve; run W1 too, or set HALF_RATE"
				continue
			fi
			rate=$(awk -v m="$max" 'BEGIN {printf "%.0f", m / 2}')
		fi
		start_target "$t"
		[[ ${STATE[$t]} == up ]] || continue
		# A fresh node's first seconds also measure the growth of its heap,
		# its database files and its caches; HALF_WARMUP at the same rate,
		# not counted, lets every run measure a node in steady state.
		# shellcheck disable=SC2046
		load "$t" --conns "$CONNS" --duration "$HALF_WARMUP" --rate "$rate" $(workload_flags W1) >/dev/null || true
		settle "$t"
		for run in $(seq "$RUNS"); do
			PROF_PID=
			[[ $PROFILE == 1 && $run == 2 ]] && profile_bg "$t" HALF
			# shellcheck disable=SC2046
			bench "$t" HALF --conns "$CONNS" --duration "$DURATION" --rate "$rate" $(workload_flags W1)
			profile_done "$t" HALF
			settle "$t"
		done
		stop_target "$t"
	done
fi
for t in sink durable; do stop_target "$t"; done

# --- W5: many idle-then-active sessions, fresh servers --------------------
if selected W5; then
	for run in $(seq "$RUNS"); do
		for t in sink durable hve pg; do
			wanted "$t" || continue
			[[ ${STATE[$t]:-} == failed ]] && continue
			start_target "$t"
			[[ ${STATE[$t]} == up ]] || continue
			pid=${PID[$t]}
			sleep 1
			base=$(rss_kb "$pid")
			load "$t" --rcpts 1 --size 1024 --conns "$W5_CONNS" --idle-for "$W5_IDLE" --duration "$W5_DURATION" >"$WORK/w5.json" &
			bpid=$!
			t0=$(date +%s.%N)
			port=${ADDR[$t]##*:}
			heap=
			: >"$WORK/w5.samples"
			while kill -0 "$bpid" 2>/dev/null; do
				echo "$(awk -v s="$t0" -v n="$(date +%s.%N)" 'BEGIN {printf "%.2f", n - s}') $(rss_kb "$pid")" >>"$WORK/w5.samples"
				if [[ $PROFILE == 1 && $run == 1 && ($t == hve || $t == pg) && -z $heap ]] &&
					(($(ss -Htn state established "( sport = :$port )" | wc -l) >= W5_CONNS)); then
					# Every session open and idle: where their memory is.
					heap=1
					sleep 1
					curl -s "http://127.0.0.1:$((6060 + ${#t}))/debug/pprof/heap" -o "$OUT/$t-W5-idle.heap.pprof"
					go tool pprof -sample_index=inuse_space -top "$HVE" "$OUT/$t-W5-idle.heap.pprof" >"$OUT/$t-W5-idle.heap.top.txt" 2>/dev/null || true
				fi
				sleep 0.25
			done
			wait "$bpid" || true
			hwm=$(rss_kb "$pid" VmHWM)
			line=$(cat "$WORK/w5.json")
			[[ -n $line ]] || line='{"failed":true}'
			# The largest RSS while every session was open and idle, and the
			# largest of the whole run.
			ramp=$(field ramp_s <<<"$line")
			idle=$(field idle_s <<<"$line")
			idle_rss=$(awk -v a="${ramp:-0}" -v i="${idle:-0}" '$1 >= a + 0.3 && $1 <= a + i - 0.1 && $2 > m {m = $2} END {print m + 0}' "$WORK/w5.samples")
			peak=$(awk '$2 > m {m = $2} END {print m + 0}' "$WORK/w5.samples")
			cp "$WORK/w5.samples" "$OUT/$t-W5-run$run.rss.txt"
			line="${line%\}},\"rss_base_kb\":${base:-0},\"rss_idle_kb\":$idle_rss,\"rss_peak_kb\":$peak,\"hwm_kb\":${hwm:-0}}"
			echo "$t W5 $line" >>"$RESULTS"
			log "$t W5: $line"
			stop_target "$t"
		done
	done
fi

# --- E2E: the queue during a long W1 with delivery ------------------------
if selected E2E; then
	for t in hve pg; do
		wanted "$t" || continue
		[[ ${STATE[$t]:-} == failed ]] && continue
		flags=
		if [[ $t == pg ]]; then
			new_pg_db || { log "pg: no database for E2E"; continue; }
			flags="--config $PG_CONFIG"
		fi
		log "$t E2E: W1 for $E2E_DURATION with delivery to a next hop ..."
		HVE_BIN=$HVE HVE_SERVE_FLAGS=$flags DURATION=$E2E_DURATION CONNS=$CONNS HOP_CONNS=$HOP_CONNS \
			bash "$REPO/scripts/bench-e2e.sh" >"$OUT/$t-e2e.txt" 2>"$OUT/$t-e2e.log" || true
		# First and last ten one-second samples of the queue depth.
		samples=$(grep '"t_s"' "$OUT/$t-e2e.txt" | field queue_depth || true)
		first=$(head -10 <<<"$samples" | awk '{s+=$1} END {if (NR) printf "%.0f", s/NR}')
		last=$(tail -10 <<<"$samples" | awk '{s+=$1} END {if (NR) printf "%.0f", s/NR}')
		line=$(grep '"e2e"' "$OUT/$t-e2e.txt" || echo '{"failed":true}')
		line="${line%\}},\"depth_first10_mean\":${first:-0},\"depth_last10_mean\":${last:-0}}"
		echo "$t E2E $line" >>"$RESULTS"
		log "$t E2E: $line"
	done
fi

# --- the report -----------------------------------------------------------
{
	echo
	echo "results (medians of $RUNS runs; W1-W4 and HALF: $CONNS connections, $DURATION each; W5: $W5_CONNS connections, $W5_IDLE idle, then $W5_DURATION)"
	printf '%-8s %-8s %10s %9s %9s %11s %8s %6s\n' workload target msgs/s p50_ms p99_ms cpu_ms/msg errors runs
	for w in W1 W2 W3 W4 HALF W5; do
		for t in $TARGETS; do
			n=$(grep -c "^$t $w " "$RESULTS" || true)
			[[ $n -gt 0 ]] || continue
			if [[ $(grep "^$t $w " "$RESULTS" | grep -vc '"failed"' || true) == 0 ]]; then
				printf '%-8s %-8s %10s\n' "$w" "$t" "failed"
				continue
			fi
			printf '%-8s %-8s %10s %9s %9s %11s %8s %6s\n' "$w" "$t" "$(med "$t" "$w" msgs_per_s)" "$(med "$t" "$w" p50_ms)" \
				"$(med "$t" "$w" p99_ms)" "$(med "$t" "$w" cpu_ms_per_msg)" "$(grep "^$t $w " "$RESULTS" | field errors | awk '{s+=$1} END {print s+0}')" "$n"
		done
	done
	for t in $TARGETS; do
		[[ ${STATE[$t]:-} == failed ]] && echo "$t: FAILED to start (see the log above)"
	done

	echo
	ratio() { # ratio A B: A/B, or - when either is missing
		if [[ -n $1 && -n $2 ]] && awk -v b="$2" 'BEGIN {exit !(b > 0)}'; then
			awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'
		else
			echo -
		fi
	}
	verdict() { # verdict RATIO MIN
		if [[ $1 == - ]]; then echo "not measured"; elif awk -v r="$1" -v m="$2" 'BEGIN {exit !(r >= m)}'; then echo met; else echo "NOT met"; fi
	}
	echo "ratios and targets"
	printf '%-44s %8s %8s  %s\n' "" ratio target verdict
	r=$(ratio "$(med hve W1 msgs_per_s)" "$(med postfix W1 msgs_per_s)")
	printf '%-44s %8s %8s  %s\n' "hve / Postfix, W1" "$r" ">= 8" "$(verdict "$r" 8)"
	for w in W2 W3 W4; do
		printf '%-44s %8s %8s\n' "hve / Postfix, $w" "$(ratio "$(med hve $w msgs_per_s)" "$(med postfix $w msgs_per_s)")" ""
	done
	for w in W1 W2 W3; do
		r=$(ratio "$(med hve $w msgs_per_s)" "$(med durable $w msgs_per_s)")
		printf '%-44s %8s %8s  %s\n' "hve / durable sink, $w" "$r" ">= 0.5" "$(verdict "$r" 0.5)"
	done
	r=$(ratio "$(med hve W4 msgs_per_s)" "$(med durable W4 msgs_per_s)")
	printf '%-44s %8s %8s  %s\n' "hve / durable sink, W4" "$r" ">= 0.8" "$(verdict "$r" 0.8)"
	r=$(ratio "$(med hve W4 msgs_per_s)" "$(med sink W4 msgs_per_s)")
	printf '%-44s %8s %8s  %s\n' "hve / no-op sink, W4" "$r" ">= 0.8" "$(verdict "$r" 0.8)"
	# The ceiling: hve with a store that costs nothing. A target above it
	# is out of reach of any store; hve / nostore is the store's share.
	if wanted nostore; then
		printf '%-44s %8s\n' "nostore / Postfix, W1" "$(ratio "$(med nostore W1 msgs_per_s)" "$(med postfix W1 msgs_per_s)")"
		for w in W1 W2 W3; do
			printf '%-44s %8s\n' "nostore / durable sink, $w" "$(ratio "$(med nostore $w msgs_per_s)" "$(med durable $w msgs_per_s)")"
			printf '%-44s %8s\n' "hve / nostore, $w" "$(ratio "$(med hve $w msgs_per_s)" "$(med nostore $w msgs_per_s)")"
		done
	fi
	for w in W1 W2 W3 W4; do
		printf '%-44s %8s %8s\n' "durable sink / no-op sink, $w" "$(ratio "$(med durable $w msgs_per_s)" "$(med sink $w msgs_per_s)")" ""
	done
	r=$(ratio "$(med pg W1 msgs_per_s)" "$(med hve W1 msgs_per_s)")
	printf '%-44s %8s %8s  %s\n' "PostgreSQL / embedded, W1" "$r" ">= 0.5" "$(verdict "$r" 0.5)"
	for w in W2 W3 W4; do
		printf '%-44s %8s %8s\n' "PostgreSQL / embedded, $w" "$(ratio "$(med pg $w msgs_per_s)" "$(med hve $w msgs_per_s)")" ""
	done
	for t in hve pg; do
		p=$(med "$t" HALF p99_ms)
		[[ -n $p ]] || continue
		v=$(awk -v p="$p" 'BEGIN {print (p < 20) ? "met" : "NOT met"}')
		printf '%-44s %8s %8s  %s\n' "$t p99 ms at half its W1 rate ($(med "$t" HALF msgs_per_s) msgs/s)" "$p" "< 20" "$v"
	done
	for t in sink durable hve pg; do
		grep -q "^$t W5 " "$RESULTS" || continue
		lines=$(grep "^$t W5 " "$RESULTS" | grep -v '"failed"' || true)
		[[ -n $lines ]] || { echo "$t W5: failed"; continue; }
		open=$(field open_idle <<<"$lines" | median)
		peak=$(field rss_peak_kb <<<"$lines" | median)
		idle=$(field rss_idle_kb <<<"$lines" | median)
		base=$(field rss_base_kb <<<"$lines" | median)
		mib() { awk -v k="$1" 'BEGIN {printf "%.0f", k / 1024}'; }
		per=$(awk -v p="$idle" -v b="$base" -v n="$open" 'BEGIN {if (n > 0) printf "%.0f", (p - b) / n; else print "-"}')
		v=$(awk -v p="$peak" -v n="$open" -v want="$W5_CONNS" 'BEGIN {print (n >= want && p < 300 * 1024) ? "met" : "NOT met"}')
		printf '%-44s %8s %8s  %s\n' "$t W5: $open open at once, peak RSS MiB" "$(mib "$peak")" "< 300" \
			"$v (before $(mib "$base") MiB, all idle $(mib "$idle") MiB: about $per KiB per idle session)"
	done
	for t in hve pg; do
		line=$(grep "^$t E2E " "$RESULTS" || true)
		[[ -n $line ]] || continue
		if grep -q '"failed"' <<<"$line"; then
			echo "$t E2E: failed (see $OUT/$t-e2e.log)"
			continue
		fi
		acc=$(field accepted <<<"$line")
		rate=$(field msgs_per_s <<<"$line")
		first=$(field depth_first10_mean <<<"$line")
		last=$(field depth_last10_mean <<<"$line")
		# The queue does not grow if, at the end, it holds less than one
		# second of accepted mail.
		v=$(awk -v l="$last" -v r="$rate" 'BEGIN {print (l < r) ? "met" : "NOT met"}')
		printf '%-44s %8s %8s  %s\n' "$t E2E ($E2E_DURATION W1, $acc accepted, $rate msgs/s): queue depth, last 10 s mean" "$last" "< $rate" \
			"$v (first 10 s: $first; max $(field depth_max <<<"$line"), at the end $(field depth_end <<<"$line"), drained in $(field drain_s <<<"$line") s)"
	done
} | tee "$OUT/report.txt"
echo "results in $OUT" >&2
