#!/usr/bin/env bash
# The API path's table in docs/performance.md, from one command: a release build, then `chatbridge bench --suite`
# (the null relay and chatbridge alternately, ROUNDS rounds of MESSAGES messages per measure; min / median / max).
# Usage: benches/suite.sh [ROUNDS] [MESSAGES]     (defaults: 5 rounds, 20,000 messages; about 7 minutes here)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-5}"
messages="${2:-20000}"
cargo build --release --locked --quiet
exec target/release/chatbridge bench --suite --rounds "$rounds" --messages "$messages"
