# Shared by the benches that drive the API path (sourced, not run).

# A free port on the loopback.
port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# The configuration `chatbridge bench` builds: two API accounts, one bridged into the other, the store on.
# Usage: api_config STATE_DIR POST_PORT READ_PORT
api_config() {
  cat <<TOML
[general]
shutdown_timeout = "2s"
queue_capacity = 100000
state_dir = "$1"
[accounts.api.post]
listen = "127.0.0.1:$2"
post_rate = 0
[accounts.api.read]
listen = "127.0.0.1:$3"
[[bridge]]
name = "load"
format = "{text}"
nick_format = "{nick}"
[[bridge.room]]
room = "api.post:load"
direction = "in"
[[bridge.room]]
room = "api.read:load"
direction = "out"
TOML
}
