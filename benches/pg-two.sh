#!/usr/bin/env bash
# Two instances on one throw-away PostgreSQL only (every message crosses from one to the other through the
# database): three runs with 8 senders as fast as they go, and three at 2,000 msg/s, alternated; latency percentiles.
# For working on the two-instance path without the whole of benches/postgres.sh. Usage: benches/pg-two.sh [MESSAGES]
set -euo pipefail
cd "$(dirname "$0")/.."
messages="${1:-20000}"
bin_dir="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
cargo build --release --quiet
cb="$PWD/target/release/chatbridge"
work="$(mktemp -d /tmp/chatbridge-pgtwo-XXXXXX)"
as=()
if [ "$(id -u)" = 0 ]; then chown nobody "$work"; as=(setpriv --reuid=nobody --regid=nogroup --clear-groups); fi
port=$((20000 + RANDOM % 10000))
"${as[@]}" "$bin_dir/initdb" -A trust -U postgres -D "$work/data" >/dev/null
"${as[@]}" "$bin_dir/postgres" -D "$work/data" -p "$port" -c listen_addresses=127.0.0.1 \
  -c unix_socket_directories= >"$work/server.log" 2>&1 &
server=$!
cleanup() { kill -INT "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
until "$bin_dir/pg_isready" -q -h 127.0.0.1 -p "$port"; do sleep 0.1; done
echo "# $(date -u +%FT%TZ) on $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg); $messages messages per run"
n=0
for round in 1 2 3; do
  for load in "--concurrency 8" "--concurrency 8 --rate 2000"; do
    n=$((n + 1))
    "$bin_dir/psql" -qAt -h 127.0.0.1 -p "$port" -U postgres -d postgres -c "CREATE DATABASE b$n"
    # shellcheck disable=SC2086
    out="$("$cb" bench --messages "$messages" $load --store "postgres://postgres@127.0.0.1:$port/b$n?sslmode=disable" \
      --instances 2 2>&1 | grep -E 'throughput|p99' | tr '\n' ' ')"
    printf 'round %s  %-28s %s\n' "$round" "$load" "$out"
  done
done
