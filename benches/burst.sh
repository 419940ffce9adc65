#!/usr/bin/env bash
# A busy room behind a send limit: 5,000 messages said at once in a Missevan room (simulated), relayed to a Fishroom
# room (10 sends a second by default) and to another Missevan room (2 a second), with coalescing (the default) and
# without. Prints the time until the last message is visible in the destination, and how many platform messages it
# took. The runs without coalescing take as long as the send limit says (about 500 s to Fishroom); the one to
# Missevan without coalescing (about 2,500 s) runs only with ALL=1. Usage: benches/burst.sh [ROUNDS] [MESSAGES]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
messages="${2:-5000}"
cargo build --release --quiet
cb="$PWD/target/release/chatbridge"
echo "# $(date -u +%FT%TZ) on $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); load $(cut -d' ' -f1-3 /proc/loadavg)"
run() { "$cb" bench --burst "$messages" "$@" 2>/dev/null | grep '^burst'; }
for round in $(seq 1 "$rounds"); do
  echo "round $round: $(run --to fishroom)"
  echo "round $round: $(run --to missevan)"
done
echo "once: $(run --to fishroom --no-coalesce)"
if [ "${ALL:-0}" = 1 ]; then echo "once: $(run --to missevan --no-coalesce)"; fi
