# Sourced by benches/postgres.sh and benches/pg-two.sh: a release build, and a throw-away PostgreSQL server of
# Debian's package on loopback (its default durability: fsync, synchronous_commit on), removed when the script exits.
# Sets: bin_dir, cb (the chatbridge binary), work, port, server; defines psql (as postgres, on that server) and
# fresh (a new database: call as `fresh; url=$made`, since a subshell would lose the count). $1: the work
# directory's name.
bin_dir="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
cargo build --release --quiet
cb="$PWD/target/release/chatbridge"
work="$(mktemp -d "/tmp/chatbridge-$1-XXXXXX")"
as=()
if [ "$(id -u)" = 0 ]; then chown nobody "$work"; as=(setpriv --reuid=nobody --regid=nogroup --clear-groups); fi
port=$((20000 + RANDOM % 10000))
"${as[@]}" "$bin_dir/initdb" -A trust -U postgres -D "$work/data" >/dev/null
"${as[@]}" "$bin_dir/postgres" -D "$work/data" -p "$port" -c listen_addresses=127.0.0.1 \
  -c unix_socket_directories= -c max_connections=100 >"$work/server.log" 2>&1 &
server=$!
cleanup() { kill -INT "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
until "$bin_dir/pg_isready" -q -h 127.0.0.1 -p "$port"; do sleep 0.1; done
psql() { "$bin_dir/psql" -qAt -h 127.0.0.1 -p "$port" -U postgres "$@"; }
n=0
fresh() {
  n=$((n + 1))
  psql -d postgres -c "CREATE DATABASE b$n" >/dev/null
  made="postgres://postgres@127.0.0.1:$port/b$n?sslmode=disable"
}
