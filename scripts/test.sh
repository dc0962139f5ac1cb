#!/usr/bin/env bash
# The single test command of Computegate (CI runs it through .ci/run).
#
#   scripts/test.sh
#
# 1. makes sure Redis (127.0.0.1:6379) and PostgreSQL (127.0.0.1:5432, user postgres, trust auth,
#    database `test`) answer — installing them with apt (when root) and starting them if needed —
#    and exports their URLs for the tests; installs `chromium` and `chromium-driver` with apt when
#    missing (the browser tests, `#[ignore = "needs chromium"]`), and `nginx` when missing (the
#    external-authorization test in front of the simulator, `#[ignore = "needs nginx"]`),
#    `prometheus` when promtool is missing (rule tests; the cluster test runs the server), and
#    kubernetes-validate and the STIX 2.1 validator (`stix2-validator`, for the exported incident
#    bundles of tests/incidents.rs) in a virtual environment under target/tools-venv;
# 2. cargo fmt --check;  3. cargo clippy -D warnings;
# 4. checks that aws-lc-rs is not in the dependency graph (one crypto provider: ring);
# 5. promtool check + unit tests of deploy/prometheus/rules.yml, kubernetes-validate --strict of
#    deploy/kubernetes/ and scripts/check_manifests.py (references between the manifests);
# 6. cargo test --workspace -- --include-ignored (tests that need Redis/PostgreSQL are
#    `#[ignore = "needs …"]` under plain `cargo test`, and run here, never skipped; the cluster
#    test runs scripts/cluster.sh with the debug binary for two minutes); then the data-plane
#    suites (proxy, proxy_lifecycle, proxy_tls) once more with every gateway in the
#    `work_stealing` runtime (COMPUTEGATE_TEST_SERVER_RUNTIME), the suite's gateways otherwise
#    running the default `thread_per_core`.
#
# Environment:
#   COMPUTEGATE_TEST_REDIS_URL     default redis://127.0.0.1:6379
#   COMPUTEGATE_TEST_DATABASE_URL  default postgres://postgres@127.0.0.1:5432/test
#   COMPUTEGATE_TEST_CHROMEDRIVER  default /usr/bin/chromedriver
#   COMPUTEGATE_TEST_CHROMIUM      default /usr/bin/chromium
#   COMPUTEGATE_TEST_NGINX         default /usr/sbin/nginx (tests/authz_nginx.rs runs it as its own
#                                  foreground process: own port, pid, logs and temp files)
#   When one of these is set to another server or path, it is only checked (never installed or
#   started) and must already answer (or be executable).
#
# Option:
#   --servers-only   do step 1 only and print the exports (handy before a plain `cargo test`)
set -euo pipefail

SERVERS_ONLY=0
case "${1:-}" in
  "") ;;
  --servers-only) SERVERS_ONLY=1 ;;
  -h | --help)
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "usage: scripts/test.sh [--servers-only]" >&2
    exit 2
    ;;
esac

cd "$(dirname "${BASH_SOURCE[0]}")/.."

readonly DEFAULT_REDIS_URL="redis://127.0.0.1:6379"
readonly DEFAULT_DATABASE_URL="postgres://postgres@127.0.0.1:5432/test"
readonly WAIT_SECONDS=30
readonly DEFAULT_CHROMEDRIVER="/usr/bin/chromedriver"
readonly DEFAULT_CHROMIUM="/usr/bin/chromium"
readonly DEFAULT_NGINX="/usr/sbin/nginx"

COMPUTEGATE_TEST_REDIS_URL="${COMPUTEGATE_TEST_REDIS_URL:-$DEFAULT_REDIS_URL}"
COMPUTEGATE_TEST_DATABASE_URL="${COMPUTEGATE_TEST_DATABASE_URL:-$DEFAULT_DATABASE_URL}"
COMPUTEGATE_TEST_CHROMEDRIVER="${COMPUTEGATE_TEST_CHROMEDRIVER:-$DEFAULT_CHROMEDRIVER}"
COMPUTEGATE_TEST_CHROMIUM="${COMPUTEGATE_TEST_CHROMIUM:-$DEFAULT_CHROMIUM}"
COMPUTEGATE_TEST_NGINX="${COMPUTEGATE_TEST_NGINX:-$DEFAULT_NGINX}"
export COMPUTEGATE_TEST_REDIS_URL COMPUTEGATE_TEST_DATABASE_URL
export COMPUTEGATE_TEST_CHROMEDRIVER COMPUTEGATE_TEST_CHROMIUM COMPUTEGATE_TEST_NGINX

export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
if [[ "${CI:-}" == "true" ]]; then
  # A fresh clone builds everything once: incremental artifacts only cost time and disk there.
  export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
fi

STEP="start"
START_TIME=$SECONDS
TEST_LOG=""

log() { printf '==> %s\n' "$*"; }
die() {
  printf '\nscripts/test.sh: ERROR: %s\n' "$*" >&2
  exit 1
}

on_exit() {
  local rc=$?
  [[ -n "$TEST_LOG" ]] && rm -f "$TEST_LOG"
  if [[ $rc -ne 0 ]]; then
    printf '\nscripts/test.sh: FAILED at step "%s" (exit %d) after %ds\n' "$STEP" "$rc" "$((SECONDS - START_TIME))" >&2
  fi
}
trap on_exit EXIT

is_root() { [[ "$(id -u)" -eq 0 ]]; }

APT_UPDATED=0
apt_install() {
  is_root || die "need to install $* but not running as root; install it yourself or point COMPUTEGATE_TEST_*_URL at running servers"
  command -v apt-get >/dev/null || die "need to install $* but apt-get is not available"
  if [[ $APT_UPDATED -eq 0 ]]; then
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq || die "apt-get update failed"
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" </dev/null ||
    die "apt-get install $* failed"
}

# ---------------------------------------------------------------------------------------------
# Redis
# ---------------------------------------------------------------------------------------------

# host and port out of redis://[user[:pass]@]host[:port][/db]
url_host_port() {
  local url=$1 default_port=$2 rest hostport host port
  rest=${url#*://}
  rest=${rest##*@}
  hostport=${rest%%/*}
  hostport=${hostport%%\?*}
  if [[ "$hostport" == \[*\]* ]]; then # [::1]:6379
    host=${hostport%%]*}
    host=${host#[}
    port=${hostport##*]}
    port=${port#:}
  elif [[ "$hostport" == *:* ]]; then
    host=${hostport%%:*}
    port=${hostport##*:}
  else
    host=$hostport
    port=""
  fi
  printf '%s %s\n' "${host:-127.0.0.1}" "${port:-$default_port}"
}

redis_answers() {
  local url=$1 host port reply=""
  if command -v redis-cli >/dev/null; then
    reply=$(timeout 5 redis-cli -u "$url" ping 2>/dev/null || true)
  else
    read -r host port < <(url_host_port "$url" 6379)
    # Plain RESP over bash's /dev/tcp (no password support; redis-cli is used when installed).
    reply=$(
      exec 3<>"/dev/tcp/$host/$port" || exit 1
      printf 'PING\r\n' >&3
      IFS= read -r -t 5 line <&3 || exit 1
      printf '%s' "$line"
    ) 2>/dev/null || true
    reply=${reply%$'\r'}
    reply=${reply#+}
  fi
  [[ "$reply" == "PONG" ]]
}

start_local_redis() {
  if ! command -v redis-server >/dev/null; then
    apt_install redis-server redis-tools
    # On a machine with a service manager the package may have started it already.
    redis_answers "$COMPUTEGATE_TEST_REDIS_URL" && return 0
  fi
  log "starting redis-server on 127.0.0.1:6379"
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --logfile "${TMPDIR:-/tmp}/computegate-test-redis.log" </dev/null ||
    die "redis-server failed to start (see ${TMPDIR:-/tmp}/computegate-test-redis.log)"
}

ensure_redis() {
  local url=$COMPUTEGATE_TEST_REDIS_URL
  if redis_answers "$url"; then
    log "Redis answers at $url"
    return 0
  fi
  if [[ "$url" != "$DEFAULT_REDIS_URL" ]]; then
    die "Redis does not answer at COMPUTEGATE_TEST_REDIS_URL=$url (a non-default URL is only checked, never started)"
  fi
  log "Redis does not answer at $url"
  start_local_redis
  local i
  for ((i = 0; i < WAIT_SECONDS * 2; i++)); do
    if redis_answers "$url"; then
      log "Redis answers at $url"
      return 0
    fi
    sleep 0.5
  done
  die "Redis still does not answer at $url after ${WAIT_SECONDS}s (log: ${TMPDIR:-/tmp}/computegate-test-redis.log)"
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------------------------

pg_answers() { # the full URL works: server up, auth accepted, database exists
  timeout 10 psql "$1" -w -X -q -tAc 'SELECT 1' >/dev/null 2>&1
}

pg_server_up() { timeout 5 pg_isready -q -h 127.0.0.1 -p 5432 >/dev/null 2>&1; }

pg_version_dir() { # newest cluster version under /etc/postgresql (empty when none)
  local d newest=""
  for d in /etc/postgresql/*/main; do
    [[ -d "$d" ]] || continue
    d=${d%/main}
    d=${d##*/}
    if [[ -z "$newest" ]] || [[ "$(printf '%s\n%s\n' "$newest" "$d" | sort -V | tail -n 1)" == "$d" ]]; then
      newest=$d
    fi
  done
  printf '%s' "$newest"
}

as_postgres() { # run a command as the OS user postgres (peer auth on the local socket)
  if [[ "$(id -un)" == "postgres" ]]; then
    "$@"
  elif command -v runuser >/dev/null; then
    runuser -u postgres -- "$@"
  else
    su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
  fi
}

ensure_pg_trust() { # trust for TCP connections of user postgres from loopback
  local ver=$1 hba
  hba="/etc/postgresql/$ver/main/pg_hba.conf"
  [[ -f "$hba" ]] || die "PostgreSQL config $hba not found; cannot set trust auth for user postgres"
  if timeout 10 psql "postgres://postgres@127.0.0.1:5432/postgres" -w -X -q -tAc 'SELECT 1' >/dev/null 2>&1; then
    return 0
  fi
  log "adding trust auth for user postgres on 127.0.0.1 and ::1 to $hba"
  # pg_hba.conf is read top-down: the first matching line wins, so these go first.
  local tmp
  tmp=$(mktemp)
  {
    echo "# added by computegate scripts/test.sh: test access without a password"
    echo "host all postgres 127.0.0.1/32 trust"
    echo "host all postgres ::1/128 trust"
    cat "$hba"
  } >"$tmp"
  cat "$tmp" >"$hba"
  rm -f "$tmp"
  pg_ctlcluster --skip-systemctl-redirect "$ver" main reload </dev/null ||
    as_postgres psql -X -q -c 'SELECT pg_reload_conf()' >/dev/null ||
    die "could not reload PostgreSQL after editing $hba"
  sleep 1
}

ensure_pg_database() { # database named in the URL (default `test`)
  local db
  db=${COMPUTEGATE_TEST_DATABASE_URL##*/}
  db=${db%%\?*}
  [[ "$db" =~ ^[A-Za-z0-9_]+$ ]] || die "unexpected database name '$db' in $COMPUTEGATE_TEST_DATABASE_URL"
  local exists
  exists=$(timeout 10 psql "postgres://postgres@127.0.0.1:5432/postgres" -w -X -q -tAc \
    "SELECT 1 FROM pg_database WHERE datname = '$db'" 2>/dev/null || true)
  if [[ "$exists" != "1" ]]; then
    log "creating database $db"
    timeout 30 psql "postgres://postgres@127.0.0.1:5432/postgres" -w -X -q -c "CREATE DATABASE \"$db\"" >/dev/null ||
      die "could not create database $db"
  fi
}

ensure_postgres() {
  local url=$COMPUTEGATE_TEST_DATABASE_URL
  if command -v psql >/dev/null && pg_answers "$url"; then
    log "PostgreSQL answers at $url"
    return 0
  fi
  if [[ "$url" != "$DEFAULT_DATABASE_URL" ]]; then
    command -v psql >/dev/null || apt_install postgresql-client
    pg_answers "$url" && { log "PostgreSQL answers at $url"; return 0; }
    die "PostgreSQL does not answer at COMPUTEGATE_TEST_DATABASE_URL=$url (a non-default URL is only checked, never started)"
  fi
  log "PostgreSQL does not answer at $url; setting it up"

  local ver
  ver=$(pg_version_dir)
  if [[ -z "$ver" ]] || ! command -v pg_ctlcluster >/dev/null || ! command -v psql >/dev/null; then
    apt_install postgresql
    ver=$(pg_version_dir)
    [[ -n "$ver" ]] || die "PostgreSQL installed but no cluster under /etc/postgresql"
  fi

  if ! pg_server_up; then
    log "starting PostgreSQL $ver cluster main"
    pg_ctlcluster --skip-systemctl-redirect "$ver" main start </dev/null || true
    local i
    for ((i = 0; i < WAIT_SECONDS * 2; i++)); do
      pg_server_up && break
      sleep 0.5
    done
    pg_server_up || die "PostgreSQL $ver did not come up on 127.0.0.1:5432 within ${WAIT_SECONDS}s (see /var/log/postgresql/)"
  fi

  if is_root || [[ "$(id -un)" == "postgres" ]]; then
    ensure_pg_trust "$ver"
  fi
  ensure_pg_database

  local i
  for ((i = 0; i < WAIT_SECONDS * 2; i++)); do
    if pg_answers "$url"; then
      log "PostgreSQL answers at $url"
      return 0
    fi
    sleep 0.5
  done
  die "PostgreSQL still does not accept $url after ${WAIT_SECONDS}s (check pg_hba.conf trust for user postgres and that database exists)"
}

# ---------------------------------------------------------------------------------------------
# Chromium (the browser tests drive Debian's chromium through chromedriver)
# ---------------------------------------------------------------------------------------------

ensure_browser() {
  local driver=$COMPUTEGATE_TEST_CHROMEDRIVER chromium=$COMPUTEGATE_TEST_CHROMIUM
  if [[ -x "$driver" && -x "$chromium" ]]; then
    log "chromium and chromedriver found ($chromium, $driver)"
    return 0
  fi
  if [[ "$driver" != "$DEFAULT_CHROMEDRIVER" || "$chromium" != "$DEFAULT_CHROMIUM" ]]; then
    die "COMPUTEGATE_TEST_CHROMEDRIVER=$driver / COMPUTEGATE_TEST_CHROMIUM=$chromium: not executable (a non-default path is only checked, never installed)"
  fi
  apt_install chromium chromium-driver
  [[ -x "$driver" && -x "$chromium" ]] || die "chromium-driver installed but $driver or $chromium is missing"
  log "chromium and chromedriver installed"
}

# ---------------------------------------------------------------------------------------------
# nginx (the external-authorization test puts Debian's nginx in front of the simulator)
# ---------------------------------------------------------------------------------------------

ensure_nginx() {
  local nginx=$COMPUTEGATE_TEST_NGINX
  if [[ -x "$nginx" ]]; then
    log "nginx found ($nginx)"
    return 0
  fi
  if [[ "$nginx" != "$DEFAULT_NGINX" ]]; then
    die "COMPUTEGATE_TEST_NGINX=$nginx: not executable (a non-default path is only checked, never installed)"
  fi
  apt_install nginx
  [[ -x "$nginx" ]] || die "nginx installed but $nginx is missing"
  log "nginx installed"
}

# ---------------------------------------------------------------------------------------------
# Prometheus (promtool for the rule tests; the server for the cluster test) and the Python tools
# that validate the Kubernetes manifests
# ---------------------------------------------------------------------------------------------

ensure_prometheus() {
  if [[ -x /usr/bin/promtool && -x /usr/bin/prometheus ]]; then
    log "prometheus and promtool found"
    return 0
  fi
  apt_install prometheus
  [[ -x /usr/bin/promtool ]] || die "prometheus installed but /usr/bin/promtool is missing"
  log "prometheus installed"
}

readonly TOOLS_VENV="target/tools-venv"
readonly KUBERNETES_VALIDATE="kubernetes-validate==1.37.0"
readonly STIX2_VALIDATOR="stix2-validator==3.2.0"

ensure_tools_venv() {
  if [[ ! -x "$TOOLS_VENV/bin/kubernetes-validate" ]]; then
    command -v python3 >/dev/null || apt_install python3
    if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
      apt_install python3-venv
    fi
    log "python3 -m venv $TOOLS_VENV; pip install $KUBERNETES_VALIDATE"
    rm -rf "$TOOLS_VENV"
    python3 -m venv "$TOOLS_VENV" || die "cannot create a Python virtual environment"
    "$TOOLS_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$KUBERNETES_VALIDATE" ||
      die "pip install $KUBERNETES_VALIDATE failed"
  else
    log "kubernetes-validate found ($TOOLS_VENV)"
  fi
  # `python -m pip` (not bin/pip) installs into this venv even when target/ was copied from
  # another checkout, whose bin/ scripts still name the original venv.
  if "$TOOLS_VENV/bin/python" -c 'import stix2validator' 2>/dev/null; then
    log "stix2-validator found ($TOOLS_VENV)"
  else
    log "pip install $STIX2_VALIDATOR ($TOOLS_VENV)"
    "$TOOLS_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$STIX2_VALIDATOR" ||
      die "pip install $STIX2_VALIDATOR failed"
  fi
}

# ---------------------------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------------------------

STEP="servers"
log "step 1/6: Redis, PostgreSQL, Chromium, nginx, Prometheus and the manifest validator"
ensure_redis
ensure_postgres
ensure_browser
ensure_nginx
ensure_prometheus
ensure_tools_venv
if [[ $SERVERS_ONLY -eq 1 ]]; then
  printf 'export COMPUTEGATE_TEST_REDIS_URL=%q\n' "$COMPUTEGATE_TEST_REDIS_URL"
  printf 'export COMPUTEGATE_TEST_DATABASE_URL=%q\n' "$COMPUTEGATE_TEST_DATABASE_URL"
  printf 'export COMPUTEGATE_TEST_CHROMEDRIVER=%q\n' "$COMPUTEGATE_TEST_CHROMEDRIVER"
  printf 'export COMPUTEGATE_TEST_CHROMIUM=%q\n' "$COMPUTEGATE_TEST_CHROMIUM"
  printf 'export COMPUTEGATE_TEST_NGINX=%q\n' "$COMPUTEGATE_TEST_NGINX"
  exit 0
fi

STEP="fmt"
log "step 2/6: cargo fmt --all -- --check"
cargo fmt --all -- --check

STEP="clippy"
log "step 3/6: cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

STEP="crypto-provider"
log "step 4/6: no aws-lc-rs in the dependency graph (one crypto provider: ring)"
tree_out=""
tree_rc=0
tree_out=$(cargo tree -i aws-lc-rs --workspace -e normal,dev 2>&1) || tree_rc=$?
if [[ $tree_rc -eq 0 ]]; then
  if [[ -n "$tree_out" ]]; then
    printf '%s\n' "$tree_out" >&2
    die "aws-lc-rs is in the dependency graph (above); keep rustls & co. on the ring provider"
  fi
elif ! grep -q 'did not match any packages' <<<"$tree_out"; then
  printf '%s\n' "$tree_out" >&2
  die "cargo tree failed (above)"
fi
log "aws-lc-rs: not present"

STEP="deploy-files"
log "step 5/6: Prometheus rules (promtool check + unit tests) and Kubernetes manifests (strict schema + references)"
/usr/bin/promtool check rules deploy/prometheus/rules.yml
/usr/bin/promtool test rules deploy/prometheus/rules.test.yml
"$TOOLS_VENV/bin/kubernetes-validate" --strict --quiet deploy/kubernetes/*.yaml
"$TOOLS_VENV/bin/python" scripts/check_manifests.py deploy/kubernetes

STEP="test"
log "step 6/6: cargo test --workspace -- --include-ignored"
TEST_LOG=$(mktemp)
cargo test --workspace -- --include-ignored 2>&1 | tee "$TEST_LOG"
# The suite runs its gateways in the default runtime (`thread_per_core`); the data-plane suites
# run once more in the other one, so both stay tested (docs/operations.md, "Choosing the runtime").
log "step 6/6 (cont.): the data-plane suites again with server.runtime = work_stealing"
COMPUTEGATE_TEST_SERVER_RUNTIME=work_stealing \
  cargo test --workspace --test proxy --test proxy_lifecycle --test proxy_tls -- --include-ignored 2>&1 |
  tee -a "$TEST_LOG"

passed=0
failed=0
ignored=0
suites=0
while read -r p f i; do
  passed=$((passed + p))
  failed=$((failed + f))
  ignored=$((ignored + i))
  suites=$((suites + 1))
done < <(sed -nE 's/^test result: [A-Za-z]+\. ([0-9]+) passed; ([0-9]+) failed; ([0-9]+) ignored.*/\1 \2 \3/p' "$TEST_LOG")

STEP="summary"
if [[ $ignored -ne 0 ]]; then
  die "$ignored test(s) were still ignored despite --include-ignored"
fi
if [[ $failed -ne 0 ]]; then
  die "$failed test(s) failed"
fi
printf '\nscripts/test.sh: fmt, clippy, crypto-provider check, deploy files and %d test suites OK in %ds\n' \
  "$suites" "$((SECONDS - START_TIME))"
printf 'tests: %d passed, %d failed\n' "$passed" "$failed"
