#!/usr/bin/env bash
# Runs every fuzz target (or the named ones) for SECONDS each and prints one markdown table row
# per target: executions, corpus size, peak RSS and crashes.
#
#   scripts/fuzz.sh SECONDS [TARGET...]      e.g. scripts/fuzz.sh 600   (the 10-minute run)
#
# Needs the nightly toolchain and cargo-fuzz (`rustup toolchain install nightly`,
# `cargo install cargo-fuzz`). Targets live in fuzz/fuzz_targets/; corpora grow in
# fuzz/corpus/<target>/ and crashing inputs land in fuzz/artifacts/<target>/ (both git-ignored).
# Exit status 1 when any target crashed (its artifact path is printed).
#
# Environment:
#   FUZZ_SANITIZER  none (default) | address — Computegate is safe Rust, so the default
#                   instruments coverage only and runs several times faster; `address` adds ASan
#                   for the unsafe code of dependencies.
#   FUZZ_JOBS       parallel fuzzing processes per target (default 1).
#   FUZZ_LOG_DIR    where each target's libFuzzer output is kept (default fuzz/logs).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
case "${1:-}" in
  -h | --help) usage; exit 0 ;;
  '' | *[!0-9]*) usage >&2; exit 2 ;;
esac
SECONDS_EACH=$1
shift
cd "$ROOT/fuzz"
command -v cargo-fuzz >/dev/null || { echo "fuzz.sh: cargo-fuzz is required (cargo install cargo-fuzz)" >&2; exit 2; }
SANITIZER=${FUZZ_SANITIZER:-none}
JOBS=${FUZZ_JOBS:-1}
LOG_DIR=${FUZZ_LOG_DIR:-$ROOT/fuzz/logs}
mkdir -p "$LOG_DIR"
if [[ $# -gt 0 ]]; then
  TARGETS=("$@")
else
  mapfile -t TARGETS < <(cargo +nightly fuzz list)
fi
echo "fuzz.sh on $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u +%FT%TZ), ${SECONDS_EACH}s per target, sanitizer $SANITIZER, $(nproc) cores" >&2
cargo +nightly fuzz build -s "$SANITIZER" >&2
echo "| target | seconds | executions | exec/s | corpus entries | peak RSS MB | crashes |"
echo "|---|---|---|---|---|---|---|"
FAILED=0
for t in "${TARGETS[@]}"; do
  log="$LOG_DIR/$t.log"
  mkdir -p "corpus/$t"
  set +e
  cargo +nightly fuzz run -s "$SANITIZER" --jobs "$JOBS" "$t" -- \
    -max_total_time="$SECONDS_EACH" -print_final_stats=1 -rss_limit_mb=2048 -timeout=10 >"$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
  rss=$(grep -o 'stat::peak_rss_mb: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
  corpus=$(find "corpus/$t" -type f | wc -l)
  crashes=$(find "artifacts/$t" -type f 2>/dev/null | wc -l)
  if [[ $rc -ne 0 ]]; then
    FAILED=1
    echo "fuzz.sh: $t exited $rc; see $log and artifacts/$t/" >&2
  fi
  echo "| \`$t\` | $SECONDS_EACH | ${execs:-?} | ${rate:-?} | $corpus | ${rss:-?} | $crashes |"
done
exit $FAILED
