#!/usr/bin/env bash
# The README's install lines, as written, under a scratch root: every absolute path they name is taken under
# "$root", `cargo install` is the binary already built (a release build takes minutes), and `systemctl enable
# --now` does what systemd does with the installed unit, as far as a machine without systemd as PID 1 allows:
# EnvironmentFile= read as root, LoadCredential= copied for the service, StateDirectory= made its own, then
# ExecStartPre= and ExecStart= as an unprivileged uid with no groups (DynamicUser=) under the unit's UMask=.
# Then `systemctl reload`: the unit's ExecReload= lines in order, once with a good file (applied) and once with a
# broken one (the reload fails, the daemon goes on with the old configuration). Then SIGTERM, exit 0.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
binary="$repo/target/debug/chatbridge"
[ -x "$binary" ] || cargo build --locked -q
command -v setpriv >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq util-linux >/dev/null; }
work="$(mktemp -d)"
root="$work/root"
trap 'kill "${sims:-}" "${daemon:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$root/home" "$root/etc/systemd/system" "$root/usr/local/bin" "$root/var/lib"
chmod 0755 "$work" "$root" "$root/etc" "$root/usr" "$root/usr/local" "$root/usr/local/bin" "$root/var" "$root/var/lib"
service=()
if [ "$(id -u)" = 0 ]; then service=(setpriv --reuid=65534 --regid=65534 --clear-groups --); fi

# The simulated platforms the edited configuration will point at.
"$binary" sim --config-out "$work/sim.toml" --rooms 2 --duration 120s >/dev/null 2>&1 &
sims=$!
for _ in $(seq 100); do [ -s "$work/sim.toml" ] && break; sleep 0.1; done

# The operator's edit ("then edit it"): the simulators' configuration with every secret moved out of the file,
# into secrets.env (env:NAME) and, for Yunhu's, a credential (cred:NAME) that a drop-in names.
edit() {
  python3 - "$work/sim.toml" "$root/etc/chatbridge" <<'EOF'
import re
import sys
text, etc = open(sys.argv[1]).read(), sys.argv[2]
moved = {"fishroom": ("token_key", "env:FISHROOM_KEY"), "missevan": ("cookie", "env:MISSEVAN_COOKIE"),
         "iirose": ("password", "env:IIROSE_PASSWORD"), "heihei": ("token", "env:HEIHEI_TOKEN"),
         "yunhu": ("token", "cred:yunhu")}
env = []
for platform, (key, spec) in moved.items():
    section = re.search(r"\[accounts\.%s\.sim\]\n(?:[^\[].*\n)*" % platform, text).group(0)
    line = re.search(r'^%s = "([^"]*)"$' % key, section, re.M)
    if spec.startswith("env:"):
        env.append(f'{spec[4:]}="{line.group(1)}"')
    else:
        with open(f"{etc}/yunhu.token", "w") as out:
            out.write(line.group(1) + "\n")
    text = text.replace(section, section.replace(line.group(0), f'{key} = "{spec}"'))
# Written in place: the files keep the modes and owners the install lines gave them.
with open(f"{etc}/config.toml", "r+") as out:
    out.truncate(0)
    out.write(text)
with open(f"{etc}/secrets.env", "a") as out:
    out.write("# chatbridge's secrets, read by systemd for the service\n" + "\n".join(env) + "\n")
EOF
  chmod 0600 "$root/etc/chatbridge/yunhu.token"
  mkdir -p "$root/etc/systemd/system/chatbridge.service.d"
  printf '[Service]\nLoadCredential=yunhu:/etc/chatbridge/yunhu.token\n' \
    > "$root/etc/systemd/system/chatbridge.service.d/secrets.conf"
}

# The unit's settings, read as systemd would (the unit, then its drop-ins), paths under the scratch root.
unit_values() {
  cat "$root/etc/systemd/system/chatbridge.service" "$root"/etc/systemd/system/chatbridge.service.d/*.conf 2>/dev/null \
    | sed -n "s/^$1=//p"
}
under_root() { sed -e "s#\(^\|[ =:]\)/etc/#\1$root/etc/#g" -e "s#\(^\|[ =:]\)/usr/local/#\1$root/usr/local/#g"; }

log="$work/run.log"
exec_lines() {
  # Each Exec line as the service: its environment, its user, its umask. $MAINPID as systemd expands it.
  local key="$1" line
  while IFS= read -r line; do
    line="$(printf '%s' "$line" | under_root)"
    line="${line//\$MAINPID/${mainpid:-}}"
    case "$line" in /bin/kill*) eval "$line"; continue ;; esac
    (umask "$(unit_values UMask)"; eval "env -i PATH=/usr/bin:/bin ${service_env[*]} ${service[*]} $line") || return 1
  done < <(unit_values "$key")
}

start_unit() {
  local unit="$root/etc/systemd/system/chatbridge.service"
  [ -f "$unit" ] || { echo "install: no unit at /etc/systemd/system/chatbridge.service" >&2; return 1; }
  service_env=()
  while IFS= read -r assignment; do service_env+=("$(printf '%s' "$assignment" | under_root)"); done \
    < <(unit_values Environment)
  # EnvironmentFile=-PATH: read by the service manager (root), the leading '-' for "if it exists".
  local file
  file="$(unit_values EnvironmentFile | sed 's/^-//' | under_root)"
  if [ -f "$file" ]; then
    while IFS= read -r assignment; do
      case "$assignment" in ''|'#'*|';'*) continue ;; esac
      service_env+=("$assignment")
    done < "$file"
  fi
  # StateDirectory=chatbridge: made, and the service's own.
  local state="$root/var/lib/$(unit_values StateDirectory)"
  mkdir -p "$state" && chmod 0700 "$state"
  [ ${#service[@]} -gt 0 ] && chown 65534:65534 "$state"
  service_env+=("STATE_DIRECTORY=$state")
  # LoadCredential=NAME:PATH: a copy the service can read, whatever the source file's owner and mode.
  local creds="$work/credentials"
  mkdir -p "$creds" && chmod 0755 "$creds"
  while IFS= read -r credential; do
    local path
    path="$(printf '%s' "${credential#*:}" | under_root)"
    install -m 0400 "$path" "$creds/${credential%%:*}"
    [ ${#service[@]} -gt 0 ] && chown 65534:65534 "$creds/${credential%%:*}"
  done < <(unit_values LoadCredential)
  service_env+=("CREDENTIALS_DIRECTORY=$creds" "RUST_LOG=info")
  exec_lines ExecStartPre || { echo "install: the unit's ExecStartPre= failed" >&2; return 1; }
  local start
  start="$(unit_values ExecStart | under_root)"
  (umask "$(unit_values UMask)"; eval "exec env -i PATH=/usr/bin:/bin ${service_env[*]} ${service[*]} $start" 2>"$log") &
  daemon=$!
  for _ in $(seq 300); do grep -q "Bridge started" "$log" 2>/dev/null && break; sleep 0.1; done
  grep -q "Bridge started" "$log" || { cat "$log" >&2; echo "install: the daemon did not start" >&2; return 1; }
  mainpid="$(pgrep -f "chatbridge run$" -n)"
}

systemctl() {
  case "$*" in
    daemon-reload) ;;
    "enable --now chatbridge") start_unit ;;
    *) echo "install: systemctl $* is not emulated" >&2; return 1 ;;
  esac
}
cargo() { install -D -m 0755 "$binary" "$HOME/.cargo/bin/chatbridge"; }

# The README's lines, each as written (comments dropped), paths under the scratch root.
mapfile -t lines < <(awk '/^## Install/ {on = 1} on && /^```sh/ {block = 1; next} block && /^```/ {exit} block' README.md)
[ ${#lines[@]} -ge 4 ] || { echo "install: the README's install block was not found" >&2; exit 1; }
export HOME="$root/home" PATH="$root/usr/local/bin:$PATH"
for line in "${lines[@]}"; do
  line="$(printf '%s' "$line" | sed 's/[[:space:]]\+#[[:space:]].*$//' | under_root)"
  # The edit the README asks for, once the files are in place and before the check.
  case "$line" in *"chatbridge check"*) edit ;; esac
  echo "install: $line"
  eval "$line" || { echo "install: failed: $line" >&2; exit 1; }
done

# systemctl reload with the file as it is: both ExecReload= lines pass, and the daemon says it reloaded.
exec_lines ExecReload || { cat "$log" >&2; echo "install: reload failed" >&2; exit 1; }
for _ in $(seq 100); do grep -q "Configuration reloaded" "$log" && break; sleep 0.1; done
grep -q "Configuration reloaded" "$log" || { cat "$log" >&2; echo "install: no reload" >&2; exit 1; }
# A broken file: the reload fails at its check, no SIGHUP is sent, and the daemon goes on.
cp "$root/etc/chatbridge/config.toml" "$work/good.toml"
printf '\n[general2]\n' >> "$root/etc/chatbridge/config.toml"
if exec_lines ExecReload 2>"$work/reload.err"; then
  echo "install: a reload with a broken file succeeded" >&2; exit 1
fi
grep -q "general2" "$work/reload.err" || { cat "$work/reload.err" >&2; echo "install: the refused reload did not say why" >&2; exit 1; }
[ "$(grep -c "Configuration reloaded\|SIGHUP" "$log")" -le 2 ] || { cat "$log" >&2; echo "install: a SIGHUP went out" >&2; exit 1; }
kill -0 "$mainpid"
kill -TERM "$mainpid"
wait "$daemon" || { cat "$log" >&2; echo "install: the daemon did not exit 0" >&2; exit 1; }
daemon=
echo "install: the README's install lines ran as written; the unit started the daemon as uid $( [ ${#service[@]} -gt 0 ] && echo 65534 || id -u ), reloaded it, refused a broken reload, stopped it"
