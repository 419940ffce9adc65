#!/usr/bin/env bash
# The daemon under the shipped unit's restrictions, as far as a machine without systemd as PID 1 allows: it runs as
# an unprivileged user with the unit's umask, relays in the demo (every adapter, the store, the API), reloads on
# SIGHUP and stops on SIGTERM — and every system call it made in doing so is one the unit's seccomp filter
# (SystemCallFilter=@system-service ~@privileged @resources) allows (strace's count, checked by sandbox.py).
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v strace >/dev/null 2>&1 || need+=(strace)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi
binary="$PWD/target/debug/chatbridge"
[ -x "$binary" ] || cargo build --locked -q
work="$(mktemp -d)"
trap 'kill "${sims:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
chmod 0777 "$work"
mkdir -m 0700 "$work/state"
user=()
if [ "$(id -u)" = 0 ]; then
  # The unit's DynamicUser=: an unprivileged uid with no groups; its state directory is its own.
  chown 65534:65534 "$work/state"
  user=(setpriv --reuid=65534 --regid=65534 --clear-groups --)
fi
cd "$work"
# 1. The demo: the five simulated platforms, the API and the daemon in one process, relaying.
(umask 0077; STATE_DIRECTORY="$work/state" "${user[@]}" strace -f -qq -c -o "$work/demo.trace" \
  "$binary" demo --duration 4s >/dev/null 2>&1)
# 2. `run` against simulators in a process of their own: start, reload (SIGHUP), notify, stop (SIGTERM).
"$binary" sim --config-out "$work/sim.toml" --rooms 2 --duration 60s >/dev/null 2>&1 &
sims=$!
for _ in $(seq 50); do [ -s "$work/sim.toml" ] && break; sleep 0.1; done
chmod 0644 "$work/sim.toml"
(umask 0077; STATE_DIRECTORY="$work/state" NOTIFY_SOCKET="$work/notify.sock" RUST_LOG=info \
  "${user[@]}" strace -f -qq -c -o "$work/run.trace" "$binary" run -c "$work/sim.toml" 2>"$work/run.log") &
daemon=$!
# Signals only once the handlers are in place (they are before the bridges start): strace makes start-up slow.
for _ in $(seq 300); do grep -q "Bridge started" "$work/run.log" 2>/dev/null && break; sleep 0.1; done
sleep 1
# The daemon itself, not strace around it (strace's exit status is the daemon's).
pid="$(pgrep -f "^$binary run -c $work/sim.toml")"
kill -HUP "$pid"
for _ in $(seq 100); do grep -q "Configuration reloaded" "$work/run.log" && break; sleep 0.1; done
grep -q "Configuration reloaded" "$work/run.log" || { cat "$work/run.log" >&2; echo "sandbox: no reload" >&2; exit 1; }
kill -TERM "$pid"
wait "$daemon" || { cat "$work/run.log" >&2; echo "sandbox: the daemon did not exit 0" >&2; exit 1; }
python3 "$OLDPWD/.ci/sandbox.py" "$work/demo.trace" "$work/run.trace"
echo "sandbox: ran as $( [ ${#user[@]} -gt 0 ] && echo 'uid 65534' || echo "uid $(id -u)") under umask 0077; relayed, reloaded, stopped"
