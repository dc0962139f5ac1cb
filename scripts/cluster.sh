#!/usr/bin/env bash
# The production topology on one machine, without containers: PostgreSQL and Redis (private
# instances on free loopback ports, data under the cluster directory), two gateway replicas of
# the release binary sharing them, the compute simulator reporting usage, Prometheus scraping both
# replicas with the shipped rules (deploy/prometheus/rules.yml), and a bounded traffic generator
# (scripts/cluster_traffic.py: customers at three tiers submitting jobs, usage flowing, a
# threshold crossed, a report due).
#
#   scripts/cluster.sh start     start everything (fails if a cluster already runs in CLUSTER_DIR)
#   scripts/cluster.sh status    replica health, Prometheus targets, firing alerts, compliance series
#   scripts/cluster.sh stop      stop everything started by `start` (the data stays; start anew)
#
# The replicas run the simulator's routes of deploy/computegate.example.toml (written to
# CLUSTER_DIR/computegate.toml) and the shipped deploy/policy/default.toml; what differs per replica
# (listeners, upstream, database, Redis) comes from COMPUTEGATE_* overrides, and the master key and
# usage secret from COMPUTEGATE_*_FILE, as Kubernetes mounts them.
#
# Environment:
#   CLUSTER_DIR               state, logs, configs and secrets (default: target/cluster)
#   CLUSTER_BIN           the binary (default: target/release/computegate, built when missing)
#   CLUSTER_TRAFFIC_SECONDS   how long the traffic generator runs (default: 600; 0 = none)
#   CLUSTER_SCRAPE_INTERVAL   Prometheus scrape and rule interval (default: 5s)
# Debian packages it needs (installed with apt when missing and running as root): postgresql,
# redis-server, prometheus (with promtool), python3, curl.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
readonly REPO=$PWD
CLUSTER_DIR="${CLUSTER_DIR:-$REPO/target/cluster}"
mkdir -p "$CLUSTER_DIR"
CLUSTER_DIR="$(cd "$CLUSTER_DIR" && pwd)"
readonly CLUSTER_DIR
readonly RUN="$CLUSTER_DIR/run" LOGS="$CLUSTER_DIR/logs" SECRETS="$CLUSTER_DIR/secrets"
readonly TRAFFIC_SECONDS="${CLUSTER_TRAFFIC_SECONDS:-600}"
readonly SCRAPE_INTERVAL="${CLUSTER_SCRAPE_INTERVAL:-5s}"
BIN="${CLUSTER_BIN:-$REPO/target/release/computegate}"

log() { printf '==> %s\n' "$*"; }
die() {
  printf 'scripts/cluster.sh: error: %s\n' "$*" >&2
  exit 1
}

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
}

# --- packages ------------------------------------------------------------------------------

APT_UPDATED=0
need_package() { # need_package COMMAND_PATH PACKAGE
  [[ -x "$1" ]] && return 0
  [[ "$(id -u)" -eq 0 ]] || die "$1 is missing: install the Debian package $2"
  if [[ $APT_UPDATED -eq 0 ]]; then
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    APT_UPDATED=1
  fi
  log "apt-get install $2"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" </dev/null >/dev/null
  [[ -x "$1" ]] || die "$2 installed but $1 is still missing"
}

pg_bindir() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [[ -n "$dir" ]] && echo "$dir"
}

ensure_packages() {
  need_package /usr/bin/redis-server redis-server
  need_package /usr/bin/prometheus prometheus
  need_package /usr/bin/python3 python3
  need_package /usr/bin/curl curl
  if [[ -z "$(pg_bindir)" ]]; then
    need_package /usr/bin/psql postgresql
  fi
  [[ -n "$(pg_bindir)" ]] || die "no PostgreSQL server binaries under /usr/lib/postgresql"
}

ensure_binary() {
  if [[ -z "${CLUSTER_BIN:-}" ]]; then
    log "cargo build --release (the binary the replicas run)"
    cargo build --release --quiet --bin computegate
  fi
  [[ -x "$BIN" ]] || die "CLUSTER_BIN=$BIN is not an executable"
}

# --- processes -----------------------------------------------------------------------------

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2
  shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "$what did not come up within ${limit}s (logs: $LOGS)"
    sleep 0.2
  done
}

http_ok() { curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null; }

alive() { [[ -f "$RUN/$1.pid" ]] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

# spawn NAME COMMAND...: runs COMMAND in the background (its own session, so that `stop` can
# signal it alone), output to logs/NAME.log, pid to run/NAME.pid.
spawn() {
  local name=$1
  shift
  setsid "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/$name.pid"
}

port() { cat "$RUN/$1.port"; }

# as_postgres COMMAND...: PostgreSQL refuses to run as root.
as_postgres() {
  if [[ "$(id -u)" -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

start_postgres() {
  local bindir data=$CLUSTER_DIR/postgres p
  bindir=$(pg_bindir)
  p=$(free_port)
  echo "$p" >"$RUN/postgres.port"
  rm -rf "$data"
  mkdir -p "$data"
  [[ "$(id -u)" -eq 0 ]] && chown postgres "$data" "$LOGS"
  as_postgres "$bindir/initdb" -D "$data" -U postgres --auth=trust -E UTF8 >"$LOGS/initdb.log" 2>&1 ||
    die "initdb failed (see $LOGS/initdb.log)"
  as_postgres "$bindir/pg_ctl" -D "$data" -l "$LOGS/postgres.log" -w \
    -o "-p $p -k '$data' -c listen_addresses=127.0.0.1 -c fsync=on" start >/dev/null ||
    die "PostgreSQL did not start (see $LOGS/postgres.log)"
  head -1 "$data/postmaster.pid" >"$RUN/postgres.pid"
  "$bindir/psql" -h 127.0.0.1 -p "$p" -U postgres -qAt -c "CREATE DATABASE computegate" >/dev/null
}

start_redis() {
  local p
  p=$(free_port)
  echo "$p" >"$RUN/redis.port"
  spawn redis /usr/bin/redis-server --bind 127.0.0.1 --port "$p" --save "" --appendonly no \
    --dir "$CLUSTER_DIR"
  wait_for 15 "Redis" bash -c "exec 3<>/dev/tcp/127.0.0.1/$p"
}

write_secrets() {
  mkdir -p "$SECRETS"
  chmod 0700 "$SECRETS"
  (
    umask 077
    head -c 32 /dev/urandom | base64 >"$SECRETS/master.key"
    head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$SECRETS/usage.secret"
    head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$SECRETS/reviewer.password"
  )
}

# The replicas' configuration file: the compute simulator's routes of
# deploy/computegate.example.toml (its Slurm and Kubernetes pools have no server here, and an
# unreachable pool keeps a replica out of rotation), Redis for cluster-wide state, JSON logs.
write_config() {
  cat >"$CLUSTER_DIR/computegate.toml" <<'CONFIG'
# Written by scripts/cluster.sh. Per replica, COMPUTEGATE_* variables set the listeners, the
# simulator's address, the database, Redis and the data directory; secrets come from files.
[server]
header_read_timeout = "10s"
shutdown_grace = "10s"

[upstreams.sim]
addresses = ["127.0.0.1:8081"]
connect_timeout = "2s"
response_timeout = "60s"

[[routes]]
name = "sim-ping"
path_prefix = "/v1/ping"
methods = ["GET", "HEAD"]
upstream = "sim"
class = "public"
max_body = "1KiB"

[[routes]]
name = "sim-catalog"
path_prefix = "/v1/gpus"
methods = ["GET", "HEAD"]
upstream = "sim"
class = "public"
max_body = "1KiB"

[[routes]]
name = "sim-api"
path_prefix = "/v1/"
upstream = "sim"
class = "authenticated"
owner_path = "/v1/jobs/{id}"

[[routes]]
name = "sim-jobs-submit"
path_prefix = "/v1/jobs"
methods = ["POST"]
upstream = "sim"
class = "job_submit"
profile = "generic"
max_body = "1MiB"

[redis]
key_prefix = "computegate:"
rate_limit_replicas = 2

[auth]
principal_cache_ttl = "60s"

[log]
level = "info"
format = "json"
CONFIG
  with_gateway_env 1 "$BIN" config check "$CLUSTER_DIR/computegate.toml" >"$LOGS/config-check.log" 2>&1 ||
    die "the cluster configuration is invalid (see $LOGS/config-check.log)"
}

# gateway_env REPLICA: the environment of replica REPLICA (1 or 2) and of the operator commands.
gateway_env() {
  local n=$1
  printf '%s\n' \
    "COMPUTEGATE_CONFIG=$CLUSTER_DIR/computegate.toml" \
    "COMPUTEGATE_DATA_DIR=$CLUSTER_DIR/gateway-$n" \
    "COMPUTEGATE_SERVER__PUBLIC_ADDR=127.0.0.1:$(port "gateway-$n-public")" \
    "COMPUTEGATE_SERVER__ADMIN_ADDR=127.0.0.1:$(port "gateway-$n-admin")" \
    "COMPUTEGATE_UPSTREAMS__SIM__ADDRESSES=[\"127.0.0.1:$(port sim)\"]" \
    "COMPUTEGATE_DATABASE__URL=postgres://postgres@127.0.0.1:$(port postgres)/computegate" \
    "COMPUTEGATE_REDIS__URL=redis://127.0.0.1:$(port redis)" \
    "COMPUTEGATE_POLICY__FILE=$REPO/deploy/policy/default.toml" \
    "COMPUTEGATE_LOG__ACCESS=$LOGS/access-$n.log" \
    "COMPUTEGATE_MASTER_KEY_FILE=$SECRETS/master.key" \
    "COMPUTEGATE_USAGE_SECRET_FILE=$SECRETS/usage.secret"
}

# with_gateway_env REPLICA COMMAND...: COMMAND with replica REPLICA's environment and no other
# COMPUTEGATE_* variable (the binary would reject or apply it). COMMAND may be `spawn NAME …`.
with_gateway_env() {
  local n=$1
  shift
  local -a vars unset
  mapfile -t vars < <(gateway_env "$n")
  mapfile -t unset < <(env | sed -n 's/^\(COMPUTEGATE_[A-Z0-9_]*\)=.*/-u\1/p')
  if [[ "$1" == spawn ]]; then
    spawn "$2" env "${unset[@]}" "${vars[@]}" "${@:3}"
  else
    env "${unset[@]}" "${vars[@]}" "$@"
  fi
}

start_gateways() {
  local n
  write_config
  log "migrate the shared PostgreSQL store"
  with_gateway_env 1 "$BIN" migrate >"$LOGS/migrate.log" 2>&1 || die "migrate failed (see $LOGS/migrate.log)"
  log "staff account reviewer@cluster.invalid (password in $SECRETS/reviewer.password)"
  with_gateway_env 1 "$BIN" staff create --email reviewer@cluster.invalid --role reviewer \
    --password-stdin <"$SECRETS/reviewer.password" >"$LOGS/staff.log" 2>&1 ||
    die "staff create failed (see $LOGS/staff.log)"
  log "denied-party list: data/demo/sample-denied-parties.csv (fictional)"
  with_gateway_env 1 "$BIN" screening import --format csl "$REPO/data/demo/sample-denied-parties.csv" \
    >"$LOGS/screening-import.log" 2>&1 || die "screening import failed (see $LOGS/screening-import.log)"
  for n in 1 2; do
    with_gateway_env "$n" spawn "gateway-$n" "$BIN" serve
  done
  for n in 1 2; do
    wait_for 60 "replica $n" http_ok "http://127.0.0.1:$(port "gateway-$n-admin")/readyz"
  done
}

start_sim() {
  free_port >"$RUN/sim.port"
  local -a unset
  mapfile -t unset < <(env | sed -n 's/^\(COMPUTEGATE_[A-Z0-9_]*\)=.*/-u\1/p')
  spawn sim env "${unset[@]}" "COMPUTEGATE_USAGE_SECRET_FILE=$SECRETS/usage.secret" "$BIN" sim \
    --addr "127.0.0.1:$(port sim)" \
    --usage-url "http://127.0.0.1:$(port gateway-1-public)/computegate/v1/meter/usage"
  wait_for 15 "the simulator" http_ok "http://127.0.0.1:$(port sim)/v1/ping"
}

start_prometheus() {
  local p
  p=$(free_port)
  echo "$p" >"$RUN/prometheus.port"
  cat >"$CLUSTER_DIR/prometheus.yml" <<EOF
# Written by scripts/cluster.sh: the shipped rules, both replicas' admin listeners.
global:
  scrape_interval: $SCRAPE_INTERVAL
  evaluation_interval: $SCRAPE_INTERVAL
rule_files:
  - $REPO/deploy/prometheus/rules.yml
scrape_configs:
  - job_name: computegate
    metrics_path: /metrics
    static_configs:
      - targets: ["127.0.0.1:$(port gateway-1-admin)", "127.0.0.1:$(port gateway-2-admin)"]
EOF
  /usr/bin/promtool check config "$CLUSTER_DIR/prometheus.yml" >"$LOGS/promtool.log" 2>&1 ||
    die "promtool rejects the configuration (see $LOGS/promtool.log)"
  spawn prometheus /usr/bin/prometheus --config.file="$CLUSTER_DIR/prometheus.yml" \
    --storage.tsdb.path="$CLUSTER_DIR/prometheus-data" --storage.tsdb.retention.time=1d \
    --web.listen-address="127.0.0.1:$p"
  wait_for 30 "Prometheus" http_ok "http://127.0.0.1:$p/-/ready"
}

start_traffic() {
  [[ "$TRAFFIC_SECONDS" == 0 ]] && return 0
  spawn traffic python3 "$REPO/scripts/cluster_traffic.py" \
    --public "127.0.0.1:$(port gateway-1-public)" --public "127.0.0.1:$(port gateway-2-public)" \
    --admin "127.0.0.1:$(port gateway-1-admin)" \
    --reviewer reviewer@cluster.invalid --reviewer-password-file "$SECRETS/reviewer.password" \
    --seconds "$TRAFFIC_SECONDS"
}

# Whether Prometheus has scraped both replicas successfully.
both_scraped() {
  curl -fsS --max-time 2 "http://127.0.0.1:$(port prometheus)/api/v1/targets?state=active" 2>/dev/null |
    python3 -c 'import json, sys
targets = json.load(sys.stdin)["data"]["activeTargets"]
sys.exit(0 if len(targets) == 2 and all(t["health"] == "up" for t in targets) else 1)'
}

cmd_start() {
  local name
  for name in postgres redis sim gateway-1 gateway-2 prometheus traffic; do
    alive "$name" && die "a cluster already runs in $CLUSTER_DIR ($name); run 'scripts/cluster.sh stop' first"
  done
  ensure_packages
  ensure_binary
  # A start that fails half-way stops what it started.
  trap 'rc=$?; if [[ $rc -ne 0 ]]; then cmd_stop >/dev/null 2>&1 || true; fi' EXIT
  rm -rf "$RUN" "$LOGS" "$SECRETS" "$CLUSTER_DIR"/gateway-* "$CLUSTER_DIR/prometheus-data"
  mkdir -p "$RUN" "$LOGS"
  write_secrets
  log "PostgreSQL"
  start_postgres
  log "Redis"
  start_redis
  # The simulator needs replica 1's public port for usage reports, Prometheus the admin ports;
  # Prometheus starts before the replicas so that it sees every counter from 0 (an increase
  # before the first scrape would be lost to increase()).
  local n
  for n in 1 2; do
    free_port >"$RUN/gateway-$n-public.port"
    free_port >"$RUN/gateway-$n-admin.port"
  done
  log "simulator"
  start_sim
  log "Prometheus"
  start_prometheus
  log "two gateway replicas"
  start_gateways
  # Traffic only once every counter has been scraped at its starting value.
  wait_for 60 "Prometheus's first scrape of both replicas" both_scraped
  if [[ "$TRAFFIC_SECONDS" != 0 ]]; then
    log "traffic for ${TRAFFIC_SECONDS}s (logs/traffic.log)"
    start_traffic
  fi
  cat <<EOF

Cluster running in $CLUSTER_DIR
  replica 1   public http://127.0.0.1:$(port gateway-1-public)   admin http://127.0.0.1:$(port gateway-1-admin)
  replica 2   public http://127.0.0.1:$(port gateway-2-public)   admin http://127.0.0.1:$(port gateway-2-admin)
  simulator   http://127.0.0.1:$(port sim)
  Prometheus  http://127.0.0.1:$(port prometheus)   (alerts: /alerts, rules: /rules)
  PostgreSQL  postgres://postgres@127.0.0.1:$(port postgres)/computegate   Redis redis://127.0.0.1:$(port redis)
  console     http://127.0.0.1:$(port gateway-1-admin)/console/  (reviewer@cluster.invalid, password in secrets/reviewer.password)
Next: scripts/cluster.sh status   ·   scripts/cluster.sh stop
EOF
}

# promql QUERY: the first sample's value of an instant query, or "none".
promql() {
  curl -fsS --max-time 5 "http://127.0.0.1:$(port prometheus)/api/v1/query" --data-urlencode "query=$1" |
    python3 -c 'import json, sys
r = json.load(sys.stdin)["data"]["result"]
print(r[0]["value"][1] if r else "none")'
}

cmd_status() {
  [[ -f "$RUN/prometheus.port" ]] || die "no cluster in $CLUSTER_DIR (run 'scripts/cluster.sh start')"
  local rc=0 n ready=0 name
  for name in postgres redis sim gateway-1 gateway-2 prometheus traffic; do
    if alive "$name"; then
      printf '%-12s running (pid %s)\n' "$name" "$(cat "$RUN/$name.pid")"
    else
      printf '%-12s not running\n' "$name"
    fi
  done
  for n in 1 2; do
    if http_ok "http://127.0.0.1:$(port "gateway-$n-admin")/readyz"; then
      ready=$((ready + 1))
    fi
  done
  echo "replicas ready: $ready/2"
  ((ready == 2)) || rc=1
  if ! http_ok "http://127.0.0.1:$(port prometheus)/-/ready"; then
    echo "prometheus: not answering"
    return 1
  fi
  curl -fsS --max-time 5 "http://127.0.0.1:$(port prometheus)/api/v1/targets?state=active" |
    python3 -c 'import json, sys
targets = json.load(sys.stdin)["data"]["activeTargets"]
up = [t for t in targets if t["health"] == "up"]
print("prometheus targets up: %d/%d" % (len(up), len(targets)))
for t in targets:
    if t["health"] != "up":
        print("  %s: %s %s" % (t["scrapeUrl"], t["health"], t.get("lastError", "")))
sys.exit(0 if targets and len(up) == len(targets) else 1)' || rc=1
  curl -fsS --max-time 5 "http://127.0.0.1:$(port prometheus)/api/v1/alerts" |
    python3 -c 'import json, sys
alerts = [a for a in json.load(sys.stdin)["data"]["alerts"] if a["state"] == "firing"]
print("firing alerts: %d" % len(alerts))
for a in alerts:
    labels = ", ".join("%s=%s" % kv for kv in sorted(a["labels"].items()) if kv[0] != "alertname")
    print("  %s (%s)" % (a["labels"]["alertname"], labels))'
  echo "compliance series (summed over the replicas Prometheus scrapes now):"
  printf '  %-42s %s\n' \
    "admissions (all decisions)" "$(promql 'sum(computegate_admissions_total)')" \
    "admitted FLOP" "$(promql 'sum(computegate_flop_admitted_total)')" \
    "threshold crossings" "$(promql 'sum(computegate_threshold_crossings_total)')" \
    "reports due (not filed)" "$(promql 'max(computegate_reports_due)')" \
    "applications waiting for review" "$(promql 'max(computegate_kyc_queue_size)')" \
    "data-plane requests" "$(promql 'sum(computegate_http_requests_total)')"
  return $rc
}

cmd_stop() {
  local name pid
  for name in traffic prometheus sim gateway-1 gateway-2 redis; do
    if alive "$name"; then
      pid=$(cat "$RUN/$name.pid")
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  for name in traffic prometheus sim gateway-1 gateway-2 redis; do
    if [[ -f "$RUN/$name.pid" ]]; then
      pid=$(cat "$RUN/$name.pid")
      for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
      rm -f "$RUN/$name.pid"
    fi
  done
  if [[ -f "$RUN/postgres.pid" ]]; then
    as_postgres "$(pg_bindir)/pg_ctl" -D "$CLUSTER_DIR/postgres" -m fast -w stop >/dev/null 2>&1 || true
    rm -f "$RUN/postgres.pid"
  fi
  echo "cluster in $CLUSTER_DIR stopped"
}

case "${1:-}" in
  start) cmd_start ;;
  status) cmd_status ;;
  stop) cmd_stop ;;
  -h | --help) usage ;;
  *)
    usage >&2
    exit 2
    ;;
esac
