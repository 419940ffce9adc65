#!/usr/bin/env bash
# Thousands of rooms on several machines (issue #34 §3): a throw-away PostgreSQL, the simulators, and INSTANCES
# `chatbridge run` processes on this machine. Per round: ROOMS Missevan rooms bridged one by one to Yunhu groups
# (joined, memory per idle room, idle CPU, 1,000 msg/s over all rooms, one instance SIGKILLed under traffic: nothing
# lost or doubled, or the run fails), then PROVISION bridges added through the admin API (the time until all relay).
# Usage: benches/rooms.sh [ROUNDS] [ROOMS] [INSTANCES] [PROVISION]; figures in docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
rooms="${2:-5000}"
instances="${3:-3}"
provision="${4:-1000}"
# A room is a socket at each end: the simulators hold ROOMS, the instances ROOMS between them.
ulimit -n "$(ulimit -Hn)"
# shellcheck source=benches/pg-server.sh
source "benches/pg-server.sh" rooms
echo "# $(date -u +%FT%TZ) on $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); load $(cut -d' ' -f1-3 /proc/loadavg); descriptors $(ulimit -n)"
echo "# PostgreSQL $("$bin_dir/postgres" --version | awk '{print $3}'), default durability"
for round in $(seq "$rounds"); do
  echo "## round $round"
  fresh
  "$cb" bench --rooms "$rooms" --instances "$instances" --store "$made" --rate 1000 --seconds 20
  fresh
  "$cb" bench --provision "$provision" --instances "$instances" --store "$made"
done
