#!/usr/bin/env bash
# User-space instructions a message on the API path, chatbridge against the floor (the null relay), counted by
# valgrind's callgrind: the CPU figures of `benches/suite.sh` spread by a fifth between runs on this machine, this
# count by a few percent, so it tells two builds apart where the suite cannot. Each subject runs under callgrind
# (chatbridge with the store on, as `chatbridge bench` configures it), takes 300 messages to warm up, then the counters
# are zeroed and MESSAGES messages from 8 senders are counted (every thread of the process; the kernel's work is not
# in it). Usage: benches/instructions.sh [ROUNDS] [MESSAGES] [BINARY]   (defaults: 2 rounds, 3,000 messages, the
# release build; about a minute a round). Needs valgrind and curl.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-2}"
messages="${2:-3000}"
cb="${3:-}"
if [ -z "$cb" ]; then
  cargo build --release --quiet
  cb="$PWD/target/release/chatbridge"
fi
# shellcheck source=benches/common.sh
source benches/common.sh
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "# $(date -u +%FT%TZ) on $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg); $(valgrind --version)"
count() {
  local subject="$1" post read dir pid
  post="$(port)"
  read="$(port)"
  dir="$(mktemp -d "$work/$subject.XXXX")"
  if [ "$subject" = floor ]; then
    set -- bench --null-relay "127.0.0.1:$post" "127.0.0.1:$read"
  else
    api_config "$dir/state" "$post" "$read" >"$dir/bench.toml"
    set -- run -c "$dir/bench.toml"
  fi
  RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$dir/out" "$cb" "$@" >/dev/null 2>"$dir/valgrind.log" &
  pid=$!
  for _ in $(seq 200); do
    curl -sf "http://127.0.0.1:$read/api/health" >/dev/null && curl -sf "http://127.0.0.1:$post/api/health" >/dev/null && break
    sleep 0.2
  done
  local load=(bench --post "http://127.0.0.1:$post" --read "http://127.0.0.1:$read" --concurrency 8)
  "$cb" "${load[@]}" --messages 300 >/dev/null
  callgrind_control -z "$pid" >/dev/null 2>&1
  local report
  report="$("$cb" "${load[@]}" --messages "$messages" | grep '^sent')"
  callgrind_control -d "$pid" >/dev/null 2>&1
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  local total
  total="$(awk '/^summary:/ {print $2}' "$dir/out.1")"
  printf '%-10s %8d instructions a message   (%s)\n' "$subject" $((total / messages)) "$report"
}
for round in $(seq 1 "$rounds"); do
  echo "## round $round"
  count floor
  count chatbridge
done
