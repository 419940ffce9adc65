#!/usr/bin/env bash
# The shipped systemd unit: it must verify, and its exposure must stay at 2.0 or below
# (`systemd-analyze security --offline=yes`; docs/operations.md gives the figure).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v systemd-analyze >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq systemd >/dev/null
fi
binary="$PWD/target/debug/chatbridge"
[ -x "$binary" ] || cargo build --locked -q
unit="$(mktemp -d)/chatbridge.service"
sed "s#/usr/local/bin/chatbridge#$binary#g" docs/chatbridge.service > "$unit"
systemd-analyze verify "$unit"
systemd-analyze security --offline=yes --threshold=20 "$unit" | tail -1
echo "unit: verified, exposure within 2.0"
