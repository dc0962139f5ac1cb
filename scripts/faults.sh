#!/usr/bin/env bash
# The fault suite: injects faults into real processes and counts what happened.
#
#   scripts/faults.sh [SCENARIO...]     (markdown table on stdout; exit 1 if anything was lost,
#                                        over-admitted, or a scenario failed)
#
# Scenarios (all by default): kill9-submissions race kill9-usage redis pg-stop pg-crash pg-hang
# upstream sigterm. Each starts its OWN redis-server and PostgreSQL cluster (initdb + pg_ctl, as
# the postgres user when run as root) on free loopback ports in a temp dir, the simulator and
# one to three gateway replicas, and stops all of them at the end. The machine's shared Redis and
# PostgreSQL are never touched.
#
# Environment: FAULTS_BIN [target/debug/computegate]   FAULTS_BUILD [1] (0: skip cargo build)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
  exit 0
fi
BIN=${FAULTS_BIN:-$ROOT/target/debug/computegate}
if [[ "${FAULTS_BUILD:-1}" == 1 ]]; then
  nice cargo build --bin computegate >&2
fi
for tool in redis-server psql python3; do
  command -v "$tool" >/dev/null || { echo "faults.sh: $tool is required" >&2; exit 2; }
done
echo "faults.sh on $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
exec python3 "$ROOT/scripts/faults.py" "$BIN" "$@"
