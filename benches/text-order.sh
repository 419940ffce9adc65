#!/usr/bin/env bash
# Writes link/text-order.txt: the functions the release binary runs, hottest first, for the linker to place together
# (build.rs explains why). Runs the release build under callgrind four times — the daemon serving the API while
# `chatbridge bench` posts 600 messages through it, the daemon connected to every platform's simulator (idle), the
# null relay under the API's load, and `chatbridge demo` (a conversation through every platform) — and, where perf is
# installed, records the daemon natively through a burst of 20,000 messages (the code it faults in, and samples: what
# callgrind does not run; text-order.py says which). Lists the functions of the binary that ran: the API daemon's
# first, then what native runs added, then the five platforms', the null relay's, the demo's. Needs valgrind and
# python3. Run it again after a compiler or dependency upgrade (names carry hashes of both) and after large changes;
# about a minute here.
# Usage: benches/text-order.sh [--check]   (--check: how many of the listed functions the release build has)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet
if [ "${1:-}" = --check ]; then
  listed="$(wc -l < link/text-order.txt)"
  found="$(nm --defined-only target/release/chatbridge | awk '{ print $3 }' | sort -u | grep -cxFf link/text-order.txt || true)"
  echo "link/text-order.txt: $found of $listed functions are in the release build"
  exit 0
fi
command -v valgrind >/dev/null || { echo "needs valgrind" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cb="$work/chatbridge"
cp target/release/chatbridge "$cb"
# shellcheck source=benches/common.sh
source benches/common.sh
# Run in a subshell or in the background: it becomes valgrind (so that a signal reaches it).
grind() { local name="$1"; shift; exec valgrind --tool=callgrind --demangle=no --callgrind-out-file="$work/$name.cg" "$cb" "$@"; }
ready() { for _ in $(seq 1 120); do curl -sf "$1/api/health" >/dev/null && return; sleep 0.5; done; echo "$1 never answered" >&2; exit 1; }
load() {
  "$cb" bench --post "$1" --read "$2" --messages 400 --concurrency 8 | grep '^sent'
  "$cb" bench --post "$1" --read "$2" --messages 200 --concurrency 1 | grep '^sent'
}

post="$(port)"; read="$(port)"
api_config "$work/state-$post" "$post" "$read" > "$work/bench.toml"
grind daemon --config "$work/bench.toml" run 2>"$work/daemon.log" &
daemon=$!
ready "http://127.0.0.1:$post"; ready "http://127.0.0.1:$read"
sleep 3 # the idle writer's checkpoint and the timers
load "http://127.0.0.1:$post" "http://127.0.0.1:$read"
kill -TERM "$daemon"; wait "$daemon"

# Every platform's adapter connected to its simulator (run natively), idle: what a bridge of five platforms runs.
"$cb" sim --rooms 2 --config-out "$work/sim.toml" >/dev/null 2>&1 &
simulators=$!
for _ in $(seq 1 100); do [ -s "$work/sim.toml" ] && break; sleep 0.1; done
STATE_DIRECTORY="$work/state-sim" grind platforms run -c "$work/sim.toml" 2>"$work/platforms.log" &
platforms=$!
sleep 20 # start-up under callgrind, five logins, then heartbeats and polls
kill -TERM "$platforms"; wait "$platforms"
kill "$simulators"; wait "$simulators" || true

post="$(port)"; read="$(port)"
grind null bench --null-relay "127.0.0.1:$post" "127.0.0.1:$read" 2>"$work/null.log" &
relay=$!
ready "http://127.0.0.1:$post"; ready "http://127.0.0.1:$read"
load "http://127.0.0.1:$post" "http://127.0.0.1:$read"
kill -TERM "$relay"; wait "$relay" || true

(grind demo demo) >/dev/null 2>"$work/demo.log"

touch "$work/native.perf"
if command -v perf >/dev/null; then
  post="$(port)"; read="$(port)"
  api_config "$work/state-$post" "$post" "$read" > "$work/native.toml"
  # From its start: every page of code faulted in, and samples of the burst.
  (exec perf record -q -d -e cpu-clock/freq=20000/ -e page-faults/period=1/ -o "$work/perf.data" -- \
    "$cb" --config "$work/native.toml" run 2>"$work/native.log") &
  sampler=$!
  ready "http://127.0.0.1:$post"; ready "http://127.0.0.1:$read"
  sleep 3
  "$cb" bench --post "http://127.0.0.1:$post" --read "http://127.0.0.1:$read" --messages 20000 --concurrency 8 | grep '^sent'
  pkill -TERM -P "$sampler"; wait "$sampler"
  perf script -i "$work/perf.data" --no-demangle -F event,addr,ip,sym,dso > "$work/native.perf" 2>/dev/null
fi
# What native runs found, this one's and earlier ones' (each sees only the first function faulted in per run of
# pages, and which that is depends on the placement the run had): kept in link/native.txt.
python3 benches/text-order.py --native "$cb" link/native.txt "$work/native.perf" > "$work/native.txt"
cp "$work/native.txt" link/native.txt

python3 benches/text-order.py chatbridge "$work/daemon.cg" link/native.txt "$work/platforms.cg" "$work/null.cg" \
  "$work/demo.cg" > link/text-order.txt
echo "link/text-order.txt: $(wc -l < link/text-order.txt) functions"
