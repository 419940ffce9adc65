#!/usr/bin/env bash
# The PostgreSQL store measured beside SQLite, in one run on one machine, alternated:
#   throughput and p99 through the API (1 and 8 senders; a fixed 2,000 msg/s), with SQLite, PostgreSQL with one
#   instance, and PostgreSQL with two instances (each message crosses from one to the other through the database);
#   then the takeover time after SIGKILL, ten times.
# A throw-away PostgreSQL server of Debian's package is started on loopback with its default durability
# (fsync, synchronous_commit on) and removed at the end. Usage: benches/postgres.sh [ROUNDS] [MESSAGES]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
messages="${2:-20000}"
# shellcheck source=benches/pg-server.sh
source "benches/pg-server.sh" pgbench

echo "# $(date -u +%FT%TZ) on $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# PostgreSQL $("$bin_dir/postgres" --version | awk '{print $3}'), default durability; $messages messages per run"
for round in $(seq 1 "$rounds"); do
  for load in "--concurrency 1" "--concurrency 8" "--concurrency 8 --rate 2000"; do
    for store in sqlite pg1 pg2; do
      case $store in
        sqlite) args=() ;;
        pg1) fresh; args=(--store "$made") ;;
        pg2) fresh; args=(--store "$made" --instances 2) ;;
      esac
      # shellcheck disable=SC2086
      out="$("$cb" bench --messages "$messages" $load "${args[@]}" 2>&1)"
      tput="$(sed -n 's/^throughput \([0-9]*\) msg\/s.*/\1/p' <<<"$out")"
      p99="$(sed -n 's/.*p99 \([0-9.]*\).*/\1/p' <<<"$out")"
      lost="$(sed -n 's/.*lost \([0-9]*\).*/\1/p' <<<"$out" | head -1)"
      printf 'round %s  %-28s %-7s %6s msg/s  p99 %6s ms  lost %s\n' "$round" "$load" "$store" "$tput" "$p99" "${lost:-?}"
    done
  done
done

# Takeover: two daemons, one API account each; the one running api.read is killed; how long until the other
# holds its lease (lease_ttl 15 s, renewed every 5 s).
fresh; url="$made"
p1=$((port + 1)); p2=$((port + 2))
conf() {
  cat >"$work/$1.toml" <<TOML
[general]
store = "$url"
instance = "$1"
log_format = "json"
[accounts.api.post]
listen = "127.0.0.1:$p1"
post_rate = 0
[accounts.api.read]
listen = "127.0.0.1:$p2"
[[bridge]]
name = "load"
rooms = ["api.post:load", "api.read:load"]
TOML
}
owner() { psql -d "b$n" -c "SELECT owner FROM leases WHERE account = 'api.read' AND run IS NOT NULL AND expires > clock_timestamp()" 2>/dev/null || true; }
declare -A pids
start() { conf "$1"; "$cb" run -c "$work/$1.toml" 2>/dev/null & pids[$1]=$!; }
start x; sleep 2; start y
takeovers=()
for i in $(seq 1 10); do
  until [ "$(psql -d "b$n" -c "SELECT COUNT(DISTINCT owner) FROM leases WHERE run IS NOT NULL AND expires > clock_timestamp()")" = 2 ]; do sleep 0.2; done
  victim="$(owner)"
  [ "$victim" = x ] && other=y || other=x
  t0=$(date +%s.%N)
  kill -9 "${pids[$victim]}"; wait "${pids[$victim]}" 2>/dev/null || true
  until [ "$(owner)" = "$other" ]; do sleep 0.05; done
  t1=$(date +%s.%N)
  takeovers+=("$(awk "BEGIN { print $t1 - $t0 }")")
  echo "takeover $i: ${takeovers[-1]} s"
  start "$victim"
done
kill "${pids[x]}" "${pids[y]}" 2>/dev/null || true; wait 2>/dev/null || true
printf '%s\n' "${takeovers[@]}" | sort -n | awk '{a[NR]=$1} END {printf "takeover after SIGKILL, 10 runs: min %.2f s, median %.2f s, max %.2f s\n", a[1], (a[5]+a[6])/2, a[NR]}'
