#!/usr/bin/env bash
# Forged-credential flood: do valid clients keep their throughput, and does the gateway's memory
# stay bounded, while a forger floods it with forged credentials?
#
#   benches/forged_flood.sh        (markdown table on stdout, context on stderr)
#
# Starts the simulator and one `computegate serve` (SQLite, the shipped argon2 cost, every tier's
# rate limit raised so that only credential checks limit throughput), a customer with a JWT and
# an API key. Phases of FLOOD_PHASE seconds: valid clients alone (FLOOD_VALID_THREADS keep-alive
# connections from 127.0.0.1, GET /v1/echo alternating the JWT and the API key), then the same
# while a forger (FLOOD_FORGER_THREADS connections from 127.0.0.2, a separate process) sends one
# kind at a time: API keys with random ids, API keys with the real id and a wrong secret,
# EdDSA JWTs with a real `kid` and a forged signature, and password logins with wrong passwords
# (half for the real account, half for unknown emails); then valid clients alone again. Per
# phase: valid req/s and its ratio to the mean of the two baselines (target >= 0.90), the
# forger's answers by status, and the gateway's peak VmRSS (target < 300 MiB).
#
# With two or more cores the forger is pinned to the last core and the gateway, the simulator and
# the valid clients to the others (FLOOD_PIN=0 turns this off): on a small host the forger's own
# Python loop would otherwise take CPU from the valid clients, which measures the load generator,
# not what forged requests cost the gateway.
#
# Environment (defaults in brackets)
#   FLOOD_PHASE [10]  FLOOD_VALID_THREADS [4]  FLOOD_FORGER_THREADS [16]  FLOOD_PIN [1 on >= 2 cores]
#   FLOOD_KINDS [all: api_key_random_id api_key_real_id jwt_forged login_bad]
#   FLOOD_BIN [target/release/computegate if built, else target/debug/computegate]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
  exit 0
fi
if [[ -n "${FLOOD_BIN:-}" ]]; then
  BIN=$FLOOD_BIN
elif [[ -x target/release/computegate ]]; then
  BIN=$ROOT/target/release/computegate
else
  BIN=$ROOT/target/debug/computegate
fi
echo "forged_flood.sh: $BIN on $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u +%FT%TZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
python3 "$ROOT/benches/forged_flood.py" "$BIN"
echo "forged_flood.sh: done $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
