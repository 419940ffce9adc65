#!/usr/bin/env bash
# Media through the store (issue #31 §4): a Yunhu group (simulated) says 1,000 photos of 200 KB at once, each a
# different picture on a media host on loopback; the bridge fetches each into its media store and relays it to a
# Fishroom room (the store's signed link) and to another Yunhu group (uploaded, an image message). Prints, per round,
# the time until every item arrived in both, items a second, and how far resident memory rose above where it stood
# before the burst (the whole process: daemon, simulators and media host). Usage: benches/media.sh [ROUNDS] [ITEMS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-5}"
items="${2:-1000}"
cargo build --release --quiet
cb="$PWD/target/release/chatbridge"
echo "# $(date -u +%FT%TZ) on $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); load $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq 1 "$rounds"); do
  echo "round $round: $("$cb" bench --media "$items" 2>/dev/null | grep '^media')"
done
