#!/usr/bin/env bash
# Soak: mixed traffic through two gateway replicas for a while, watching for leaks.
#
#   benches/soak.sh        (markdown table on stdout, one row per interval; progress on stderr)
#
# Starts its OWN redis-server and PostgreSQL cluster (free loopback ports, temp dir; the shared
# servers are never touched), the simulator and two `computegate serve` replicas on them, four
# customers at the top tier (row set directly, a shortcut for the KYC approval) with an API key
# each, then runs SOAK_WORKERS client threads that together send SOAK_RATE requests per second,
# loopback only: 55 % JWT GETs, 15 % API-key GETs, 15 % job submissions (tiny jobs, new run each),
# 5 % password logins, 10 % signed usage heartbeats for recently admitted jobs. Every interval it
# prints, per replica, resident memory (VmRSS) and open descriptors, and for the interval the
# requests sent, errors (5xx or socket errors; 4xx such as 429 are answers, not errors) and p99.
# A flat RSS/fd column over the run is the pass criterion; the slope is read from the table.
#
# Environment (defaults in brackets)
#   SOAK_DURATION [600]   seconds of traffic       SOAK_INTERVAL [60]   seconds per row
#   SOAK_RATE [40]        requests per second       SOAK_WORKERS [8]     client threads
#   SOAK_BIN [target/release/computegate if built, else target/debug/computegate]
#   SOAK_BUILD [0]        1: cargo build --release first
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
  exit 0
fi
for v in SOAK_DURATION SOAK_INTERVAL SOAK_WORKERS; do
  val=${!v:-1}
  [[ "$val" =~ ^[0-9]+$ && "$val" -ge 1 ]] || { echo "soak.sh: $v must be a whole number >= 1" >&2; exit 2; }
done
if [[ "${SOAK_BUILD:-0}" == 1 ]]; then
  nice cargo build --release --bin computegate >&2
fi
if [[ -n "${SOAK_BIN:-}" ]]; then
  BIN=$SOAK_BIN
elif [[ -x target/release/computegate ]]; then
  BIN=$ROOT/target/release/computegate
else
  BIN=$ROOT/target/debug/computegate
fi
for tool in redis-server psql python3; do
  command -v "$tool" >/dev/null || { echo "soak.sh: $tool is required" >&2; exit 2; }
done
echo "soak.sh: $BIN on $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u +%FT%TZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
exec python3 "$ROOT/benches/soak.py" "$BIN"
