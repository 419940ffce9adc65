#!/usr/bin/env bash
# Two instances on one throw-away PostgreSQL only (every message crosses from one to the other through the
# database): three runs with 8 senders as fast as they go, and three at 2,000 msg/s, alternated; latency percentiles.
# For working on the two-instance path without the whole of benches/postgres.sh. Usage: benches/pg-two.sh [MESSAGES]
set -euo pipefail
cd "$(dirname "$0")/.."
messages="${1:-20000}"
# shellcheck source=benches/pg-server.sh
source "benches/pg-server.sh" pgtwo
echo "# $(date -u +%FT%TZ) on $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg); $messages messages per run"
for round in 1 2 3; do
  for load in "--concurrency 8" "--concurrency 8 --rate 2000"; do
    fresh
    # shellcheck disable=SC2086
    out="$("$cb" bench --messages "$messages" $load --store "$made" --instances 2 2>&1 | grep -E 'throughput|p99' | tr '\n' ' ')"
    printf 'round %s  %-28s %s\n' "$round" "$load" "$out"
  done
done
