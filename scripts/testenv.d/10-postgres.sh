#!/usr/bin/env bash
# PostgreSQL for the tests: Debian's server binaries, an own cluster (initdb) under
# $TESTENV_STATE/postgres, listening on 127.0.0.1 only, with a test database and user.
# Not the system-wide cluster: nothing of Debian's pg_ctlcluster is used.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

NAME=postgres
PORT="${TESTENV_PG_PORT:-25432}"
DB=bowchat
USER_NAME=bowchat
PASSWORD=bowchat
DIR="$TESTENV_STATE/$NAME"
DATA="$DIR/data"
URL="postgres://$USER_NAME:$PASSWORD@127.0.0.1:$PORT/$DB"

# The server refuses to run as root, so on a root machine it runs as the
# `postgres` OS user the Debian package creates; elsewhere as the caller.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# The newest server version Debian installed (/usr/lib/postgresql/<ver>/bin).
pg_bin() {
  local dir
  dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  [ -n "$dir" ] && [ -x "$dir/postgres" ] || return 1
  echo "$dir"
}

answers() {
  PGPASSWORD="$PASSWORD" PGCONNECT_TIMEOUT=3 psql -h 127.0.0.1 -p "$PORT" -U "$USER_NAME" -d "$DB" \
    -XtAqc 'select 1' 2>/dev/null | grep -qx 1
}

up() {
  if answers; then write_env "$NAME" "BOWCHAT_TEST_PG_URL=$URL"; return 0; fi
  apt_install postgresql
  local bin; bin="$(pg_bin)"
  mkdir -p "$DIR"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$DIR"
  local fresh=0
  if [ ! -f "$DATA/PG_VERSION" ]; then
    rm -rf "$DATA"
    as_owner "$bin/initdb" -D "$DATA" -U postgres -E UTF8 --locale=C.UTF-8 \
      --auth-local=trust --auth-host=scram-sha-256 >"$DIR/initdb.log" 2>&1
    # Loopback TCP only; the Unix socket lives in our own folder, not /var/run.
    cat >>"$DATA/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$DIR'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
    fresh=1
  fi
  # setsid: the server leaves the caller's session and outlives this script.
  as_owner setsid -w "$bin/pg_ctl" -D "$DATA" -l "$DIR/server.log" -w -t 60 start </dev/null >/dev/null 2>&1 \
    || { tail -n 20 "$DIR/server.log" >&2; return 1; }
  if [ "$fresh" -eq 1 ]; then
    as_owner "$bin/psql" -h "$DIR" -p "$PORT" -U postgres -d postgres -XqAt -v ON_ERROR_STOP=1 <<EOF
CREATE ROLE $USER_NAME LOGIN CREATEDB PASSWORD '$PASSWORD';
CREATE DATABASE $DB OWNER $USER_NAME;
-- Tests drop their databases WITH (FORCE), which must be able to end any
-- backend still attached (e.g. an autovacuum worker).
GRANT pg_signal_backend TO $USER_NAME;
EOF
  fi
  wait_for "postgres on 127.0.0.1:$PORT" 30 answers
  write_env "$NAME" "BOWCHAT_TEST_PG_URL=$URL"
}

down() {
  local bin
  if bin="$(pg_bin)" && [ -f "$DATA/postmaster.pid" ]; then
    as_owner "$bin/pg_ctl" -D "$DATA" -m fast -w -t 30 stop >/dev/null 2>&1 || true
  fi
  rm -rf "$DIR"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) answers ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
