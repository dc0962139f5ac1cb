#!/usr/bin/env bash
# Instructions per proxied request under callgrind: a CPU-cost figure that other work on the machine
# does not disturb (benches/load.sh measures CPU time, which a busy machine does).
#
#   benches/callgrind.sh            (prints a markdown table on stdout, progress on stderr)
#
# For each target it starts the proxy under `valgrind --tool=callgrind` in front of the simulator
# (`computegate sim`, not instrumented), sends CALLGRIND_WARMUP requests, zeroes the counters
# (`callgrind_control -z`), sends exactly CALLGRIND_REQUESTS requests with h2load, dumps the
# counters (`callgrind_control -d`) and divides the instructions executed (all threads) by the
# requests. Valgrind runs one thread at a time, so this counts work, not contention or waiting.
# Targets:
#   computegate-ws   computegate serve, server.runtime = "work_stealing", worker_threads = 1
#   computegate-tpc  the same with server.runtime = "thread_per_core"
#   haproxy          HAProxy, nbthread 1, the configuration of benches/load.sh
# Workloads: get (GET /v1/ping, HTTP/1.1 keep-alive), post (POST 1 KiB to /v1/echo).
#
# Environment (defaults in brackets)
#   CALLGRIND_TARGETS ["computegate-ws computegate-tpc haproxy"]
#   CALLGRIND_WORKLOADS ["get post"]
#   CALLGRIND_REQUESTS [20000]  CALLGRIND_WARMUP [2000]  CALLGRIND_CONNECTIONS [16]
#   CALLGRIND_BIN [target/release/computegate]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGETS=${CALLGRIND_TARGETS:-"computegate-ws computegate-tpc haproxy"}
WORKLOADS=${CALLGRIND_WORKLOADS:-"get post"}
REQUESTS=${CALLGRIND_REQUESTS:-20000}
WARMUP=${CALLGRIND_WARMUP:-2000}
CONNS=${CALLGRIND_CONNECTIONS:-16}
BIN=${CALLGRIND_BIN:-$ROOT/target/release/computegate}

say() { echo "callgrind.sh: $*" >&2; }
die() { say "$*"; exit 1; }
for tool in valgrind callgrind_control h2load curl; do
  command -v "$tool" >/dev/null || die "$tool is not installed"
done
[[ -x "$BIN" ]] || die "$BIN not found (cargo build --release, or set CALLGRIND_BIN)"

TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_http() { # URL SECONDS
  local deadline=$((SECONDS + $2))
  until curl -fs -o /dev/null --max-time 5 "$1"; do
    ((SECONDS < deadline)) || return 1
    sleep 1
  done
}

SIM_PORT=$(free_port)
"$BIN" sim --addr "127.0.0.1:$SIM_PORT" >"$TMP/sim.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$SIM_PORT/v1/ping" 20 || die "the simulator did not start"
head -c 1024 /dev/zero | tr '\0' 'x' >"$TMP/body"
# One key-encryption key for the run: a target's data dir is reused by every workload, and its
# signing keys are sealed under the key of its first start.
MASTER_KEY=$(head -c 32 /dev/urandom | base64)

start_target() { # TARGET PORT → PID in $TARGET_PID
  local t=$1 port=$2
  case "$t" in
    computegate-ws | computegate-tpc)
      local runtime=work_stealing
      [[ "$t" == computegate-tpc ]] && runtime=thread_per_core
      mkdir -p "$TMP/$t-data"
      cat >"$TMP/$t.toml" <<EOF
data_dir = "$TMP/$t-data"
[server]
public_addr = "127.0.0.1:$port"
admin_addr = "127.0.0.1:$(free_port)"
worker_threads = 1
runtime = "$runtime"
[upstreams.sim]
addresses = ["127.0.0.1:$SIM_PORT"]
[[routes]]
name = "bench"
path_prefix = "/v1/"
upstream = "sim"
class = "public"
max_body = "1MiB"
[log]
level = "warn"
access = "off"
EOF
      COMPUTEGATE_MASTER_KEY=$MASTER_KEY \
        valgrind --tool=callgrind --callgrind-out-file="$TMP/$t.out" \
        "$BIN" serve --config "$TMP/$t.toml" >"$TMP/$t.log" 2>&1 &
      ;;
    haproxy)
      cat >"$TMP/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  option http-keep-alive
  http-reuse always
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  timeout http-keep-alive 75s
frontend bench
  bind 127.0.0.1:$port
  default_backend sim
backend sim
  server sim1 127.0.0.1:$SIM_PORT
EOF
      valgrind --tool=callgrind --callgrind-out-file="$TMP/$t.out" \
        haproxy -db -f "$TMP/haproxy.cfg" >"$TMP/$t.log" 2>&1 &
      ;;
    *) die "unknown target $t" ;;
  esac
  TARGET_PID=$!
  PIDS+=("$TARGET_PID")
}

load() { # WORKLOAD URL COUNT
  local args=(--h1 -n "$3" -c "$CONNS" -m 1)
  [[ "$1" == post ]] && args+=(-d "$TMP/body")
  local path=/v1/ping
  [[ "$1" == post ]] && path=/v1/echo
  h2load "${args[@]}" "$2$path" >"$TMP/h2load.log" 2>&1
  grep -q "requests: $3 total, $3 started, $3 done, $3 succeeded" "$TMP/h2load.log" ||
    die "not every request succeeded: $(grep 'requests:' "$TMP/h2load.log")"
}

echo "| workload | target | requests | instructions per request | load average (1 min) |"
echo "|---|---|---:|---:|---|"
for w in $WORKLOADS; do
  for t in $TARGETS; do
    port=$(free_port)
    start_target "$t" "$port"
    wait_http "http://127.0.0.1:$port/v1/ping" 180 || die "$t did not start: $(tail -n 5 "$TMP/$t.log")"
    load "$w" "http://127.0.0.1:$port" "$WARMUP"
    callgrind_control -z "$TARGET_PID" >/dev/null
    load "$w" "http://127.0.0.1:$port" "$REQUESTS"
    callgrind_control -d "$TARGET_PID" >/dev/null
    # The dump just made: the highest-numbered part file (the first dump is part 1).
    dump=$(ls -t "$TMP/$t.out".* 2>/dev/null | head -n 1)
    [[ -n "$dump" ]] || die "no callgrind dump for $t"
    ir=$(awk '/^(summary|totals):/ { print $2; exit }' "$dump")
    kill "$TARGET_PID"
    wait "$TARGET_PID" 2>/dev/null || true
    rm -f "$TMP/$t.out"*
    say "$w $t: $ir instructions over $REQUESTS requests"
    printf "| %s | %s | %d | %.0f | %s |\n" "$w" "$t" "$REQUESTS" "$(awk -v i="$ir" -v n="$REQUESTS" 'BEGIN { print i / n }')" \
      "$(cut -d' ' -f1 /proc/loadavg)"
  done
done
