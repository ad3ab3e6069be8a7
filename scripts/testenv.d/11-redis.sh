#!/usr/bin/env bash
# Redis for the tests: Debian's redis-server with an own config under
# $TESTENV_STATE/redis, on 127.0.0.1 only, no persistence (the data is scratch).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

NAME=redis
PORT="${TESTENV_REDIS_PORT:-26380}"
DIR="$TESTENV_STATE/$NAME"
PID="$DIR/redis.pid"
URL="redis://127.0.0.1:$PORT/"

answers() {
  [ "$(timeout 3 redis-cli -h 127.0.0.1 -p "$PORT" ping 2>/dev/null)" = PONG ]
}

up() {
  if answers; then write_env "$NAME" "BOWCHAT_TEST_REDIS_URL=$URL"; return 0; fi
  apt_install redis-server redis-tools
  mkdir -p "$DIR"
  cat >"$DIR/redis.conf" <<EOF
bind 127.0.0.1
protected-mode yes
port $PORT
daemonize no
pidfile $PID
dir $DIR
logfile $DIR/server.log
save ""
appendonly no
databases 16
EOF
  # setsid + nohup: the server leaves this script's session and outlives it.
  setsid nohup redis-server "$DIR/redis.conf" </dev/null >>"$DIR/stdout.log" 2>&1 &
  echo $! >"$PID"
  wait_for "redis on 127.0.0.1:$PORT" 30 answers || { tail -n 20 "$DIR/server.log" >&2; return 1; }
  write_env "$NAME" "BOWCHAT_TEST_REDIS_URL=$URL"
}

down() {
  stop_pid "$PID"
  rm -rf "$DIR"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) answers ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
