#!/usr/bin/env bash
# Load benchmark: Computegate against direct upstream, nginx and HAProxy, on this machine only.
#
#   benches/load.sh            (prints a markdown report on stdout, progress on stderr)
#
# What it does
#   - builds `target/release/computegate` (cargo build --release);
#   - starts the simulator `computegate sim` as the upstream (GET /v1/ping: small JSON;
#     POST /v1/echo: JSON of what it received);
#   - starts each proxy under test with a config written into a temp dir: Computegate
#     (`computegate serve`, one public route /v1/ → sim), nginx and HAProxy (keepalive to the
#     upstream, one worker, access logs off);
#   - pins the load generator (wrk) to CPU 0 and the upstream plus every proxy to CPU 1, so "one
#     worker per core" means one worker on the proxy's single core (nginx `worker_processes 1`,
#     HAProxy `nbthread 1`; Computegate's tokio runtime sizes itself from the affinity mask: 1);
#   - runs interleaved rounds (every target once per workload per round, order rotated each round)
#     of three workloads: `get` (GET /v1/ping, 64 connections), `post` (POST 1 KiB to /v1/echo,
#     64 connections) and `unloaded` (GET /v1/ping over 1 connection, for the added latency);
#   - per run: req/s, p50/p99 latency, CPU µs per request of the proxy process (utime+stime from
#     /proc/PID/stat, the proxy and its child processes, before/after ÷ requests), the same for the
#     upstream, and non-2xx/socket errors; then medians over rounds and the ratio to direct.
#   - LOAD_AUTH=1 adds authenticated runs through Computegate (JWT and API key) once the identity
#     endpoints exist; otherwise it says "skipped: identity endpoints not available".
#   - TLS targets (`computegate-tls`, `haproxy-tls`, `nginx-tls`: each terminates TLS with the same
#     throwaway ECDSA P-256 certificate, ALPN h2 + http/1.1, and proxies over plain HTTP/1.1
#     keep-alive to the simulator) run the TLS workloads: `h2` (h2load, 64 connections × 10
#     streams), `h1tls` (h2load --h1, 64 connections), `handshake` (a new TLS 1.3 connection per
#     request, full handshakes, benches/load/handshake.py) and `resume` (the same, every
#     connection resuming the previous one's session). Plain targets run only the plain workloads
#     and TLS targets only the TLS ones. For the h2load workloads the p50 column is h2load's mean
#     request time and the p99 column its maximum (h2load prints no percentiles); the handshake
#     workloads report no latency.
# Everything it starts is stopped, and its temp dir removed, on exit. Traffic goes to 127.0.0.1 only.
#
# Environment (defaults in brackets)
#   LOAD_DURATION [10]          seconds per measured run
#   LOAD_WARMUP [2]             seconds of unrecorded warmup before every measured run
#   LOAD_ROUNDS [3]             interleaved rounds
#   LOAD_CONNECTIONS [64]       connections for get/post (unloaded always uses 1)
#   LOAD_TARGETS ["direct computegate nginx haproxy"]  (add computegate-tls haproxy-tls nginx-tls;
#                               computegate-tpc and computegate-tpc-tls are computegate and
#                               computegate-tls with server.runtime = "thread_per_core", to compare
#                               both runtimes interleaved in one run)
#   LOAD_RUNTIME [work_stealing]  server.runtime of the computegate and computegate-tls targets
#                               (work_stealing | thread_per_core; the product's default is
#                               thread_per_core, the computegate-tpc* targets; the default here
#                               keeps the targets' meaning of the earlier BENCHMARKS.md sections)
#   LOAD_WORKLOADS ["get post unloaded"]  (add h2 h1tls handshake resume for the TLS targets)
#   LOAD_STREAMS [10]           concurrent streams per connection in the h2 workload
#   LOAD_HANDSHAKE_CLIENTS [4]  parallel clients of the handshake workloads
#   LOAD_AUTH [0]               1: also computegate-jwt and computegate-apikey (see auth_setup)
#   LOAD_BUILD [1]              0: skip cargo build --release
#   LOAD_BIN [target/release/computegate]
#   LOAD_CLIENT_CPU [0]  LOAD_SERVER_CPU [1]
#   LOAD_INSTALL [1]            0: never apt-get install missing tools (wrk, nginx, haproxy, curl)
#   LOAD_QUIET_WAIT [30]        before each run, wait up to this many seconds for the machine to be
#                               quiet (other processes < 20 % of a core over 1 s); 0: don't wait
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
  exit 0
fi

DURATION=${LOAD_DURATION:-10}
WARMUP=${LOAD_WARMUP:-2}
ROUNDS=${LOAD_ROUNDS:-3}
CONNS=${LOAD_CONNECTIONS:-64}
TARGETS=${LOAD_TARGETS:-"direct computegate nginx haproxy"}
WORKLOADS=${LOAD_WORKLOADS:-"get post unloaded"}
AUTH=${LOAD_AUTH:-0}
STREAMS=${LOAD_STREAMS:-10}
HS_CLIENTS=${LOAD_HANDSHAKE_CLIENTS:-4}
BUILD=${LOAD_BUILD:-1}
BIN=${LOAD_BIN:-$ROOT/target/release/computegate}
CLIENT_CPU=${LOAD_CLIENT_CPU:-0}
SERVER_CPU=${LOAD_SERVER_CPU:-1}
INSTALL=${LOAD_INSTALL:-1}
QUIET_WAIT=${LOAD_QUIET_WAIT:-30}
RUNTIME=${LOAD_RUNTIME:-work_stealing}
WRK_LUA="$ROOT/benches/load/wrk.lua"

[[ "$RUNTIME" == work_stealing || "$RUNTIME" == thread_per_core ]] ||
  { echo "load.sh: LOAD_RUNTIME must be work_stealing or thread_per_core, got '$RUNTIME'" >&2; exit 2; }
for v in DURATION WARMUP ROUNDS CONNS CLIENT_CPU SERVER_CPU QUIET_WAIT STREAMS HS_CLIENTS; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || { echo "load.sh: $v must be a whole number, got '${!v}'" >&2; exit 2; }
done
((DURATION >= 1 && ROUNDS >= 1 && CONNS >= 1)) || { echo "load.sh: duration, rounds and connections must be >= 1" >&2; exit 2; }

COMMAND_LINE=""
for v in LOAD_DURATION LOAD_WARMUP LOAD_ROUNDS LOAD_CONNECTIONS LOAD_TARGETS LOAD_WORKLOADS LOAD_STREAMS LOAD_HANDSHAKE_CLIENTS LOAD_AUTH LOAD_BUILD LOAD_BIN LOAD_CLIENT_CPU LOAD_SERVER_CPU LOAD_INSTALL LOAD_QUIET_WAIT; do
  if [[ -n "${!v:-}" ]]; then
    COMMAND_LINE+="$v=$(printf '%q' "${!v}") "
  fi
done
COMMAND_LINE+="benches/load.sh"

say() { printf '[load] %s\n' "$*" >&2; }
die() {
  printf '[load] ERROR: %s\n' "$*" >&2
  exit 1
}

# ---------------------------------------------------------------------------------------------
# cleanup
# ---------------------------------------------------------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/computegate-load.XXXXXX")
chmod 755 "$TMP" # nginx workers drop to an unprivileged user when started as root
PIDS=()

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# tools
# ---------------------------------------------------------------------------------------------
APT_UPDATED=0
apt_install() {
  [[ "$INSTALL" == "1" ]] || return 1
  [[ "$(id -u)" -eq 0 ]] || return 1
  command -v apt-get >/dev/null || return 1
  if [[ $APT_UPDATED -eq 0 ]]; then
    say "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || return 1
    APT_UPDATED=1
  fi
  say "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" </dev/null >&2
}

need() { # need COMMAND PACKAGE
  command -v "$1" >/dev/null && return 0
  apt_install "$2" || true
  command -v "$1" >/dev/null
}

need wrk wrk || die "wrk is not installed and could not be installed (apt-get install wrk)"
need curl curl || die "curl is not installed and could not be installed"
need taskset util-linux || die "taskset is missing"

is_tls_target() { [[ "$1" == *-tls ]]; }
is_tls_workload() { [[ " h2 h1tls handshake resume " == *" $1 "* ]]; }
WANT_TLS=0
for t in $TARGETS; do is_tls_target "$t" && WANT_TLS=1; done
if [[ "$WANT_TLS" == "1" ]]; then
  need h2load nghttp2-client || die "h2load is not installed and could not be installed (apt-get install nghttp2-client)"
  need openssl openssl || die "openssl is missing (it makes the run's throwaway certificate)"
  need python3 python3 || die "python3 is missing (benches/load/handshake.py)"
fi

NCPU=$(nproc)
if ((NCPU < 2)); then
  say "only $NCPU CPU: client and servers share CPU 0 (numbers are not comparable with 2-core runs)"
  CLIENT_CPU=0
  SERVER_CPU=0
fi
CLK_TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
USED_PORTS=" "
# Listening ports come from below the kernel's ephemeral range: a port inside it can be taken as
# the local port of a client connection (h2load's, or a proxy's to the upstream) between this
# check and the bind, which failed a target's start with "Address already in use".
EPHEMERAL_LOW=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
((EPHEMERAL_LOW > 12000)) || EPHEMERAL_LOW=32768
free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((10000 + RANDOM % (EPHEMERAL_LOW - 10000)))
    [[ "$USED_PORTS" == *" $p "* ]] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      USED_PORTS+="$p "
      echo "$p"
      return 0
    fi
  done
  die "no free port found"
}

LAST_PID=""
start_bg() { # start_bg NAME CMD... : on the server CPU, output to $TMP/NAME.log
  local name=$1
  shift
  taskset -c "$SERVER_CPU" "$@" >"$TMP/$name.log" 2>&1 </dev/null &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}

wait_http() { # wait_http URL PID SECONDS : 2xx from URL while PID lives (https: not verified)
  local url=$1 pid=$2 secs=$3 i
  for ((i = 0; i < secs * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 1
    curl -kfsS -o /dev/null --max-time 1 "$url" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

cpu_ticks() { # utime+stime in clock ticks of PID and its direct children (nginx workers)
  local total=0 p line rest
  local -a f
  for p in "$@" $(pgrep -P "$1" 2>/dev/null || true); do
    [[ -r "/proc/$p/stat" ]] || continue
    line=$(<"/proc/$p/stat") || continue
    rest=${line##*) }
    read -r -a f <<<"$rest"
    total=$((total + f[11] + f[12])) # fields 14 (utime) and 15 (stime)
  done
  echo "$total"
}

busy_ticks() { # user+nice+system+irq+softirq ticks of all CPUs (/proc/stat)
  # Processes' stime partly includes softirq time and partly not: the difference from the sum of
  # our processes is a few % of a core on an idle machine; a compile beside the run shows as ~100 %.
  local _cpu user nice system _idle _iowait irq softirq _rest
  read -r _cpu user nice system _idle _iowait irq softirq _rest </proc/stat
  echo $((user + nice + system + irq + softirq))
}

CH_TICKS=0
children_ticks() { # sets CH_TICKS: user+system ticks of this shell's reaped children (wrk, curl…)
  # `times` must run in this shell, not in a $(…) subshell, which has its own children.
  local line
  times >"$TMP/times"
  line=$(sed -n 2p "$TMP/times") # e.g. "0m1.230s 0m0.450s"
  CH_TICKS=0
  if [[ "$line" =~ ^([0-9]+)m([0-9.]+)s\ ([0-9]+)m([0-9.]+)s$ ]]; then
    CH_TICKS=$(awk -v m1="${BASH_REMATCH[1]}" -v s1="${BASH_REMATCH[2]}" -v m2="${BASH_REMATCH[3]}" \
      -v s2="${BASH_REMATCH[4]}" -v hz="$CLK_TCK" 'BEGIN { printf "%d", ((m1 + m2) * 60 + s1 + s2) * hz + 0.5 }')
  fi
}

# wait_quiet: between runs our own servers idle, so CPU busy on the machine is someone else's.
# Waits (bounded by QUIET_WAIT seconds) until a 1 s sample shows < 20 % of one core busy.
QUIET_WAITED=0
wait_quiet() {
  ((QUIET_WAIT > 0)) || return 0
  local start=$SECONDS b0 b1 pct
  while :; do
    b0=$(busy_ticks)
    sleep 1
    b1=$(busy_ticks)
    pct=$(((b1 - b0) * 100 / CLK_TCK))
    ((pct < 20)) && return 0
    if ((SECONDS - start >= QUIET_WAIT)); then
      say "machine still busy (${pct}% of a core used by others) after ${QUIET_WAIT}s; measuring anyway"
      return 0
    fi
    if ((SECONDS - start < 2)); then say "waiting for other work on the machine to stop (${pct}% of a core busy)"; fi
    QUIET_WAITED=$((QUIET_WAITED + 1))
  done
}

# run_wrk URL WORKLOAD CONNECTIONS SECONDS [extra wrk args...] → sets R_* variables
run_wrk() {
  local url=$1 workload=$2 conns=$3 secs=$4
  shift 4
  local kind=get out line
  [[ "$workload" == "post" ]] && kind=post
  out=$(WRK_WORKLOAD=$kind timeout $((secs + 30)) taskset -c "$CLIENT_CPU" \
    wrk -t1 -c"$conns" -d"${secs}s" --timeout 5s --latency -s "$WRK_LUA" "$@" "$url" 2>&1) || {
    printf '%s\n' "$out" >&2
    return 1
  }
  line=$(grep '^WRKRESULT ' <<<"$out" | tail -n 1)
  [[ -n "$line" ]] || {
    printf '%s\n' "$out" >&2
    return 1
  }
  local kv
  R_requests=0 R_duration_us=1 R_connect=0 R_read=0 R_write=0 R_status=0 R_timeout=0 R_p50_us=0 R_p99_us=0
  for kv in ${line#WRKRESULT }; do
    printf -v "R_${kv%%=*}" '%s' "${kv#*=}"
  done
  R_errors=$((R_connect + R_read + R_write + R_status + R_timeout))
}

# run_h2load URL WORKLOAD SECONDS [-H header] → sets R_* variables like run_wrk. h2load prints
# the mean and maximum request time, not percentiles: they go into R_p50_us and R_p99_us.
run_h2load() {
  local url=$1 workload=$2 secs=$3
  shift 3
  local out mode=()
  if [[ "$workload" == "h2" ]]; then mode=(-m "$STREAMS"); else mode=(--h1); fi
  out=$(timeout $((secs + 30)) taskset -c "$CLIENT_CPU" \
    h2load -t 1 -c "$CONNS" "${mode[@]}" -D "$secs" "$@" "$url" 2>&1) || {
    printf '%s\n' "$out" >&2
    return 1
  }
  local finished requests timing
  finished=$(grep -m1 '^finished in' <<<"$out" || true)
  requests=$(grep -m1 '^requests:' <<<"$out" || true)
  timing=$(grep -m1 '^time for request:' <<<"$out" || true)
  [[ -n "$finished" && -n "$requests" && -n "$timing" ]] || {
    printf '%s\n' "$out" >&2
    return 1
  }
  # "requests: N total, N started, N done, N succeeded, F failed, E errored, T timeout"
  # "status codes: A 2xx, B 3xx, C 4xx, D 5xx"; "time for request: min max mean sd ±sd"
  eval "$(awk -v f="$finished" -v r="$requests" -v t="$timing" -v s="$(grep -m1 '^status codes:' <<<"$out")" '
    function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000; if (v ~ /s$/) return v * 1e6; return v + 0 }
    BEGIN {
      split(f, F, " "); secs = F[3]; sub(/s,?$/, "", secs)
      split(r, R, " "); split(s, S, " "); split(t, T, " ")
      printf "R_duration_us=%d R_requests=%d R_failed=%d R_non2xx=%d R_p50_us=%d R_p99_us=%d\n",
        secs * 1e6, R[8], R[10] + R[12] + R[14], S[5] + S[7] + S[9], us(T[6]), us(T[5])
    }')"
  R_errors=$((R_failed + R_non2xx))
  R_requests=$((R_requests - R_non2xx))
}

# run_handshake HOST PORT WORKLOAD SECONDS → sets R_* variables (no latency). A `resume` run in
# which the server resumed fewer than 90 % of the connections counts them all as errors: the
# workload would silently measure full handshakes otherwise.
run_handshake() {
  local host=$1 port=$2 workload=$3 secs=$4 mode=full out line kv
  [[ "$workload" == "resume" ]] && mode=resumed
  out=$(timeout $((secs + 30)) taskset -c "$CLIENT_CPU" \
    python3 "$ROOT/benches/load/handshake.py" "$host" "$port" "$secs" "$mode" "$HS_CLIENTS" 2>&1) || {
    printf '%s\n' "$out" >&2
    return 1
  }
  line=$(grep '^HSRESULT ' <<<"$out" | tail -n 1)
  [[ -n "$line" ]] || {
    printf '%s\n' "$out" >&2
    return 1
  }
  R_requests=0 R_duration_us=1 R_errors=0 R_resumed=0 R_status=0 R_p50_us=0 R_p99_us=0
  for kv in ${line#HSRESULT }; do
    printf -v "R_${kv%%=*}" '%s' "${kv#*=}"
  done
  R_errors=$((R_errors + R_status))
  if [[ "$mode" == "resumed" ]] && ((R_resumed * 10 < R_requests * 9)); then
    say "only $R_resumed of $R_requests connections were resumed"
    R_errors=$((R_errors + R_requests))
  fi
}

# ---------------------------------------------------------------------------------------------
# build and upstream
# ---------------------------------------------------------------------------------------------
if [[ "$BUILD" == "1" ]]; then
  say "cargo build --release"
  cargo build --release >&2 || die "cargo build --release failed"
fi
[[ -x "$BIN" ]] || die "$BIN not found (build it, or set LOAD_BIN)"
# Revision of the binary under test, taken now: the tree may change while the benchmark runs.
rev=$(git rev-parse --short HEAD 2>/dev/null || echo "no commit")
dirty=""
# (the benchmark's own files and BENCHMARKS.md do not change the binary)
[[ -n "$(git status --porcelain --untracked-files=no -- . ':!benches/load.sh' ':!benches/load' ':!BENCHMARKS.md' 2>/dev/null | head -n 1)" ]] &&
  dirty=" + uncommitted changes"
if [[ -n "${LOAD_BIN:-}" ]]; then
  # A binary given from elsewhere: the tree's revision says nothing about it.
  rev="$BIN (given by LOAD_BIN; this tree is at $rev)"
  dirty=""
fi

SIM_PORT=$(free_port)
start_bg sim "$BIN" sim --addr "127.0.0.1:$SIM_PORT"
SIM_PID=$LAST_PID
wait_http "http://127.0.0.1:$SIM_PORT/v1/ping" "$SIM_PID" 20 || {
  tail -n 20 "$TMP/sim.log" >&2 || true
  die "the simulator did not answer GET /v1/ping on 127.0.0.1:$SIM_PORT"
}
say "simulator on 127.0.0.1:$SIM_PORT (pid $SIM_PID)"

# ---------------------------------------------------------------------------------------------
# targets: each sets URL_<t> and PID_<t> (empty PID for direct), or NOTE_<t> when unavailable
# ---------------------------------------------------------------------------------------------
declare -A URL=() PID=() NOTE=() HDR=()

write_computegate_config() { # FILE PORT ADMIN_PORT CLASS DATA_DIR RUNTIME [POLICY_FILE]
  cat >"$1" <<EOF
# written by benches/load.sh
data_dir = "$5"

[server]
public_addr = "127.0.0.1:$2"
admin_addr = "127.0.0.1:$3"
runtime = "$6"

[upstreams.sim]
addresses = ["127.0.0.1:$SIM_PORT"]
connect_timeout = "2s"
response_timeout = "60s"

[[routes]]
name = "bench"
path_prefix = "/v1/"
upstream = "sim"
class = "$4"
max_body = "1MiB"

[log]
level = "warn"   # no per-request logging during the benchmark
format = "text"
EOF
  if [[ -n "${7:-}" ]]; then
    printf '\n[policy]\nfile = "%s"\n' "$7" >>"$1"
  fi
}

# The shipped policy with the trial tier's request rate lifted out of the way: the bench account
# is `unverified`, and 5 requests/s (burst 20) would turn nearly every request into a 429. The
# limiter still runs on every request (its cost is measured); it just never refuses.
write_bench_policy() { # FILE
  local shipped="$ROOT/deploy/policy/default.toml"
  grep -q 'rate_limit = { requests_per_second = 5.0, burst = 20 }' "$shipped" ||
    die "the trial tier's rate limit in $shipped changed; update write_bench_policy"
  sed 's/rate_limit = { requests_per_second = 5.0, burst = 20 }/rate_limit = { requests_per_second = 1000000.0, burst = 1000000 }/' \
    "$shipped" >"$1"
}

start_computegate() { # NAME CLASS
  local name=$1 class=$2 port admin policy="" runtime=$RUNTIME
  [[ "$name" == computegate-tpc* ]] && runtime=thread_per_core
  port=$(free_port)
  admin=$(free_port)
  mkdir -p "$TMP/$name-data"
  if [[ "$class" == "authenticated" ]]; then
    policy="$TMP/$name-policy.toml"
    write_bench_policy "$policy"
  fi
  write_computegate_config "$TMP/$name.toml" "$port" "$admin" "$class" "$TMP/$name-data" "$runtime" "$policy"
  if is_tls_target "$name"; then
    tls_certificate
    printf '\n[server.tls]\ncert = "%s"\nkey = "%s"\n' "$TMP/tls/cert.pem" "$TMP/tls/key.pem" >>"$TMP/$name.toml"
  fi
  start_bg "$name" env COMPUTEGATE_MASTER_KEY="$MASTER_KEY" "$BIN" serve --config "$TMP/$name.toml"
  PID[$name]=$LAST_PID
  URL[$name]="http://127.0.0.1:$port"
  is_tls_target "$name" && URL[$name]="https://127.0.0.1:$port"
  ADMIN_URL="http://127.0.0.1:$admin"
  if ! wait_http "$ADMIN_URL/healthz" "${PID[$name]}" 20; then
    NOTE[$name]="did not start: $(tail -n 3 "$TMP/$name.log" 2>/dev/null | tr '\n' ' ' | cut -c1-300)"
    return 1
  fi
}

# The TLS targets' certificate: ECDSA P-256, self-signed, for this run only.
tls_certificate() {
  [[ -f "$TMP/tls/cert.pem" ]] && return 0
  mkdir -p "$TMP/tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=bench" -keyout "$TMP/tls/key.pem" -out "$TMP/tls/cert.pem" >/dev/null 2>&1 ||
    die "openssl could not make the run's certificate"
  cat "$TMP/tls/cert.pem" "$TMP/tls/key.pem" >"$TMP/tls/haproxy.pem"
  chmod 644 "$TMP/tls/"*.pem # nginx reads the key as root before dropping privileges; fine either way
}

# A throwaway key-encryption key for this run's temp data dir only.
MASTER_KEY=${COMPUTEGATE_MASTER_KEY:-$(head -c 32 /dev/urandom | base64)}

setup_target() {
  local t=$1 port
  case "$t" in
    direct)
      URL[$t]="http://127.0.0.1:$SIM_PORT"
      PID[$t]=""
      ;;
    computegate | computegate-tls | computegate-tpc | computegate-tpc-tls)
      start_computegate "$t" public || return 1
      if [[ "$(curl -ks -o /dev/null -w '%{http_code}' --max-time 2 "${URL[$t]}/v1/ping")" != "200" ]]; then
        NOTE[$t]="GET /v1/ping through it did not answer 200"
        return 1
      fi
      ;;
    nginx | nginx-tls)
      need nginx nginx || {
        NOTE[$t]="nginx not installed"
        return 1
      }
      port=$(free_port)
      local listen="listen 127.0.0.1:$port;" scheme=http
      if is_tls_target "$t"; then
        tls_certificate
        scheme=https
        # nginx 1.22 (Debian 12) spells HTTP/2 on the listen line; TLS 1.3 and 1.2 as the others.
        listen="listen 127.0.0.1:$port ssl http2;
    ssl_certificate $TMP/tls/cert.pem;
    ssl_certificate_key $TMP/tls/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:10m;
    http2_max_concurrent_streams 128;"
      fi
      mkdir -p "$TMP/$t"
      cat >"$TMP/$t/nginx.conf" <<EOF
# written by benches/load.sh
worker_processes 1;          # one worker: the proxy's single pinned core
daemon off;
pid $TMP/$t/nginx.pid;
error_log $TMP/$t/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $TMP/$t/body;
  proxy_temp_path $TMP/$t/proxy;
  fastcgi_temp_path $TMP/$t/fastcgi;
  uwsgi_temp_path $TMP/$t/uwsgi;
  scgi_temp_path $TMP/$t/scgi;
  keepalive_timeout 75s;
  keepalive_requests 1000000;   # do not close benchmark connections every 1000 requests
  upstream sim {
    server 127.0.0.1:$SIM_PORT;
    keepalive 128;              # idle keepalive connections to the upstream
    keepalive_requests 1000000;
  }
  server {
    $listen
    location / {
      proxy_pass http://sim;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
    }
  }
}
EOF
      start_bg "$t" nginx -e "$TMP/$t/error.log" -p "$TMP/$t" -c "$TMP/$t/nginx.conf"
      PID[$t]=$LAST_PID
      URL[$t]="$scheme://127.0.0.1:$port"
      wait_http "${URL[$t]}/v1/ping" "${PID[$t]}" 10 || {
        NOTE[$t]="did not start: $(tail -n 3 "$TMP/$t.log" "$TMP/$t/error.log" 2>/dev/null | tr '\n' ' ' | cut -c1-300)"
        return 1
      }
      ;;
    haproxy | haproxy-tls)
      need haproxy haproxy || {
        NOTE[$t]="haproxy not installed"
        return 1
      }
      port=$(free_port)
      local bind="127.0.0.1:$port" scheme=http
      if is_tls_target "$t"; then
        tls_certificate
        scheme=https
        bind="127.0.0.1:$port ssl crt $TMP/tls/haproxy.pem alpn h2,http/1.1"
      fi
      cat >"$TMP/$t.cfg" <<EOF
# written by benches/load.sh (no "log" lines: no access log)
global
  nbthread 1                  # one thread: the proxy's single pinned core
  maxconn 4096
defaults
  mode http
  option http-keep-alive      # keepalive on both sides (the default, stated)
  http-reuse always           # share idle upstream connections between client connections
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  timeout http-keep-alive 75s
frontend bench
  bind $bind
  default_backend sim
backend sim
  server sim1 127.0.0.1:$SIM_PORT
EOF
      start_bg "$t" haproxy -db -f "$TMP/$t.cfg"
      PID[$t]=$LAST_PID
      URL[$t]="$scheme://127.0.0.1:$port"
      wait_http "${URL[$t]}/v1/ping" "${PID[$t]}" 10 || {
        NOTE[$t]="did not start: $(tail -n 3 "$TMP/$t.log" 2>/dev/null | tr '\n' ' ' | cut -c1-300)"
        return 1
      }
      ;;
    *)
      NOTE[$t]="unknown target"
      return 1
      ;;
  esac
}

# ---------------------------------------------------------------------------------------------
# LOAD_AUTH=1: authenticated runs through Computegate.
# Waits for the identity issue: sign-up, password-grant token and API keys (contract in that issue):
#   POST /computegate/v1/auth/signup {"email","password","kind":"individual"} → 201 {"customer_id"}
#   POST /computegate/v1/auth/token  {"email","password"} → {"access_token",…}
#   POST /computegate/v1/keys (Bearer JWT) {"name"} → {"id","key"}
# and then sends `Authorization: Bearer …` to a route of class `authenticated` (/v1/ → sim).
# If the endpoints answer 404 it reports "skipped: identity endpoints not available" and
# measures nothing for these targets.
# ---------------------------------------------------------------------------------------------
AUTH_EMAIL="bench-$$@example.com"
AUTH_PASSWORD="bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
AUTH_NOTE=""

json_field() { # json_field FIELD < json (flat string field; no jq needed)
  sed -nE 's/.*"'"$1"'"[[:space:]]*:[[:space:]]*"([^"]*)".*/\1/p' | head -n 1
}

auth_token() { # prints a fresh access token for the bench account
  curl -s --max-time 10 -H 'Content-Type: application/json' \
    -d "{\"email\":\"$AUTH_EMAIL\",\"password\":\"$AUTH_PASSWORD\"}" \
    "${URL[computegate-auth]}/computegate/v1/auth/token" | json_field access_token
}

auth_setup() {
  start_computegate computegate-auth authenticated || {
    AUTH_NOTE="skipped: Computegate with an authenticated route ${NOTE[computegate-auth]}"
    return 1
  }
  local base=${URL[computegate-auth]} code token key
  code=$(curl -s -o "$TMP/signup.json" -w '%{http_code}' --max-time 30 -H 'Content-Type: application/json' \
    -d "{\"email\":\"$AUTH_EMAIL\",\"password\":\"$AUTH_PASSWORD\",\"kind\":\"individual\"}" \
    "$base/computegate/v1/auth/signup" || true)
  if [[ "$code" == "404" ]]; then
    AUTH_NOTE="skipped: identity endpoints not available (POST /computegate/v1/auth/signup answered 404)"
    return 1
  fi
  [[ "$code" == "201" ]] || {
    AUTH_NOTE="skipped: sign-up answered HTTP $code: $(head -c 300 "$TMP/signup.json")"
    return 1
  }
  token=$(auth_token)
  [[ -n "$token" ]] || {
    AUTH_NOTE="skipped: POST /computegate/v1/auth/token gave no access_token"
    return 1
  }
  # The route must really be authenticated: refused without a credential, served with one.
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$base/v1/ping")
  [[ "$code" == "401" ]] || {
    AUTH_NOTE="skipped: unauthenticated GET /v1/ping answered $code, not 401 (route not authenticated?)"
    return 1
  }
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Authorization: Bearer $token" "$base/v1/ping")
  [[ "$code" == "200" ]] || {
    AUTH_NOTE="skipped: GET /v1/ping with the JWT answered $code"
    return 1
  }
  URL[computegate-jwt]=$base
  PID[computegate-jwt]=${PID[computegate-auth]}
  AUTH_TARGETS="computegate-jwt"

  key=$(curl -s --max-time 30 -H 'Content-Type: application/json' -H "Authorization: Bearer $token" \
    -d '{"name":"load-bench"}' "$base/computegate/v1/keys" | json_field key)
  if [[ -n "$key" ]] &&
    [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Authorization: Bearer $key" "$base/v1/ping")" == "200" ]]; then
    URL[computegate-apikey]=$base
    PID[computegate-apikey]=${PID[computegate-auth]}
    HDR[computegate-apikey]="Authorization: Bearer $key"
    AUTH_TARGETS+=" computegate-apikey"
  else
    NOTE[computegate-apikey]="no API key could be created (POST /computegate/v1/keys)"
  fi
}

# ---------------------------------------------------------------------------------------------
# start everything
# ---------------------------------------------------------------------------------------------
LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)
DATE_START=$(date -u '+%Y-%m-%d %H:%M')
ACTIVE=()
for t in $TARGETS; do
  if setup_target "$t"; then
    ACTIVE+=("$t")
    say "target $t at ${URL[$t]}${PID[$t]:+ (pid ${PID[$t]})}"
  else
    say "target $t not measured: ${NOTE[$t]}"
  fi
done

AUTH_TARGETS=""
if [[ "$AUTH" == "1" ]]; then
  if auth_setup; then
    for t in $AUTH_TARGETS; do ACTIVE+=("$t"); done
    say "authenticated targets: $AUTH_TARGETS"
  else
    say "$AUTH_NOTE"
  fi
fi
((${#ACTIVE[@]} > 0)) || die "no target could be started"

# POST must work through every target too (a proxy answering errors fast is not a result)
for t in "${ACTIVE[@]}"; do
  h=()
  [[ -n "${HDR[$t]:-}" ]] && h=(-H "${HDR[$t]}")
  [[ "$t" == "computegate-jwt" ]] && h=(-H "Authorization: Bearer $(auth_token)")
  code=$(curl -ks -o /dev/null -w '%{http_code}' --max-time 5 "${h[@]}" -H 'Content-Type: application/json' \
    -d '{"probe":true}' "${URL[$t]}/v1/echo" || true)
  [[ "$code" == "200" ]] || say "note: POST /v1/echo through $t answered $code (its post runs will show errors)"
done

# ---------------------------------------------------------------------------------------------
# measure
# ---------------------------------------------------------------------------------------------
RESULTS="$TMP/results.tsv"
: >"$RESULTS"
n=${#ACTIVE[@]}
pairs=0 # (workload, target) pairs that match: plain workloads on plain targets, TLS on TLS
for w in $WORKLOADS; do
  is_tls_workload "$w" || [[ " get post unloaded " == *" $w "* ]] || die "unknown workload $w (get, post, unloaded, h2, h1tls, handshake, resume)"
  for t in "${ACTIVE[@]}"; do
    if is_tls_workload "$w"; then is_tls_target "$t" && pairs=$((pairs + 1)); else is_tls_target "$t" || pairs=$((pairs + 1)); fi
  done
done
((pairs > 0)) || die "no target runs these workloads (TLS workloads need a *-tls target, plain ones a plain target)"
TOTAL_RUNS=$((ROUNDS * pairs))
say "$TOTAL_RUNS runs of ${DURATION}s (+${WARMUP}s warmup each): about $((TOTAL_RUNS * (DURATION + WARMUP + 1) / 60 + 1)) min"

run_no=0
for ((round = 1; round <= ROUNDS; round++)); do
  for w in $WORKLOADS; do
    case "$w" in
      get) path=/v1/ping c=$CONNS ;;
      post) path=/v1/echo c=$CONNS ;;
      unloaded) path=/v1/ping c=1 ;;
      *) path=/v1/ping c=$CONNS ;;
    esac
    for ((k = 0; k < n; k++)); do
      t=${ACTIVE[$(((k + round - 1) % n))]} # rotate the order every round
      if is_tls_workload "$w"; then is_tls_target "$t" || continue; else is_tls_target "$t" && continue; fi
      run_no=$((run_no + 1))
      args=()
      [[ -n "${HDR[$t]:-}" ]] && args=(-H "${HDR[$t]}")
      if [[ "$t" == "computegate-jwt" ]]; then
        tok=$(auth_token) # fresh each run: access tokens are short-lived
        args=(-H "Authorization: Bearer $tok")
      fi
      url="${URL[$t]}$path"
      wait_quiet
      measure() { # SECONDS: the workload's client against $t
        case "$w" in
          h2 | h1tls) run_h2load "$url" "$w" "$1" "${args[@]}" ;;
          handshake | resume)
            local hostport=${URL[$t]#https://}
            run_handshake "${hostport%:*}" "${hostport##*:}" "$w" "$1"
            ;;
          *) run_wrk "$url" "$w" "$c" "$1" "${args[@]}" ;;
        esac
      }
      if ((WARMUP > 0)); then
        measure "$WARMUP" >/dev/null || true
      fi
      p0=0
      [[ -n "${PID[$t]}" ]] && p0=$(cpu_ticks "${PID[$t]}")
      s0=$(cpu_ticks "$SIM_PID")
      b0=$(busy_ticks)
      children_ticks
      c0=$CH_TICKS
      if ! measure "$DURATION"; then
        say "run $run_no/$TOTAL_RUNS: round $round $w $t: the load generator failed"
        printf '%s\t%s\t%s\tFAILED\n' "$round" "$w" "$t" >>"$RESULTS"
        continue
      fi
      p1=0
      [[ -n "${PID[$t]}" ]] && p1=$(cpu_ticks "${PID[$t]}")
      s1=$(cpu_ticks "$SIM_PID")
      b1=$(busy_ticks)
      children_ticks
      c1=$CH_TICKS
      # CPU used on the machine by anything but wrk, the upstream and the proxy, in % of one core
      other=$(awk -v b="$((b1 - b0))" -v own="$((p1 - p0 + s1 - s0 + c1 - c0))" -v hz="$CLK_TCK" -v d="$R_duration_us" \
        'BEGIN { o = (b - own) * 100 / (hz * d / 1e6); printf "%.0f", (o < 0 ? 0 : o) }')
      rps=$(awk -v r="$R_requests" -v d="$R_duration_us" 'BEGIN { printf "%.0f", r / (d / 1e6) }')
      pcpu="-"
      [[ -n "${PID[$t]}" ]] && pcpu=$(awk -v t="$((p1 - p0))" -v hz="$CLK_TCK" -v r="$R_requests" 'BEGIN { printf "%.1f", t * 1e6 / hz / (r > 0 ? r : 1) }')
      scpu=$(awk -v t="$((s1 - s0))" -v hz="$CLK_TCK" -v r="$R_requests" 'BEGIN { printf "%.1f", t * 1e6 / hz / (r > 0 ? r : 1) }')
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$w" "$t" "$rps" "$R_p50_us" "$R_p99_us" "$pcpu" "$scpu" "$R_errors" "$R_requests" "$other" >>"$RESULTS"
      say "run $run_no/$TOTAL_RUNS: round $round $w $t: $rps req/s, p50 ${R_p50_us}µs, p99 ${R_p99_us}µs, proxy CPU ${pcpu}µs/req, upstream CPU ${scpu}µs/req, errors $R_errors, other CPU ${other}%"
    done
  done
done

# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------
cpu_model=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //' || echo unknown)
ver_wrk=$(wrk --version 2>&1 | head -n 1 | awk '{print $2}' || true)
ver_nginx=""
command -v nginx >/dev/null && ver_nginx=$(nginx -v 2>&1 | sed 's/.*nginx\///' || true)
ver_haproxy=$(haproxy -v 2>/dev/null | head -n 1 | awk '{print $3}' || true)

echo "### Load benchmark run, $DATE_START – $(date -u '+%H:%M') UTC"
echo
echo "- command: \`$COMMAND_LINE\`"
echo "- machine: \`nproc\` = $NCPU, CPU: $cpu_model, kernel $(uname -r)"
echo "- load average (1/5/15 min) at start: $LOADAVG_START, at end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews every number)"
ver_h2load=""
command -v h2load >/dev/null && ver_h2load=$(h2load --version 2>&1 | head -n 1 | awk '{print $NF}' || true)
echo "- versions: computegate $rev$dirty (release build), nginx ${ver_nginx:-n/a}, HAProxy ${ver_haproxy:-n/a}, wrk ${ver_wrk:-n/a}, h2load ${ver_h2load:-n/a}"
if ((QUIET_WAIT > 0)); then
  echo "- before each run the script waited for the machine to be quiet (< 20 % of a core busy, at most ${QUIET_WAIT}s): ${QUIET_WAITED}s waited in all"
fi
echo "- method: wrk (1 thread) pinned to CPU $CLIENT_CPU; simulator upstream and the proxy under test pinned to CPU $SERVER_CPU;" \
  "$ROUNDS interleaved rounds (order rotated), ${DURATION}s per run after ${WARMUP}s warmup;" \
  "get = GET /v1/ping with $CONNS connections, post = POST 1 KiB JSON to /v1/echo with $CONNS connections," \
  "unloaded = GET /v1/ping over 1 connection; TLS workloads (h2load / handshake.py, $CONNS connections, $STREAMS streams for h2, $HS_CLIENTS handshake clients) as described in the script's header. Medians over the quiet rounds (other CPU < 20 %), or over all rounds when none was quiet. CPU µs/req = (utime+stime) of the proxy process ÷ requests."
for t in $TARGETS computegate-jwt computegate-apikey; do
  [[ -n "${NOTE[$t]:-}" ]] && echo "- **$t not measured**: ${NOTE[$t]}"
done
if [[ "$AUTH" == "1" && -n "$AUTH_NOTE" ]]; then
  echo "- authenticated runs: $AUTH_NOTE"
elif [[ "$AUTH" != "1" ]]; then
  echo "- authenticated runs: not requested (LOAD_AUTH=1)"
fi
echo

awk -F'\t' -v order="${ACTIVE[*]}" -v workloads="$WORKLOADS" '
function median(s,   a, n, i, j, x) {
  n = split(s, a, " ")
  for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > x + 0; j--) a[j + 1] = a[j]; a[j + 1] = x }
  if (n == 0) return ""
  return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
$4 == "FAILED" { failed[$2 SUBSEP $3]++; next }
{ rows[++nrows] = $0; k = $2 SUBSEP $3; all[k]++; if ($11 + 0 < 20) quiet[k]++ }
END {
  # Medians use only the quiet runs (other CPU < 20 % of a core) of a workload and target when
  # there are any, else all of its runs; the "quiet runs" column says which.
  for (i = 1; i <= nrows; i++) {
    split(rows[i], f, "\t"); k = f[2] SUBSEP f[3]
    if ((k in quiet) && f[11] + 0 >= 20) continue
    rps[k] = rps[k] " " f[4]; p50[k] = p50[k] " " f[5]; p99[k] = p99[k] " " f[6]
    if (f[7] != "-") pc[k] = pc[k] " " f[7]
    uc[k] = uc[k] " " f[8]; err[k] += f[9]; runs[k]++
  }
  for (i = 1; i <= nrows; i++) {
    split(rows[i], f, "\t")
    if (f[11] + 0 > maxother + 0) maxother = f[11] + 0
    other = other " " f[11]
  }
  report()
}
function report(   nt, nw, T, W, w, i, d, drps, k, r, ratio, cpu, e, es, q, dp50, dp99, a, b, hk, hcpu, hr) {
  nt = split(order, T, " "); nw = split(workloads, W, " ")
  print "| workload | target | req/s | p50 µs | p99 µs | proxy CPU µs/req | HAProxy CPU ÷ this | upstream CPU µs/req | req/s ÷ direct | errors | quiet runs |"
  print "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for (w = 1; w <= nw; w++) {
    d = W[w] SUBSEP "direct"; drps = (d in runs) ? median(rps[d]) : ""
    # the peer of the issue targets: HAProxy on the same workload (TLS workloads: haproxy-tls)
    hk = W[w] SUBSEP "haproxy"; if (!(hk in pc)) hk = W[w] SUBSEP "haproxy-tls"
    hcpu = (hk in pc) ? median(pc[hk]) : ""
    for (i = 1; i <= nt; i++) {
      k = W[w] SUBSEP T[i]
      if (!(k in runs)) { if (k in failed) printf "| %s | %s | failed | | | | | | | |\n", W[w], T[i]; continue }
      q = sprintf("%d/%d", quiet[k] + 0, all[k])
      r = median(rps[k])
      ratio = (drps != "" && drps > 0) ? sprintf("%.2f", r / drps) : "n/a"
      cpu = (k in pc) ? sprintf("%.1f", median(pc[k])) : "—"
      hr = (hcpu != "" && (k in pc) && median(pc[k]) > 0) ? sprintf("%.2f", hcpu / median(pc[k])) : "n/a"
      e = err[k] + 0; es = (e > 0) ? sprintf("**%d**", e) : "0"
      if (k in failed) es = es " (+" failed[k] " failed runs)"
      printf "| %s | %s | %.0f | %.0f | %.0f | %s | %s | %.1f | %s | %s | %s |\n", W[w], T[i], r, median(p50[k]), median(p99[k]), cpu, hr, median(uc[k]), ratio, es, q
    }
  }
  print ""
  printf "CPU used by other processes during the measured runs (%% of one core, ~5 %% is accounting noise; median %s, max %d).%s\n", median(other), maxother, (maxother > 20 ? " **Some runs were disturbed by other work on the machine: compare rounds in the per-run table.**" : "")
  # added latency on one connection
  d = "unloaded" SUBSEP "direct"
  if (d in runs) {
    dp50 = median(p50[d]); dp99 = median(p99[d])
    print ""
    print "Unloaded added latency (1 connection, GET /v1/ping; medians as above):"
    print ""
    print "| target | p50 µs | added p50 µs vs direct | p99 µs | added p99 µs vs direct |"
    print "|---|---:|---:|---:|---:|"
    for (i = 1; i <= nt; i++) {
      k = "unloaded" SUBSEP T[i]
      if (!(k in runs)) continue
      a = median(p50[k]); b = median(p99[k])
      printf "| %s | %.0f | %+.0f | %.0f | %+.0f |\n", T[i], a, a - dp50, b, b - dp99
    }
  }
}' "$RESULTS"

echo
echo "<details><summary>Every run</summary>"
echo
echo "| round | workload | target | req/s | p50 µs | p99 µs | proxy CPU µs/req | upstream CPU µs/req | errors | requests | other CPU % |"
echo "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
awk -F'\t' '$4 == "FAILED" { printf "| %s | %s | %s | failed | | | | | | | |\n", $1, $2, $3; next }
  { printf "| %s | %s | %s | %s | %.0f | %.0f | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 }' "$RESULTS"
echo
echo "</details>"
